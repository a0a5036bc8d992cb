package conformance

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// TestRawAPI compares status codes, JSON shapes and error forms of direct
// HTTP calls, with and without a version prefix.
func TestRawAPI(t *testing.T) {
	for _, ver := range []string{"", "/v1.41"} {
		t.Run("v"+strings.TrimPrefix(ver, "/v"), func(t *testing.T) {
			conform(t, "api", "raw"+ver, func(r *rec) {
				ctx := ctxT(t, 2*time.Minute)
				name := "rawapi"
				call := func(method, path string, body any) apiResp {
					return api(ctx, r.tg, method, ver+path, body)
				}
				call("DELETE", "/containers/"+name+"?force=1", nil)
				defer api(ctx, r.tg, "DELETE", "/containers/"+name+"?force=1", nil)
				shape := func(step string, a apiResp, depth int) {
					r.add(step+" [status]", fmt.Sprint(a.Status))
					if a.Status/100 == 2 && len(a.Body) > 0 {
						r.add(step+" [json keys]", keyShape(a.Body, depth))
					} else if a.Status >= 400 {
						r.add(step+" [error]", errForm(a))
					}
				}
				p := call("GET", "/_ping", nil)
				r.add("GET /_ping", fmt.Sprintf("%d %s api-version-header=%v ostype=%s", p.Status, p.Body, p.Header.Get("Api-Version") != "", p.Header.Get("Ostype")))
				h := call("HEAD", "/_ping", nil)
				r.add("HEAD /_ping [status]", fmt.Sprint(h.Status))
				shape("GET /version", call("GET", "/version", nil), 1)
				shape("GET /info", call("GET", "/info", nil), 2)
				shape("GET /system/df", call("GET", "/system/df", nil), 1)
				// The events window below starts here and is filtered to this
				// container, so its first event is the same on every target
				// (the pool's other engines have other histories).
				evSince := time.Now().Unix() - 1
				cr := call("POST", "/containers/create?name="+name, map[string]any{
					"Image": "busybox", "Cmd": []string{"sh", "-c", "echo hello; sleep 300"}, "Labels": map[string]string{"cnf": "raw"},
				})
				shape("POST /containers/create", cr, 1)
				var id struct{ Id string }
				json.Unmarshal(cr.Body, &id)
				shape("POST /containers/create (same name)", call("POST", "/containers/create?name="+name, map[string]any{"Image": "busybox"}), 1)
				shape("POST /containers/create (no such image)", call("POST", "/containers/create", map[string]any{"Image": "nosuch:1"}), 1)
				shape("POST /containers/create (bad json)", call("POST", "/containers/create", "{"), 1)
				shape("POST /containers/{id}/start", call("POST", "/containers/"+name+"/start", nil), 1)
				// A link removed by parent/alias (docker rm --link /rawlink/db).
				call("DELETE", "/containers/rawlink?force=1", nil)
				defer api(ctx, r.tg, "DELETE", "/containers/rawlink?force=1", nil)
				shape("POST /containers/create (linked)", call("POST", "/containers/create?name=rawlink", map[string]any{
					"Image": "busybox", "Cmd": []string{"sleep", "300"}, "HostConfig": map[string]any{"Links": []string{name + ":db"}},
				}), 1)
				shape("DELETE /containers/rawlink/db?link=1", call("DELETE", "/containers/rawlink/db?link=1", nil), 1)
				shape("DELETE /containers/rawlink/db?link=1 (again)", call("DELETE", "/containers/rawlink/db?link=1", nil), 1)
				var lk struct{ HostConfig struct{ Links []string } }
				json.Unmarshal(call("GET", "/containers/rawlink/json", nil).Body, &lk)
				r.add("links after DELETE ?link=1", fmt.Sprint(lk.HostConfig.Links))
				shape("POST /containers/{id}/start (again)", call("POST", "/containers/"+name+"/start", nil), 1)
				shape("GET /containers/json", call("GET", `/containers/json?filters={"label":["cnf=raw"]}`, nil), 2)
				shape("GET /containers/{id}/json", call("GET", "/containers/"+name+"/json", nil), 2)
				shape("GET /containers/{id}/json?size=1", call("GET", "/containers/"+name+"/json?size=1", nil), 1)
				shape("GET /containers/{id}/top", call("GET", "/containers/"+name+"/top", nil), 1)
				shape("GET /containers/{id}/changes", call("GET", "/containers/"+name+"/changes", nil), 1)
				shape("GET /containers/{id}/stats?stream=0", call("GET", "/containers/"+name+"/stats?stream=0", nil), 1)
				shape("GET /containers/{id}/stats?stream=0&one-shot=1", call("GET", "/containers/"+name+"/stats?stream=0&one-shot=1", nil), 1)
				lg := call("GET", "/containers/"+name+"/logs?stdout=1", nil)
				r.add("GET /containers/{id}/logs [status, content-type, body]", fmt.Sprintf("%d %s %q", lg.Status, lg.Header.Get("Content-Type"), lg.Body))
				shape("GET /containers/{id}/logs (no stream chosen)", call("GET", "/containers/"+name+"/logs", nil), 1)
				hd := call("HEAD", "/containers/"+name+"/archive?path=/etc/passwd", nil)
				r.add("HEAD /containers/{id}/archive [status, stat header]", fmt.Sprintf("%d %v", hd.Status, hd.Header.Get("X-Docker-Container-Path-Stat") != ""))
				shape("HEAD /containers/{id}/archive (missing path)", call("HEAD", "/containers/"+name+"/archive?path=/nope", nil), 1)
				ar := call("GET", "/containers/"+name+"/archive?path=/etc/hostname", nil)
				r.add("GET /containers/{id}/archive [status, content-type]", fmt.Sprintf("%d %s", ar.Status, ar.Header.Get("Content-Type")))
				var tb bytes.Buffer
				tw := tar.NewWriter(&tb)
				tw.WriteHeader(&tar.Header{Name: "put.txt", Mode: 0o644, Size: 3})
				tw.Write([]byte("put"))
				tw.Close()
				shape("PUT /containers/{id}/archive", call("PUT", "/containers/"+name+"/archive?path=/tmp", tb.Bytes()), 1)
				shape("PUT /containers/{id}/archive (missing dir)", call("PUT", "/containers/"+name+"/archive?path=/nope", tb.Bytes()), 1)
				ex := call("POST", "/containers/"+name+"/exec", map[string]any{"Cmd": []string{"cat", "/tmp/put.txt"}, "AttachStdout": true})
				shape("POST /containers/{id}/exec", ex, 1)
				var eid struct{ Id string }
				json.Unmarshal(ex.Body, &eid)
				es := call("POST", "/exec/"+eid.Id+"/start", map[string]any{"Detach": false})
				r.add("POST /exec/{id}/start [status, body]", fmt.Sprintf("%d %q", es.Status, es.Body))
				shape("GET /exec/{id}/json", call("GET", "/exec/"+eid.Id+"/json", nil), 1)
				shape("GET /exec/nosuch/json", call("GET", "/exec/nosuch/json", nil), 1)
				shape("POST /containers/{id}/rename (to itself)", call("POST", "/containers/"+name+"/rename?name="+name, nil), 1)
				shape("POST /containers/{id}/update", call("POST", "/containers/"+name+"/update", map[string]any{"CpuShares": 512}), 1)
				shape("DELETE /containers/{id} (running)", call("DELETE", "/containers/"+name, nil), 1)
				shape("POST /containers/{id}/stop?t=1", call("POST", "/containers/"+name+"/stop?t=1", nil), 1)
				shape("POST /containers/{id}/stop (again)", call("POST", "/containers/"+name+"/stop", nil), 1)
				shape("POST /containers/{id}/wait", call("POST", "/containers/"+name+"/wait", nil), 1)
				shape("POST /containers/{id}/exec (stopped)", call("POST", "/containers/"+name+"/exec", map[string]any{"Cmd": []string{"true"}}), 1)
				shape("DELETE /containers/{id}", call("DELETE", "/containers/"+name, nil), 1)
				for _, p := range []string{"/containers/nosuch/json", "/containers/nosuch/logs?stdout=1", "/containers/nosuch/top", "/images/nosuch/json", "/networks/nosuch", "/volumes/nosuch", "/nosuch/endpoint"} {
					shape("GET "+p, call("GET", p, nil), 1)
				}
				for _, p := range []string{"/containers/nosuch/start", "/containers/nosuch/kill", "/containers/nosuch/wait"} {
					shape("POST "+p, call("POST", p, nil), 1)
				}
				shape("DELETE /containers/nosuch", call("DELETE", "/containers/nosuch", nil), 1)
				shape("GET /images/json", call("GET", "/images/json", nil), 2)
				shape("GET /images/busybox/json", call("GET", "/images/busybox/json", nil), 2)
				shape("GET /images/busybox/history", call("GET", "/images/busybox/history", nil), 2)
				shape("GET /networks", call("GET", `/networks?filters={"name":["bridge"]}`, nil), 2)
				shape("GET /volumes", call("GET", "/volumes", nil), 1)
				shape("GET /plugins", call("GET", "/plugins", nil), 1)
				nc := call("POST", "/networks/create", map[string]any{"Name": "rawnet", "CheckDuplicate": true})
				shape("POST /networks/create", nc, 1)
				shape("POST /networks/create (same name)", call("POST", "/networks/create", map[string]any{"Name": "rawnet", "CheckDuplicate": true}), 1)
				shape("GET /networks/rawnet", call("GET", "/networks/rawnet", nil), 2)
				shape("DELETE /networks/rawnet", call("DELETE", "/networks/rawnet", nil), 1)
				shape("POST /volumes/create", call("POST", "/volumes/create", map[string]any{"Name": "rawvol"}), 1)
				shape("GET /volumes/rawvol", call("GET", "/volumes/rawvol", nil), 1)
				shape("DELETE /volumes/rawvol", call("DELETE", "/volumes/rawvol", nil), 1)
				evFilter := url.QueryEscape(fmt.Sprintf(`{"type":["container"],"container":[%q]}`, name))
				ev := call("GET", fmt.Sprintf("/events?since=%d&until=%d&filters=%s", evSince, time.Now().Unix(), evFilter), nil)
				r.add("GET /events?since&until [status, content-type]", fmt.Sprintf("%d %s", ev.Status, ev.Header.Get("Content-Type")))
				if ev.Status == 200 {
					dec := json.NewDecoder(bytes.NewReader(ev.Body))
					var first json.RawMessage
					if dec.Decode(&first) == nil {
						r.add("GET /events?since&until [first event json keys]", keyShape(first, 1))
					}
				}
				shape("GET /events?since=bad", call("GET", "/events?since=bad&until=1", nil), 1)
				shape("GET /containers/json?filters=bad", call("GET", "/containers/json?filters=bad", nil), 1)
			})
		})
	}
	t.Run("version-too-old", func(t *testing.T) {
		conform(t, "api", "version", func(r *rec) {
			a := api(ctxT(t, 10*time.Second), r.tg, "GET", "/v1.12/version", nil)
			r.add("GET /v1.12/version", errForm(a))
			a = api(ctxT(t, 10*time.Second), r.tg, "GET", "/v9.99/version", nil)
			r.add("GET /v9.99/version", errForm(a))
		})
	})
}

