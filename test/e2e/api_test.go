package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestAPIPingVersionInfo(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	for _, prefix := range []string{"", "/v1.41", "/v1.50", "/v1.56"} {
		for _, m := range []string{"GET", "HEAD"} {
			st, hdr, body, err := sh.Do(ctx, m, prefix+"/_ping", nil, nil)
			if err != nil || st != 200 {
				t.Errorf("%s %s/_ping: %d %v %s", m, prefix, st, err, body)
				continue
			}
			if m == "GET" && string(body) != "OK" {
				t.Errorf("GET %s/_ping body %q, want OK", prefix, body)
			}
			if m == "HEAD" && len(body) != 0 {
				t.Errorf("HEAD %s/_ping has a body %q", prefix, body)
			}
			if hdr.Get("Api-Version") == "" {
				t.Errorf("%s %s/_ping: no API-Version header", m, prefix)
			}
		}
		st, _, body, err := sh.Do(ctx, "GET", prefix+"/version", nil, nil)
		var v struct{ Version, APIVersion, MinAPIVersion, Os string }
		if err != nil || st != 200 || json.Unmarshal(body, &v) != nil {
			t.Errorf("GET %s/version: %d %v %s", prefix, st, err, body)
		} else if v.APIVersion == "" || v.MinAPIVersion == "" || v.Os != "linux" {
			t.Errorf("GET %s/version: incomplete %s", prefix, body)
		}
		st, _, body, err = sh.Do(ctx, "GET", prefix+"/info", nil, nil)
		var info struct {
			Name, ServerVersion string
			NCPU                int
		}
		if err != nil || st != 200 || json.Unmarshal(body, &info) != nil {
			t.Errorf("GET %s/info: %d %v %s", prefix, st, err, body)
		} else if info.NCPU <= 0 {
			t.Errorf("GET %s/info: NCPU=%d", prefix, info.NCPU)
		}
	}
}

func TestAPIErrors(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	type msg struct {
		Message string `json:"message"`
	}
	check := func(method, path string, body []byte, want int, contains string) {
		t.Helper()
		st, hdr, b, err := sh.Do(ctx, method, path, body, nil)
		if err != nil {
			t.Errorf("%s %s: %v", method, path, err)
			return
		}
		if st != want {
			t.Errorf("%s %s: status %d, want %d: %s", method, path, st, want, b)
		}
		var m msg
		if err := json.Unmarshal(b, &m); err != nil || m.Message == "" {
			t.Errorf("%s %s: body is not Docker JSON error: %q", method, path, b)
		}
		if !strings.Contains(hdr.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: Content-Type %q", method, path, hdr.Get("Content-Type"))
		}
		if contains != "" && !strings.Contains(strings.ToLower(m.Message), strings.ToLower(contains)) {
			t.Errorf("%s %s: message %q does not contain %q", method, path, m.Message, contains)
		}
	}
	check("GET", "/nosuchthing", nil, 404, "")
	check("GET", "/v1.41/nosuchthing/at/all", nil, 404, "")
	check("GET", "/plugins/privileges?remote=vieux/sshfs", nil, 501, "not supported")
	check("GET", "/v1.45/plugins/vieux/sshfs/json", nil, 501, "not supported")
	check("POST", "/swarm/init", nil, 501, "not supported")
	check("POST", "/swarm/leave?force=1", nil, 503, "This node is not part of a swarm")
	check("POST", "/volumes/create", []byte(`{"Name": "../../etc"}`), 400, "includes invalid characters")
	check("GET", "/v1.99999999999999999999/info", nil, 400, "too new")
	check("GET", "/v1.24/info", nil, 400, "too old")
	check("GET", "/v1.99/info", nil, 400, "too new")
	check("GET", "/v1.24/_ping", nil, 400, "")
	check("POST", "/containers/create", []byte(`{"Image": "busybox", `), 400, "")
	check("POST", "/v1.41/containers/create", []byte(`not json`), 400, "")
	check("GET", "/containers/nosuchcontainer-xyz/json", nil, 404, "No such container")
	check("POST", "/containers/nosuchcontainer-xyz/start", nil, 404, "No such container")
	check("DELETE", "/containers/nosuchcontainer-xyz", nil, 404, "No such container")

	e := dkFail(t, "inspect", "--type", "container", "nosuchcontainer-xyz")
	if !strings.Contains(e.stderr, "No such container") {
		t.Errorf("CLI inspect of unknown container: %q", e.stderr)
	}
	e = dkFail(t, "plugin", "inspect", "vieux/sshfs")
	if !strings.Contains(e.stderr, "not supported") {
		t.Errorf("CLI plugin inspect: %q, want 'not supported'", e.stderr)
	}
	// Listing is served: every engine's plugins (none here).
	if out := dk(t, "plugin", "ls", "--format", "{{.Name}}"); strings.TrimSpace(out) != "" {
		t.Errorf("CLI plugin ls: %q, want no plugin", out)
	}
}

