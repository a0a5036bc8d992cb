package stacks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

// The application's files: one image holds the three tiers' programs
// (busybox's httpd with CGI scripts and nc); /app/version tells the api's
// image apart after the tag moved.
var appFiles = map[string]string{
	"Dockerfile": "FROM busybox\nCOPY app /app\nCOPY web /web\nCOPY api /api\n",
	// web: a CGI script that asks api and prints its answer.
	"web/health.txt": "ok\n",
	// (nc speaks HTTP: the static busybox's wget crashes resolving a name)
	"web/cgi-bin/index.cgi": "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n" +
		"echo \"web -> $(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 api 80 | awk 'b{print} /^\\r?$/{b=1}')\"\n",
	// api: a CGI script that prints its version, its config and db's answer.
	"api/cgi-bin/index.cgi": "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n" +
		"echo \"api:$(cat /app/version) $(cat /etc/api.conf) -> $(nc -w 2 db 5432 </dev/null)\"\n",
	// db: nc serving the value kept on its volume and its password's hash.
	"app/db.sh": "#!/bin/sh\n[ -s /data/value ] || echo value-42 > /data/value\n" +
		"trap exit TERM\nnc -ll -p 5432 -e /app/db-answer.sh & wait\n",
	"app/db-answer.sh": "#!/bin/sh\necho \"db:$(cat /data/value) pass:$(sha256sum /run/secrets/db_pass | cut -c1-8)\"\n",
}

const dbPass = "s3cret-pass"

// stackFile is the compose file of the application; %s is the registry.
const stackFile = `version: "3.8"
services:
  web:
    image: %[1]s/stack/app:1
    command: ["httpd", "-f", "-p", "80", "-h", "/web"]
    ports:
      - "8080:80"
    networks: [default, back]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/health.txt"]
      interval: 1s
      timeout: 1s
      retries: 2
    stop_grace_period: 1s
    deploy:
      replicas: 2
      placement:
        max_replicas_per_node: 1
  api:
    image: %[1]s/stack/api:1
    command: ["httpd", "-f", "-p", "80", "-h", "/api"]
    networks: [back]
    configs:
      - source: api_conf
        target: /etc/api.conf
    stop_grace_period: 1s
    deploy:
      update_config:
        monitor: 1s
  db:
    image: %[1]s/stack/app:1
    command: ["sh", "/app/db.sh"]
    networks: [back]
    volumes: ["dbdata:/data"]
    secrets: [db_pass]
    stop_grace_period: 1s
networks:
  back:
    driver: overlay
volumes:
  dbdata: {}
secrets:
  db_pass:
    file: ./db_pass.txt
configs:
  api_conf:
    file: ./api.conf
`

// buildImage builds the application's image with /app/version = version
// on engine 0 (the classic builder: no buildx here), pushes it as each
// of tags (under the registry) and untags it there; it returns the
// digest the registry gave the last push.
func buildImage(t *testing.T, version string, tags ...string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"app/version": version + "\n"}
	for k, v := range appFiles {
		files[k] = v
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e := bed.Engines[0].UnixHost()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli28, "build", "-q", "-t", reg+"/"+tags[0], dir)
	cmd.Env = append(shoaltest.DockerEnv(e, cfgDir), "DOCKER_BUILDKIT=0")
	if res := shoaltest.RunCmd(cmd); res.Exit != 0 {
		t.Fatalf("build: %s", res.Err)
	}
	var digest string
	for i, tag := range tags {
		ref := reg + "/" + tag
		if i > 0 {
			if res := run(ctx, cli28, e, "tag", reg+"/"+tags[0], ref); res.Exit != 0 {
				t.Fatalf("tag %s: %s", ref, res.Err)
			}
		}
		res := run(ctx, cli28, e, "push", ref)
		if res.Exit != 0 {
			t.Fatalf("push %s: %s", ref, res.Err)
		}
		digest = regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(res.Out)
	}
	for _, tag := range tags {
		if res := run(ctx, cli28, e, "rmi", reg+"/"+tag); res.Exit != 0 {
			t.Fatalf("rmi %s: %s", tag, res.Err)
		}
	}
	return digest
}

// lossBound bounds how long the published port may fail on the live
// nodes after a node running web is cut off: the lost node's tasks leave
// the mesh and the VIPs as soon as its engine stops answering (about a
// second with this cluster's health checks), but api or db may have run
// there too: the chain answers again once they are replaced (3 s of down
// grace, then a start; 7-17 s measured on a loaded machine).
const lossBound = 30 * time.Second

