package services

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// apiSpec is a service spec as a client posts it.
func apiSpec(name string, replicas int, cmd ...string) map[string]any {
	if len(cmd) == 0 {
		cmd = sleeper
	}
	return map[string]any{
		"Name":   name,
		"Labels": map[string]string{"l": "1"},
		"TaskTemplate": map[string]any{
			"ContainerSpec": map[string]any{"Image": "busybox:latest", "Command": cmd, "StopGracePeriod": int64(time.Second)},
			"RestartPolicy": map[string]any{"Condition": "any"},
		},
		"Mode": map[string]any{"Replicated": map[string]any{"Replicas": replicas}},
	}
}

// create posts spec and returns the new service's ID.
func create(t *testing.T, tg *target, spec any) string {
	t.Helper()
	res := api(t, tg, "POST", "/services/create", spec)
	var out struct{ ID string }
	if res.Status != http.StatusCreated || json.Unmarshal(res.Body, &out) != nil || out.ID == "" {
		t.Fatalf("%s: POST /services/create: %s", tg.Name, errForm(res))
	}
	return out.ID
}

// specOf returns the Spec of GET /services/{id}{query} normalised.
func specOf(t *testing.T, tg *target, id, query string) string {
	t.Helper()
	res := api(t, tg, "GET", "/services/"+id+query, nil)
	var s struct{ Spec json.RawMessage }
	if err := json.Unmarshal(res.Body, &s); err != nil {
		t.Fatalf("%s: GET /services/%s%s: %s", tg.Name, id, query, errForm(res))
	}
	return norm(canonical(s.Spec))
}

// canonical is JSON as dockerd writes it, without the \u0026, \u003c and
// \u003e escapes of Go's default encoder, so that values compare whatever
// the encoder; the escaping itself is compared by a step of its own.
func canonical(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return strings.NewReplacer(`\u0026`, "&", `\u003c`, "<", `\u003e`, ">").Replace(b.String())
}

// TestServiceAPIShapes compares the JSON of the service and task answers
// (key shapes, and whole specs with and without insertDefaults) and what
// the task filters the CLI sends select.
func TestServiceAPIShapes(t *testing.T) {
	scenario(t, func(t *testing.T, r *rec) {
		tg := r.tg
		id := create(t, tg, apiSpec("shape", 2))
		waitRunning(t, tg, "shape", 2, time.Minute)
		for _, p := range []string{"/services", "/services?status=true", "/services/" + id, "/services/shape?insertDefaults=true"} {
			res := api(t, tg, "GET", p, nil)
			r.add("GET "+strings.ReplaceAll(p, id, "{id}")+" [status, json keys]", strconv.Itoa(res.Status)+" "+keyShape(res.Body, 5))
		}
		r.add("GET /services/{id} [Spec]", specOf(t, tg, id, ""))
		r.add("GET /services/{id}?insertDefaults=true [Spec]", specOf(t, tg, id, "?insertDefaults=true"))
		res := api(t, tg, "GET", "/services?status=true", nil)
		var list []struct{ ServiceStatus any }
		json.Unmarshal(res.Body, &list)
		st, _ := json.Marshal(list)
		r.add("GET /services?status=true [ServiceStatus]", string(st))

		ts := tasks(t, tg, "shape")
		res = api(t, tg, "GET", "/tasks?filters="+urlQuery(`{"service":{"shape":true}}`), nil)
		r.add("GET /tasks?filters=service [json keys]", keyShape(res.Body, 5))
		var full []struct{ Spec json.RawMessage }
		json.Unmarshal(res.Body, &full)
		if len(full) > 0 {
			r.add("GET /tasks [Spec]", norm(canonical(full[0].Spec)))
		}
		raw := api(t, tg, "GET", "/services/"+id, nil).Body
		r.add("GET /services/{id} [raw JSON has HTML escapes]", strconv.FormatBool(strings.Contains(string(raw), `\u0026`)))
		res = api(t, tg, "GET", "/tasks/"+ts[0].ID, nil)
		r.add("GET /tasks/{id} [status, json keys]", strconv.Itoa(res.Status)+" "+keyShape(res.Body, 5))
		for _, f := range []string{
			`{"service":{"` + id + `":true}}`,
			`{"_up-to-date":{"true":true},"service":{"` + id + `":true}}`,
			`{"desired-state":{"running":true},"service":{"` + id + `":true}}`,
			`{"desired-state":{"shutdown":true},"service":{"` + id + `":true}}`,
			`{"name":{"shape.1":true},"service":{"` + id + `":true}}`,
			`{"node":{"node1":true,"node2":true,"node3":true},"service":{"shape":true}}`,
			`{"node":{"` + tg.Nodes[0] + `":true,"` + tg.Nodes[1] + `":true,"` + tg.Nodes[2] + `":true},"service":{"shape":true}}`,
			`{"id":{"` + ts[0].ID + `":true}}`,
			`{"label":{"nope":true},"service":{"shape":true}}`,
		} {
			res := api(t, tg, "GET", "/tasks?filters="+urlQuery(f), nil)
			var got []any
			json.Unmarshal(res.Body, &got)
			key := strings.NewReplacer(id, "{id}", ts[0].ID, "{task}", tg.Nodes[0], "{n1}", tg.Nodes[1], "{n2}", tg.Nodes[2], "{n3}").Replace(f)
			r.add("GET /tasks?filters="+key+" [status, count]", fmt.Sprintf("%d %d", res.Status, len(got)))
		}
		res = api(t, tg, "GET", "/tasks?filters="+urlQuery(`{"bogus":{"x":true}}`), nil)
		r.add("GET /tasks?filters={bogus} [error]", errForm(res))
		res = api(t, tg, "GET", "/services?filters="+urlQuery(`{"name":{"sha":true}}`), nil)
		r.add("GET /services?filters=name prefix [status, body]", strconv.Itoa(res.Status)+" "+strconv.Itoa(strings.Count(string(res.Body), `"ID"`)))
		res = api(t, tg, "GET", "/services?filters="+urlQuery(`{"mode":{"replicated":true}}`), nil)
		r.add("GET /services?filters=mode [count]", strconv.Itoa(res.Status)+" "+strconv.Itoa(strings.Count(string(res.Body), `"Spec"`)))
	})
}

