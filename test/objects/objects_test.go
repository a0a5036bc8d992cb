// Package objects tests, end to end, what issue 4 adds on top of the
// container lifecycle: networks and volumes per node, merged events, image
// build/commit/push/import, prune and system df across the pool.
package objects

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

var (
	bed *testbed.Bed
	reg string // registry address, reachable from the engines
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	return testbed.Main(m, testbed.MainOptions{Options: testbed.Options{Engines: 3, Prefix: "obj", ExtraArgs: []string{"--insecure-registry", "10.213.0.0/16"}}},
		func(tb testing.TB, b *testbed.Bed) {
			bed, reg = b, b.Gateway+":5000"
			stop, err := startRegistry(reg)
			if err != nil {
				tb.Fatalf("registry: %v", err)
			}
			tb.Cleanup(stop)
		})
}

func startRegistry(addr string) (func(), error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, fmt.Errorf("docker-registry (Debian package docker-registry) is needed: %w", err)
	}
	dir, err := os.MkdirTemp("", "objreg-")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "config.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)), 0o644)
	cmd := exec.Command(bin, "serve", cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() { cmd.Process.Kill(); cmd.Wait(); os.RemoveAll(dir) }, nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, s *shoaltest.Shoal, args ...string) string {
	t.Helper()
	out, e, err := s.Docker(ctxT(t), args...)
	if err != nil {
		t.Fatalf("docker %v: %v\n%s", args, err, e)
	}
	return strings.TrimSpace(out)
}

func fails(t *testing.T, s *shoaltest.Shoal, want string, args ...string) {
	t.Helper()
	out, e, err := s.Docker(ctxT(t), args...)
	if err == nil || !strings.Contains(e, want) {
		t.Fatalf("docker %v: err %v, stdout %q, stderr %q; want failure containing %q", args, err, out, e, want)
	}
}

func engineHas(t *testing.T, i int, args ...string) string {
	t.Helper()
	out, _, _ := shoaltest.Docker(ctxT(t), bed.Engines[i].Host(), args...)
	return strings.TrimSpace(out)
}

func TestNetworksAndVolumesPerNode(t *testing.T) {
	s := shoaltest.Manage(t, "nodes://"+strings.Join(bed.Hosts(), ","))
	t.Cleanup(func() {
		s.Docker(context.Background(), "rm", "-f", "n1", "n2", "n3")
		s.Docker(context.Background(), "network", "rm", "appnet", "node3/pinned")
		s.Docker(context.Background(), "volume", "rm", "data", "node2/v2")
	})
	// With a node: created there.
	must(t, s, "network", "create", "node3/pinned")
	if engineHas(t, 2, "network", "ls", "-q", "--filter", "name=^pinned$") == "" {
		t.Fatal("node3/pinned is not on node3")
	}
	must(t, s, "volume", "create", "node2/v2")
	if engineHas(t, 1, "volume", "ls", "-q") != "v2" {
		t.Fatal("node2/v2 is not on node2")
	}
	// Listed under the names given, the predefined networks once per node.
	ls := must(t, s, "network", "ls", "--format", "{{.Name}}")
	count := func(out, name string) (n int) {
		for _, l := range strings.Split(out, "\n") {
			if strings.TrimSpace(l) == name {
				n++
			}
		}
		return n
	}
	if count(ls, "bridge") != 3 || count(ls, "pinned") != 1 {
		t.Errorf("network ls: want bridge 3 times, pinned once:\n%s", ls)
	}
	if vl := must(t, s, "volume", "ls", "--format", "{{.Name}}"); count(vl, "v2") != 1 {
		t.Errorf("volume ls: %s", vl)
	}
	// Without a node: on one node, and every user of it goes there.
	must(t, s, "network", "create", "appnet")
	must(t, s, "volume", "create", "data")
	must(t, s, "run", "-d", "--name", "n1", "--net", "appnet", "busybox", "httpd", "-f", "-p", "80")
	must(t, s, "run", "-d", "--name", "n2", "--net", "appnet", "-v", "data:/data", "busybox", "sleep", "300")
	node := func(c string) string { return must(t, s, "inspect", "-f", "{{.Node.Name}}", c) }
	if node("n1") != node("n2") {
		t.Fatalf("containers on one network landed on %s and %s", node("n1"), node("n2"))
	}
	if _, e, err := s.Docker(ctxT(t), "exec", "n2", "ping", "-c", "1", "-W", "2", "n1"); err != nil {
		t.Fatalf("n2 cannot reach n1 by name on appnet: %v %s", err, e)
	}
	// Names are unique; a second volume create returns the same volume.
	fails(t, s, "already exists", "network", "create", "appnet")
	if v := must(t, s, "volume", "create", "data"); v != "data" {
		t.Errorf("volume create of an existing name: %q", v)
	}
	// connect to a network of another node is refused with a reason.
	must(t, s, "run", "-d", "--name", "n3", "-e", "constraint:node!="+node("n1"), "busybox", "sleep", "300")
	fails(t, s, "not found on node", "network", "connect", "appnet", "n3")
	// inspect, rm, prune.
	if name := must(t, s, "network", "inspect", "-f", "{{.Name}}", "appnet"); name != "appnet" {
		t.Errorf("network inspect name %q", name)
	}
	if mp := must(t, s, "volume", "inspect", "-f", "{{.Mountpoint}}", "node2/v2"); mp == "" {
		t.Error("volume inspect: no mountpoint")
	}
	must(t, s, "volume", "rm", "node2/v2")
	must(t, s, "network", "rm", "node3/pinned")
	fails(t, s, "not found", "network", "inspect", "node3/pinned")
	must(t, s, "network", "prune", "-f")
}