// built says the registry holds stack/app:1 (TestStackApp pushes it).
var built atomic.Bool

// appImage is the registry's stack/app:1, built and pushed if no test
// has yet.
func appImage(t *testing.T) string {
	t.Helper()
	if !built.Load() {
		buildImage(t, "v1", "stack/app:1")
		built.Store(true)
	}
	return reg + "/stack/app:1"
}

var hc = &http.Client{Timeout: 5 * time.Second}

// get fetches http://ip:8080/ through the routing mesh.
func get(ip string) (string, error) {
	resp, err := hc.Get("http://" + ip + ":8080/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return strings.TrimSpace(string(b)), err
}

// answers waits until every node address in ips answers want n times in
// a row, and returns how long that took.
func answers(t *testing.T, ips []string, want string, n int, within time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	defer func() {
		if t.Failed() {
			diagnose(t)
		}
	}()
	for _, ip := range ips {
		ok := 0
		waitFor(t, within, fmt.Sprintf("%s:8080 answers %q %d times in a row", ip, want, n), func() error {
			for ; ok < n; ok++ {
				if got, err := get(ip); err != nil || got != want {
					ok = 0
					return fmt.Errorf("%q %v", got, err)
				}
			}
			return nil
		})
	}
	return time.Since(t0)
}

// running lists the stack's running tasks as "<service> <node>" lines.
func running(t *testing.T, stack string) []string {
	t.Helper()
	res := docker(t, "stack", "ps", stack, "--filter", "desired-state=running", "--format", "{{.Name}} {{.Node}} {{.CurrentState}}")
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(res.Out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[2] == "Running" {
			out = append(out, strings.Split(f[0], ".")[0]+" "+f[1])
		}
	}
	sort.Strings(out)
	return out
}

// waitServices waits until `stack services` shows every service of the
// stack with the replicas wanted (name → "n/n").
func waitServices(t *testing.T, stack string, want map[string]string, within time.Duration) {
	t.Helper()
	waitFor(t, within, "the stack's services at their replicas", func() error {
		out := docker(t, "stack", "services", stack, "--format", "{{.Name}} {{.Replicas}}").Out
		got := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(l); len(f) >= 2 {
				got[f[0]] = f[1]
			}
		}
		for k, v := range want {
			if got[k] != v {
				return fmt.Errorf("stack services: %q", out)
			}
		}
		if len(got) != len(want) {
			return fmt.Errorf("stack services: %q", out)
		}
		return nil
	})
}

// engineIndex is the index in bed.Engines of the node named hostname.
func engineIndex(t *testing.T, hostname string) int {
	t.Helper()
	for i, e := range bed.Engines {
		if e.Hostname == hostname {
			return i
		}
	}
	t.Fatalf("no engine named %q", hostname)
	return -1
}

// stackDir writes the stack file and the files it names into a new
// directory.
func stackDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"docker-compose.yml": fmt.Sprintf(stackFile, reg),
		"db_pass.txt":        dbPass,
		"api.conf":           "greeting=hello",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestStackApp deploys the 3-tier application with `docker stack deploy`