// TestServiceLogs compares the bytes of service and task logs: multiplexed
// frames, the details prefix, tail and timestamps, and the CLI's rendering.
func TestServiceLogs(t *testing.T) {
	scenario(t, func(t *testing.T, r *rec) {
		tg := r.tg
		id := create(t, tg, apiSpec("logs", 1, "sh", "-c", "echo out-line; sleep 0.5; echo err-line >&2; trap exit TERM; sleep 3600 & wait"))
		waitRunning(t, tg, "logs", 1, time.Minute)
		waitFor(t, 30*time.Second, tg.Name+": two log lines", func() error {
			if fr := frames(api(t, tg, "GET", "/services/"+id+"/logs?stdout=1&stderr=1", nil).Body); len(fr) < 2 {
				return fmt.Errorf("frames %v", fr)
			}
			return nil
		})
		for _, q := range []string{"details=true&stdout=1&stderr=1", "stdout=1", "stderr=1&timestamps=1", "stdout=1&stderr=1&tail=1", ""} {
			res := api(t, tg, "GET", "/services/logs/logs?"+q, nil)
			if res.Status != http.StatusOK {
				r.add("GET /services/{name}/logs?"+q+" [error]", errForm(res))
				continue
			}
			fr := frames(res.Body)
			sort.Strings(fr) // stdout and stderr may interleave either way
			r.add("GET /services/{name}/logs?"+q+" [frames]", norm(strings.Join(fr, "\n")))
		}
		task := tasks(t, tg, "logs")[0].ID
		res := api(t, tg, "GET", "/tasks/"+task+"/logs?details=true&stdout=1&stderr=1", nil)
		fr := frames(res.Body)
		sort.Strings(fr)
		r.add("GET /tasks/{id}/logs?details=true [frames]", fmt.Sprintf("%d %s", res.Status, norm(strings.Join(fr, "\n"))))
		r.add("GET /services/nope/logs [error]", errForm(api(t, tg, "GET", "/services/nope/logs?stdout=1", nil)))
		for _, args := range [][]string{{"service", "logs", "logs"}, {"service", "logs", "--raw", "logs"}, {"service", "logs", "--no-task-ids", "--details", "logs"}} {
			res := r.cli("e", args...)
			// The node the task landed on is placement's choice, not the logs'.
			anyNode := regexp.MustCompile(`@node\d`)
			r.add(strings.Join(args, " ")+" [stdout, stderr]", anyNode.ReplaceAllString(norm(res.Out)+" | "+norm(res.Err), "@<node>"))
		}
	})
}