func TestEventsCarryNodes(t *testing.T) {
	b := testbed.MustStart(t, testbed.Options{Engines: 2, Prefix: "objev"})
	if err := b.LoadBusyboxAll(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	s := shoaltest.Manage(t, "nodes://"+strings.Join(b.Hosts(), ","), shoaltest.FastFlags...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "events", "--format", "{{json .}}")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+s.Host, "DOCKER_CONFIG="+t.TempDir())
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	events := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				events <- m
			}
		}
		close(events)
	}()
	time.Sleep(500 * time.Millisecond)
	must(t, s, "run", "-d", "--name", "ev1", "-e", "constraint:node==node2", "busybox", "true")
	wait := func(what string, ok func(map[string]any) bool) map[string]any {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case m, open := <-events:
				if !open {
					t.Fatalf("events stream ended before %s", what)
				}
				if ok(m) {
					return m
				}
			case <-timeout:
				t.Fatalf("no %s event", what)
			}
		}
	}
	attrs := func(m map[string]any) map[string]any {
		a, _ := m["Actor"].(map[string]any)
		at, _ := a["Attributes"].(map[string]any)
		return at
	}
	m := wait("container start", func(m map[string]any) bool { return m["Type"] == "container" && m["Action"] == "start" })
	at := attrs(m)
	if at["node.name"] != "node2" || at["node.addr"] == "" || at["node.ip"] != b.Engines[1].IP || at["node.id"] == "" || at["name"] != "ev1" {
		t.Errorf("start event attributes %v", at)
	}
	if err := b.Stop(0); err != nil {
		t.Fatal(err)
	}
	m = wait("engine_disconnect", func(m map[string]any) bool { return m["Action"] == "engine_disconnect" })
	if attrs(m)["node.name"] != "node1" {
		t.Errorf("disconnect event %v", m)
	}
	if err := b.Start(ctxT(t), 0); err != nil {
		t.Fatal(err)
	}
	wait("engine_reconnect", func(m map[string]any) bool {
		return m["Action"] == "engine_reconnect" && attrs(m)["node.name"] == "node1"
	})
	// Events of the node that came back reach the same stream.
	must(t, s, "run", "-d", "--name", "ev2", "-e", "constraint:node==node1", "busybox", "true")
	wait("start on the returned node", func(m map[string]any) bool {
		return m["Action"] == "start" && attrs(m)["node.name"] == "node1"
	})
	// since/until replay is answered by the engines, tagged the same way.
	out := must(t, s, "events", "--since", "1m", "--until", "0s", "--filter", "container=ev1", "--format", "{{.Action}} {{index .Actor.Attributes \"node.name\"}}")
	if !strings.Contains(out, "create node2") || !strings.Contains(out, "start node2") {
		t.Errorf("replayed events: %q", out)
	}
}