// and follows it through the loss of a node running web, a second deploy
// after api's tag moved, and `docker stack rm`.
func TestStackApp(t *testing.T) {
	began := time.Now()
	buildImage(t, "v1", "stack/app:1", "stack/api:1")
	built.Store(true)
	t.Logf("image built and pushed in %s", time.Since(began).Round(100*time.Millisecond))
	dir := stackDir(t)
	deploy := func(t *testing.T) {
		t.Helper()
		if res := runIn(t.Context(), dir, cli28, host, "stack", "deploy", "-c", "docker-compose.yml", "app"); res.Exit != 0 {
			t.Fatalf("stack deploy: exit %d: %s%s", res.Exit, res.Out, res.Err)
		}
	}
	t.Cleanup(func() { removeStack(t, "app") })
	sum := sha256.Sum256([]byte(dbPass))
	want := func(version string) string {
		return fmt.Sprintf("web -> api:%s greeting=hello -> db:value-42 pass:%s", version, hex.EncodeToString(sum[:])[:8])
	}
	var ips []string
	for _, e := range bed.Engines {
		ips = append(ips, e.IP)
	}

	t.Run("deploy", func(t *testing.T) {
		deploy(t)
		if out := must(t, "stack", "ls", "--format", "{{.Name}} {{.Services}}"); out != "app 3" {
			t.Errorf("stack ls: %q, want app 3", out)
		}
		waitServices(t, "app", map[string]string{"app_web": "2/2", "app_api": "1/1", "app_db": "1/1"}, 90*time.Second)
		if out := must(t, "network", "ls", "--filter", "label=com.docker.stack.namespace=app", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"); sortLines(out) != "app_back overlay swarm\napp_default overlay swarm" {
			t.Errorf("the stack's networks: %q", out)
		}
		if out := must(t, "secret", "ls", "--format", "{{.Name}}"); out != "app_db_pass" {
			t.Errorf("secret ls: %q", out)
		}
		if out := must(t, "config", "ls", "--format", "{{.Name}}"); out != "app_api_conf" {
			t.Errorf("config ls: %q", out)
		}
		if out := must(t, "service", "ls", "--filter", "name=app_web", "--format", "{{.Ports}}"); out != "*:8080->80/tcp" {
			t.Errorf("web's ports: %q", out)
		}
		took := answers(t, ips, want("v1"), 4, 90*time.Second)
		t.Logf("every node answers web -> api -> db through :8080 (%s after the services converged); tasks: %v", took.Round(100*time.Millisecond), running(t, "app"))
		ps := docker(t, "stack", "ps", "app", "--format", "{{.Name}} {{.Image}} {{.DesiredState}}").Out
		for _, s := range []string{"app_web.1 ", "app_web.2 ", "app_api.1 ", "app_db.1 "} {
			if !strings.Contains(ps, s) {
				t.Errorf("stack ps lacks %s:\n%s", s, ps)
			}
		}
		// db's value is on the named volume the CLI declared for the stack.
		dbNode := ""
		for _, l := range running(t, "app") {
			if f := strings.Fields(l); f[0] == "app_db" {
				dbNode = f[1]
			}
		}
		if out := engine(t, engineIndex(t, dbNode), "volume", "ls", "--format", "{{.Name}}").Out; !strings.Contains(out, "app_dbdata") {
			t.Errorf("db's node %s has no volume app_dbdata: %q", dbNode, out)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("node running web lost", func(t *testing.T) {
		lost := -1
		for _, l := range running(t, "app") {
			// a worker's: node1 runs the cluster's only manager
			if f := strings.Fields(l); f[0] == "app_web" && f[1] != bed.Engines[0].Hostname {
				lost = engineIndex(t, f[1])
			}
		}
		if lost < 0 {
			t.Fatalf("no web task on a worker: %v", running(t, "app"))
		}
		var rest []string
		for i, e := range bed.Engines {
			if i != lost {
				rest = append(rest, e.IP)
			}
		}
		t.Cleanup(func() { restoreLink(t, lost) })
		if err := bed.LinkDown(lost); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		took := answers(t, rest, want("v1"), 6, time.Minute)
		t.Logf("%s cut off: the other nodes answer reliably through :8080 after %s", bed.Engines[lost].Hostname, took.Round(100*time.Millisecond))
		if took > lossBound {
			t.Errorf("the mesh took %s to leave the lost node's task out, want ≤ %s", took.Round(100*time.Millisecond), lossBound)
		}
		waitFor(t, time.Minute, "2 web tasks running on live nodes", func() error {
			n := 0
			for _, l := range running(t, "app") {
				if f := strings.Fields(l); f[0] == "app_web" && f[1] != bed.Engines[lost].Hostname {
					n++
				}
			}
			if n != 2 {
				return fmt.Errorf("running: %v", running(t, "app"))
			}
			return nil
		})
		t.Logf("web back at 2 replicas on live nodes %s after the loss", time.Since(t0).Round(100*time.Millisecond))
		restoreLink(t, lost)
		answers(t, ips, want("v1"), 4, time.Minute)
	})
	if t.Failed() {
		return
	}

	t.Run("tag moved", func(t *testing.T) {
		t0 := time.Now()
		digest := buildImage(t, "v2", "stack/api:1")
		deploy(t)
		t.Logf("v2 pushed and deployed in %s", time.Since(t0).Round(100*time.Millisecond))
		waitFor(t, 90*time.Second, "api's task rolled to the new digest", func() error {
			img := must(t, "service", "inspect", "app_api", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}")
			if !strings.HasSuffix(img, "@"+digest) {
				return fmt.Errorf("api's image %s, want @%s", img, digest)
			}
			out := docker(t, "stack", "ps", "app", "--no-trunc", "--filter", "desired-state=running", "--format", "{{.Name}} {{.Image}} {{.CurrentState}}").Out
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "app_api.") && strings.Contains(l, digest) && strings.Contains(l, "Running") {
					return nil
				}
			}
			return fmt.Errorf("stack ps:\n%s", out)
		})
		t.Logf("api rolled to the new digest %s after the deploy", time.Since(t0).Round(100*time.Millisecond))
		answers(t, ips, want("v2"), 4, time.Minute)
		t.Logf("every node answers api:v2 %s after the deploy", time.Since(t0).Round(100*time.Millisecond))
		if img := must(t, "service", "inspect", "app_web", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}"); !strings.Contains(img, "/stack/app:1@sha256:") {
			t.Errorf("web's image %s, want pinned to a digest", img)
		}
	})

	t.Run("rm", func(t *testing.T) {
		t0 := time.Now()
		if res := docker(t, "stack", "rm", "app"); res.Exit != 0 {
			t.Errorf("stack rm: exit %d: %s%s", res.Exit, res.Out, res.Err)
		}
		waitGone(t, "app")
		t.Logf("nothing of the stack left %s after stack rm", time.Since(t0).Round(100*time.Millisecond))
	})
	t.Logf("TestStackApp took %s", time.Since(began).Round(100*time.Millisecond))
}