// TestAPIClients runs the same commands with CLI 28, CLI 28 pinned to API
// 1.41 and the Debian CLI 20.10.
func TestAPIClients(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	clients := []struct {
		name string
		c    dockerCmd
	}{
		{"cli28", dockerCmd{bin: cli28}},
		{"cli28-api1.41", dockerCmd{bin: cli28, env: []string{"DOCKER_API_VERSION=1.41"}}},
		{"cli20.10", dockerCmd{bin: cli2010}},
	}
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			run := func(args ...string) string {
				t.Helper()
				c := cl.c
				c.host = sh.Host
				c.args = args
				out, err := runDocker(ctx, c)
				if err != nil {
					t.Fatalf("%v", err)
				}
				return out
			}
			out := run("version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}}")
			f := strings.Fields(out)
			if len(f) != 2 {
				t.Fatalf("version: %q", out)
			}
			if cl.name != "cli28" && f[1] != "1.41" {
				t.Errorf("client API version %q, want 1.41", f[1])
			}
			out = run("info", "--format", "{{.ServerVersion}}|{{.NCPU}}")
			if !strings.Contains(strings.ToLower(out), "shoal") {
				t.Errorf("info: %q does not mention shoal", out)
			}
			name := uniq("cl")
			out = run("run", "--rm", "--name", name, "busybox", "echo", "hello-"+cl.name)
			if strings.TrimSpace(out) != "hello-"+cl.name {
				t.Errorf("run --rm: %q", out)
			}
			run("run", "-d", "--name", name, "busybox", "sleep", "60")
			defer rmf(t, name)
			out = run("ps", "--filter", "name="+name, "--format", "{{.Names}}")
			if !strings.HasSuffix(strings.TrimSpace(out), "/"+name) {
				t.Errorf("ps: %q, want node/%s", out, name)
			}
			out = run("exec", name, "echo", "in-exec")
			if strings.TrimSpace(out) != "in-exec" {
				t.Errorf("exec: %q", out)
			}
			out = run("inspect", "--format", "{{.State.Running}}", name)
			if strings.TrimSpace(out) != "true" {
				t.Errorf("inspect: %q", out)
			}
			c := cl.c
			c.host, c.args, c.stdin = sh.Host, []string{"run", "-i", "--rm", "busybox", "cat"}, strings.NewReader("stdin-"+cl.name+"\n")
			if out, err := runDocker(ctx, c); err != nil || out != "stdin-"+cl.name+"\n" {
				t.Errorf("run -i cat: %q %v", out, err)
			}
			e := cl.c
			e.host, e.args = sh.Host, []string{"exec", name, "sh", "-c", "exit 3"}
			if _, err := runDocker(ctx, e); err == nil || err.(*dockerErr).code != 3 {
				t.Errorf("exec exit 3: %v", err)
			}
			dst := t.TempDir() + "/hostname"
			run("cp", name+":/etc/hostname", dst)
			run("cp", dst, name+":/tmp/copied")
			if out := run("exec", name, "cat", "/tmp/copied"); strings.TrimSpace(out) == "" {
				t.Errorf("cp round trip: %q", out)
			}
			run("exec", name, "sh", "-c", "echo to-log > /proc/1/fd/1")
			if out := run("logs", name); !strings.Contains(out, "to-log") {
				t.Errorf("logs: %q", out)
			}
			out = run("images", "--format", "{{.Repository}}:{{.Tag}}")
			if !strings.Contains(out, "busybox:latest") {
				t.Errorf("images: %q", out)
			}
			run("rm", "-f", name)
		})
	}
}

// A request every engine refuses alike (a bad pattern in a list filter) is
// answered as one engine answers it, not as an empty list; the CLI then
// fails as it does against an engine.
func TestListRefusedByEveryEngine(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	q := "?filters=" + url.QueryEscape(`{"reference":["["]}`)
	direct, err := httpc.Get("http://" + strings.TrimPrefix(bed.Engines[0].TCPAddr, "tcp://") + "/v1.41/images/json" + q)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(direct.Body)
	direct.Body.Close()
	st, _, got, err := sh.Do(ctx, "GET", "/v1.41/images/json"+q, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st != direct.StatusCode || strings.TrimSpace(string(got)) != strings.TrimSpace(string(want)) {
		t.Fatalf("shoal: %d %s; the engine: %d %s", st, got, direct.StatusCode, want)
	}
	if direct.StatusCode == http.StatusOK {
		t.Fatalf("the engine accepted the bad pattern: %s", want)
	}
	if out, err := runDocker(ctx, dockerCmd{host: sh.Host, args: []string{"images", "--filter", "reference=["}}); err == nil {
		t.Fatalf("docker images with a bad pattern succeeded through shoal: %s", out)
	}
}