func TestImageBuildCommitPushImport(t *testing.T) {
	s := shoaltest.Manage(t, "nodes://"+strings.Join(bed.Hosts(), ","))
	// build: placed by constraint build args, the image is on that node only.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nARG X=1\nRUN echo built-$X > /built\nCMD [\"cat\", \"/built\"]\n"), 0o644)
	cmd := exec.CommandContext(ctxT(t), "docker", "build", "-q", "--build-arg", "constraint:node==node2", "--build-arg", "X=7", "-t", "built:v1", dir)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+s.Host, "DOCKER_CONFIG="+t.TempDir(), "DOCKER_BUILDKIT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	if engineHas(t, 1, "images", "-q", "built:v1") == "" || engineHas(t, 0, "images", "-q", "built:v1") != "" {
		t.Fatal("built:v1 should be on node2 only")
	}
	if out := must(t, s, "run", "--rm", "built:v1"); out != "built-7" {
		t.Errorf("built image says %q (the constraint build arg must not reach the build, X must)", out)
	}
	// commit: on the container's node.
	must(t, s, "run", "-d", "--name", "tocommit", "-e", "constraint:node==node3", "busybox", "sh", "-c", "echo c > /c; sleep 300")
	t.Cleanup(func() { s.Docker(context.Background(), "rm", "-f", "tocommit") })
	must(t, s, "commit", "tocommit", "committed:v1")
	if engineHas(t, 2, "images", "-q", "committed:v1") == "" {
		t.Fatal("committed image not on node3")
	}
	if out := must(t, s, "run", "--rm", "committed:v1", "cat", "/c"); out != "c" {
		t.Errorf("committed image content %q", out)
	}
	// docker login is checked by an engine against the registry.
	login := exec.CommandContext(ctxT(t), "docker", "login", "-u", "u", "--password-stdin", reg)
	login.Env = append(os.Environ(), "DOCKER_HOST="+s.Host, "DOCKER_CONFIG="+t.TempDir())
	login.Stdin = strings.NewReader("p\n")
	if out, err := login.CombinedOutput(); err != nil || !strings.Contains(string(out), "Login Succeeded") {
		t.Errorf("docker login through shoal: %v\n%s", err, out)
	}
	// push from the node that has it, then pull everywhere.
	ref := reg + "/test/committed:v1"
	must(t, s, "tag", "committed:v1", ref)
	shoaltest.Eventually(t, 20*time.Second, "push", func() error {
		_, e, err := s.Docker(ctxT(t), "push", ref)
		if err != nil {
			return fmt.Errorf("%v %s", err, e)
		}
		return nil
	})
	must(t, s, "rmi", ref)
	pull := must(t, s, "pull", ref)
	if !strings.Contains(pull, ref) {
		t.Errorf("pull output %q", pull)
	}
	for i := range bed.Engines {
		if engineHas(t, i, "images", "-q", ref) == "" {
			t.Errorf("node%d lacks %s after pull", i+1, ref)
		}
	}
	// import: on every node.
	tarPath := filepath.Join(t.TempDir(), "fs.tar")
	must(t, s, "export", "-o", tarPath, "tocommit")
	must(t, s, "import", tarPath, "imported:v1")
	for i := range bed.Engines {
		if engineHas(t, i, "images", "-q", "imported:v1") == "" {
			t.Errorf("node%d lacks imported:v1", i+1)
		}
	}
	// history and save answered by a node that has the image.
	if h := must(t, s, "history", "-q", "built:v1"); h == "" {
		t.Error("history empty")
	}
	// prune and df across the pool.
	df := must(t, s, "system", "df", "--format", "{{.Type}} {{.TotalCount}}")
	if !strings.Contains(df, "Images") {
		t.Errorf("system df: %q", df)
	}
	must(t, s, "image", "prune", "-f")
	must(t, s, "builder", "prune", "-f")
	if out := must(t, s, "system", "prune", "-f"); !strings.Contains(out, "Total reclaimed space") {
		t.Errorf("system prune: %q", out)
	}
	must(t, s, "rmi", "built:v1", "imported:v1", "committed:v1", ref)
}