// frames splits a multiplexed log stream into "<stream> <payload>" strings
// (a stream that is not multiplexed shows as one "raw" frame).
func frames(b []byte) []string {
	var out []string
	for len(b) >= 8 {
		n := int(binary.BigEndian.Uint32(b[4:8]))
		if b[0] > 2 || b[1] != 0 || 8+n > len(b) {
			return append(out, "raw "+string(b))
		}
		out = append(out, fmt.Sprintf("%d %q", b[0], b[8:8+n]))
		b = b[8+n:]
	}
	if len(b) > 0 {
		out = append(out, "raw "+string(b))
	}
	return out
}

// TestServiceErrors compares the status and message of every error answer
// of the service API with swarm mode's.
func TestServiceErrors(t *testing.T) {
	scenario(t, func(t *testing.T, r *rec) {
		tg := r.tg
		id := create(t, tg, apiSpec("web", 1))
		v := getService(t, tg, id).Version.Index
		upd := func(query string, spec any) apiResp {
			return api(t, tg, "POST", "/services/"+id+"/update"+query, spec)
		}
		mode := func(m map[string]any, k string, v any) map[string]any { m[k] = v; return m }
		for _, c := range []struct {
			step string
			res  func() apiResp
		}{
			{"create: name taken", func() apiResp { return api(t, tg, "POST", "/services/create", apiSpec("web", 1)) }},
			{"create: negative replicas", func() apiResp { return api(t, tg, "POST", "/services/create", apiSpec("neg", -1)) }},
			{"create: constraint without operator", func() apiResp {
				s := apiSpec("badc", 1)
				s["TaskTemplate"].(map[string]any)["Placement"] = map[string]any{"Constraints": []string{"node.labels.zone"}}
				return api(t, tg, "POST", "/services/create", s)
			}},
			{"create: no image", func() apiResp {
				return api(t, tg, "POST", "/services/create", map[string]any{"Name": "noimage", "TaskTemplate": map[string]any{"ContainerSpec": map[string]any{}}})
			}},
			{"create: bad name", func() apiResp { return api(t, tg, "POST", "/services/create", apiSpec("a.b", 1)) }},
			{"create: two modes", func() apiResp {
				return api(t, tg, "POST", "/services/create", mode(apiSpec("both", 1), "Mode", map[string]any{"Replicated": map[string]any{}, "Global": map[string]any{}}))
			}},
			{"create: malformed JSON", func() apiResp { return api(t, tg, "POST", "/services/create", `{"Name":`) }},
			{"GET unknown service", func() apiResp { return api(t, tg, "GET", "/services/nope", nil) }},
			{"GET unknown task", func() apiResp { return api(t, tg, "GET", "/tasks/nope", nil) }},
			{"DELETE unknown service", func() apiResp { return api(t, tg, "DELETE", "/services/nope", nil) }},
			{"update unknown service", func() apiResp { return api(t, tg, "POST", "/services/nope/update?version=1", apiSpec("nope", 1)) }},
			{"update: stale version", func() apiResp { return upd(fmt.Sprintf("?version=%d", v-1), apiSpec("web", 2)) }},
			{"update: no version", func() apiResp { return upd("", apiSpec("web", 2)) }},
			{"update: rollback without a previous spec", func() apiResp { return upd(fmt.Sprintf("?version=%d&rollback=previous", v), apiSpec("web", 1)) }},
			{"update: mode change", func() apiResp {
				return upd(fmt.Sprintf("?version=%d", v), mode(apiSpec("web", 1), "Mode", map[string]any{"Global": map[string]any{}}))
			}},
			{"update: rename", func() apiResp { return upd(fmt.Sprintf("?version=%d", v), apiSpec("web2", 1)) }},
			{"update: negative replicas", func() apiResp { return upd(fmt.Sprintf("?version=%d", v), apiSpec("web", -2)) }},
			{"logs: no stream", func() apiResp { return api(t, tg, "GET", "/services/"+id+"/logs", nil) }},
		} {
			r.add(c.step, errForm(c.res()))
		}
		r.cli("es", "service", "ls", "--format", "{{.Name}}")
	})
}