// restoreLink brings engine i's link back (a no-op if it is up) and
// waits for 3 Ready nodes and for the node's stale task containers to go.
func restoreLink(t *testing.T, i int) {
	t.Helper()
	if err := bed.LinkUp(i); err != nil {
		t.Errorf("link up %d: %v", i, err)
		return
	}
	waitFor(t, time.Minute, "3 Ready nodes", func() error {
		if out := docker(t, "node", "ls", "--format", "{{.Status}}").Out; strings.Count(out, "Ready") != 3 {
			return fmt.Errorf("nodes: %q", out)
		}
		return nil
	})
	waitFor(t, time.Minute, "the returned node's stale web task gone", func() error {
		on := strings.Fields(engine(t, i, "ps", "-q", "--filter", "label=com.docker.swarm.service.name=app_web").Out)
		web := 0
		for _, l := range running(t, "app") {
			if f := strings.Fields(l); f[0] == "app_web" && f[1] == bed.Engines[i].Hostname {
				web++
			}
		}
		if len(on) != web {
			return fmt.Errorf("%d web containers on %s, %d tasks", len(on), bed.Engines[i].Hostname, web)
		}
		return nil
	})
}

// removeStack removes what the stack left (a no-op once stack rm ran).
func removeStack(t *testing.T, stack string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run(ctx, cli28, host, "stack", "rm", stack)
}

// waitGone waits until nothing of the stack is left: services, networks,
// secrets, configs, and task containers on every engine.
func waitGone(t *testing.T, stack string) {
	t.Helper()
	label := "label=com.docker.stack.namespace=" + stack
	waitFor(t, time.Minute, "nothing of stack "+stack+" left", func() error {
		for _, kind := range []string{"service", "network", "secret", "config"} { // through the cluster
			if out := docker(t, kind, "ls", "-q", "--filter", label).Out; strings.TrimSpace(out) != "" {
				return fmt.Errorf("%s ls: %q", kind, out)
			}
		}
		for i := range bed.Engines {
			if out := engine(t, i, "ps", "-aq", "--filter", label).Out; strings.TrimSpace(out) != "" {
				return fmt.Errorf("task containers left on %s: %q", bed.Engines[i].Hostname, out)
			}
			if out := engine(t, i, "network", "ls", "-q", "--filter", "label=com.shoal.overlay.network", "--filter", "name="+stack+"_").Out; strings.TrimSpace(out) != "" {
				return fmt.Errorf("engine networks left on %s: %q", bed.Engines[i].Hostname, out)
			}
		}
		return nil
	})
	if out := docker(t, "stack", "ls", "--format", "{{.Name}}").Out; strings.Contains(out, stack) {
		t.Errorf("stack ls after rm: %q", out)
	}
}

func sortLines(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	sort.Strings(ls)
	return strings.Join(ls, "\n")
}

// diagnose logs, on a failure, what web's and api's tasks see of the
// next tier.
func diagnose(t *testing.T) {
	for _, c := range []struct{ service, sh string }{
		{"app_web", "nslookup api; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 api 80"},
		{"app_api", "nslookup db; nc -w 2 db 5432 </dev/null; cat /etc/api.conf"},
		{"app_db", "ls -l /run/secrets /data; cat /data/value"},
	} {
		ids := strings.Fields(docker(t, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+c.service).Out)
		for _, id := range ids {
			res := docker(t, "exec", id, "sh", "-c", c.sh+" 2>&1")
			t.Logf("diagnose %s %s: exit %d\n%s%s", c.service, id, res.Exit, res.Out, res.Err)
		}
	}
}