// TestMobyClient drives both targets with github.com/moby/moby/client
// (negotiated version and pinned 1.41).
func TestMobyClient(t *testing.T) {
	for _, ver := range []string{"", "1.41"} {
		t.Run("api"+ver, func(t *testing.T) {
			conform(t, "moby", "client"+ver, func(r *rec) {
				ctx := ctxT(t, 2*time.Minute)
				opts := []client.Opt{client.WithHost(r.tg.Host)}
				if ver != "" {
					opts = append(opts, client.WithVersion(ver))
				}
				c, err := client.New(opts...)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				e := func(err error) string {
					switch {
					case err == nil:
						return "ok"
					case cerrdefs.IsNotFound(err):
						return "notfound: " + norm(err.Error())
					case cerrdefs.IsConflict(err):
						return "conflict: " + norm(err.Error())
					case cerrdefs.IsInvalidArgument(err):
						return "invalid: " + norm(err.Error())
					}
					return "error: " + norm(err.Error())
				}
				p, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
				r.add("Ping", fmt.Sprintf("%s os=%s", e(err), p.OSType))
				name := "mobyc" + strings.ReplaceAll(ver, ".", "")
				t0 := time.Now().Add(-time.Second)
				c.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true})
				defer c.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true})
				cr, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name,
					Config: &container.Config{Image: "busybox", Cmd: []string{"sh", "-c", "echo out; echo err >&2; sleep 300"}}})
				r.add("ContainerCreate", e(err))
				_, err = c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: &container.Config{Image: "busybox"}})
				r.add("ContainerCreate (same name)", e(err))
				_, err = c.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{})
				r.add("ContainerStart", e(err))
				ins, err := c.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
				r.add("ContainerInspect", fmt.Sprintf("%s running=%v image=%s", e(err), err == nil && ins.Container.State.Running, ins.Container.Config.Image))
				r.add("ContainerInspect [json keys]", keyShape(ins.Raw, 1))
				time.Sleep(300 * time.Millisecond)
				lr, err := c.ContainerLogs(ctx, name, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
				var so, se bytes.Buffer
				if err == nil {
					_, err = stdcopy.StdCopy(&so, &se, lr)
					lr.Close()
				}
				r.add("ContainerLogs", fmt.Sprintf("%s %q %q", e(err), so.String(), se.String()))
				ex, err := c.ExecCreate(ctx, name, client.ExecCreateOptions{Cmd: []string{"sh", "-c", "cat; echo e >&2; exit 5"}, AttachStdin: true, AttachStdout: true, AttachStderr: true})
				r.add("ExecCreate", e(err))
				if err == nil {
					at, err := c.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
					r.add("ExecAttach", e(err))
					if err == nil {
						at.Conn.Write([]byte("stdin-data\n"))
						at.CloseWrite()
						so.Reset()
						se.Reset()
						_, err = stdcopy.StdCopy(&so, &se, at.Reader)
						at.Close()
						r.add("ExecAttach output", fmt.Sprintf("%s %q %q", e(err), so.String(), se.String()))
					}
					time.Sleep(200 * time.Millisecond)
					ei, err := c.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
					r.add("ExecInspect", fmt.Sprintf("%s running=%v exit=%d", e(err), ei.Running, ei.ExitCode))
				}
				var tb bytes.Buffer
				tw := tar.NewWriter(&tb)
				tw.WriteHeader(&tar.Header{Name: "moby.txt", Mode: 0o644, Size: 4})
				tw.Write([]byte("moby"))
				tw.Close()
				_, err = c.CopyToContainer(ctx, name, client.CopyToContainerOptions{DestinationPath: "/tmp", Content: &tb})
				r.add("CopyToContainer", e(err))
				st, err := c.ContainerStatPath(ctx, name, client.ContainerStatPathOptions{Path: "/tmp/moby.txt"})
				r.add("ContainerStatPath", fmt.Sprintf("%s %s %d", e(err), st.Stat.Name, st.Stat.Size))
				cf, err := c.CopyFromContainer(ctx, name, client.CopyFromContainerOptions{SourcePath: "/tmp/moby.txt"})
				if err == nil {
					trd := tar.NewReader(cf.Content)
					h, herr := trd.Next()
					var body []byte
					if herr == nil {
						body, _ = io.ReadAll(trd)
					}
					cf.Content.Close()
					r.add("CopyFromContainer", fmt.Sprintf("ok %v %q", h != nil && h.Name == "moby.txt", body))
				} else {
					r.add("CopyFromContainer", e(err))
				}
				_, err = c.CopyFromContainer(ctx, name, client.CopyFromContainerOptions{SourcePath: "/nope"})
				r.add("CopyFromContainer (missing)", e(err))
				sr, err := c.ContainerStats(ctx, name, client.ContainerStatsOptions{Stream: false})
				if err == nil {
					b, _ := io.ReadAll(sr.Body)
					sr.Body.Close()
					r.add("ContainerStats [json keys]", keyShape(b, 1))
				} else {
					r.add("ContainerStats", e(err))
				}
				top, err := c.ContainerTop(ctx, name, client.ContainerTopOptions{})
				r.add("ContainerTop", fmt.Sprintf("%s %v", e(err), top.Titles))
				_, err = c.ContainerKill(ctx, name, client.ContainerKillOptions{Signal: "KILL"})
				r.add("ContainerKill", e(err))
				w := c.ContainerWait(ctx, name, client.ContainerWaitOptions{})
				select {
				case res := <-w.Result:
					r.add("ContainerWait", fmt.Sprint("ok ", res.StatusCode))
				case err := <-w.Error:
					r.add("ContainerWait", e(err))
				}
				_, err = c.ContainerRemove(ctx, name, client.ContainerRemoveOptions{})
				r.add("ContainerRemove", e(err))
				_, err = c.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
				r.add("ContainerInspect (removed)", e(err))
				_, err = c.ImageInspect(ctx, "busybox")
				r.add("ImageInspect", e(err))
				_, err = c.ImageInspect(ctx, "nosuch")
				r.add("ImageInspect (missing)", e(err))
				nc, err := c.NetworkCreate(ctx, "mobynet", client.NetworkCreateOptions{Driver: "bridge", Labels: map[string]string{"a": "b"}})
				r.add("NetworkCreate", fmt.Sprintf("%s warnings=%v", e(err), nc.Warning))
				ni, err := c.NetworkInspect(ctx, "mobynet", client.NetworkInspectOptions{})
				r.add("NetworkInspect", fmt.Sprintf("%s %s %s %v", e(err), norm(ni.Network.Name), ni.Network.Driver, ni.Network.Labels))
				_, err = c.NetworkRemove(ctx, "mobynet", client.NetworkRemoveOptions{})
				r.add("NetworkRemove", e(err))
				vc, err := c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: "mobyvol"})
				r.add("VolumeCreate", fmt.Sprintf("%s %s %s", e(err), norm(vc.Volume.Name), vc.Volume.Driver))
				_, err = c.VolumeRemove(ctx, "mobyvol", client.VolumeRemoveOptions{})
				r.add("VolumeRemove", e(err))
				_, err = c.VolumeInspect(ctx, "mobyvol", client.VolumeInspectOptions{})
				r.add("VolumeInspect (removed)", e(err))
				// Events of the container above, bounded by until: right after
				// the last call, and again 2 s later.
				events := func() string {
					evc, ecancel := contextWithTimeout(ctx, 20*time.Second)
					defer ecancel()
					er := c.Events(evc, client.EventsListOptions{Since: fmt.Sprint(t0.Unix()), Until: fmt.Sprint(time.Now().Unix() + 1),
						Filters: make(client.Filters).Add("container", name)})
					var actions []string
					for {
						select {
						case m := <-er.Messages:
							actions = append(actions, strings.SplitN(string(m.Action), ":", 2)[0])
						case err := <-er.Err:
							if err != io.EOF {
								actions = append(actions, "error: "+e(err))
							}
							sort.Strings(actions)
							return strings.Join(actions, " ")
						}
					}
				}
				r.add("Events (since/until, container filter) at once", events())
				time.Sleep(2 * time.Second)
				r.add("Events (since/until, container filter) 2 s later", events())
			})
		})
	}
}

var _ = http.MethodGet