// TestServiceBadSpecs: a bad spec gets a clear error through the CLI and
// leaves no service and no container behind.
func TestServiceBadSpecs(t *testing.T) {
	scenario(t, func(t *testing.T, r *rec) {
		tg := r.tg
		r.cli("eo", append([]string{"service", "create", "-d", "--quiet", "--name", "web", "busybox"}, sleeper...)...)
		waitRunning(t, tg, "web", 1, time.Minute)
		r.cli("er", append([]string{"service", "create", "-d", "--name", "web", "busybox"}, sleeper...)...)
		r.cli("er", append([]string{"service", "create", "-d", "--name", "badc", "--constraint", "node.labels.zone", "busybox"}, sleeper...)...)
		r.cli("er", append([]string{"service", "create", "-d", "--name", "neg", "--replicas", "-1", "busybox"}, sleeper...)...)
		r.cli("er", "service", "scale", "-d", "web=-1")
		res := r.cli("er", append([]string{"service", "create", "-d", "--name", "noimg", "busybox-missing:1"}, sleeper...)...)
		if tg.Swarm {
			// Swarm mode accepts it and rejects its tasks one after the other.
			if res.Exit == 0 {
				docker(t, tg, "service", "rm", "noimg")
			}
		} else if res.Exit == 0 || !strings.Contains(res.Err, "busybox-missing:1") {
			t.Errorf("%s: a service whose image no node has: exit %d, stderr %q; want an error naming the image", tg.Name, res.Exit, res.Err)
		}
		waitFor(t, time.Minute, tg.Name+": only web's task container left", func() error {
			ctx := t.Context()
			if left := taskContainers(ctx, tg); len(left) != 1 || !strings.HasPrefix(left[0], "web.1.") {
				return fmt.Errorf("task containers %v", left)
			}
			return nil
		})
		r.cli("eo", "service", "ls", "--format", "{{.Name}} {{.Replicas}}")
	})
}

// TestServiceParallelUpdates: 20 updates of one service at once. Through
// the API, at the same version, exactly one wins and the others get swarm
// mode's out-of-sequence error; through the CLI (each reads, then posts)
// every accepted update is kept: none is lost and none applied twice.
func TestServiceParallelUpdates(t *testing.T) {
	scenario(t, func(t *testing.T, r *rec) {
		tg := r.tg
		id := create(t, tg, apiSpec("par", 2))
		waitRunning(t, tg, "par", 2, time.Minute)
		v := getService(t, tg, id).Version.Index
		results := make([]apiResp, 20)
		var wg sync.WaitGroup
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := apiSpec("par", 2)
				s["Labels"] = map[string]string{"l": strconv.Itoa(i)}
				results[i] = api(t, tg, "POST", fmt.Sprintf("/services/%s/update?version=%d", id, v), s)
			}()
		}
		wg.Wait()
		ok, errs := 0, map[string]int{}
		for _, res := range results {
			if res.Status == http.StatusOK {
				ok++
			} else {
				errs[errForm(res)]++
			}
		}
		if ok != 1 {
			t.Errorf("%s: %d of 20 updates at one version accepted, want 1 (errors %v)", tg.Name, ok, errs)
		}
		r.add("20 API updates at one version [accepted]", strconv.Itoa(ok))
		r.add("20 API updates at one version [errors]", fmt.Sprint(keys(errs)))

		cli := make([]cliResult, 20)
		for i := range cli {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cli[i] = docker(t, tg, "service", "update", "-d", "--label-add", fmt.Sprintf("k%02d=1", i), "par")
			}()
		}
		wg.Wait()
		won, cliErrs := map[string]bool{}, map[string]int{}
		for i, res := range cli {
			if res.Exit == 0 {
				won[fmt.Sprintf("k%02d", i)] = true
			} else {
				cliErrs[norm(res.Err)]++
			}
		}
		var labels map[string]string
		out := mustDocker(t, tg, "service", "inspect", "--format", "{{json .Spec.Labels}}", "par")
		if err := json.Unmarshal([]byte(out), &labels); err != nil {
			t.Fatal(err)
		}
		for k := range labels {
			if strings.HasPrefix(k, "k") && !won[k] {
				t.Errorf("%s: label %s applied but its update failed", tg.Name, k)
			}
		}
		for k := range won {
			if _, ok := labels[k]; !ok {
				t.Errorf("%s: update adding %s succeeded but the label is gone: lost update", tg.Name, k)
			}
		}
		if len(won) == 0 {
			t.Errorf("%s: none of 20 CLI updates succeeded: %v", tg.Name, cliErrs)
		}
		t.Logf("%s: %d of 20 CLI updates accepted; errors %v", tg.Name, len(won), cliErrs)
		r.add("20 CLI updates [errors]", fmt.Sprint(keys(cliErrs)))
		waitRunning(t, tg, "par", 2, time.Minute)
	})
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
