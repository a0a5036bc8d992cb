// Package discovery tests shoal's key-value discovery against real stores
// that the tests start themselves (Debian's etcd and ZooKeeper): join, list,
// TTL expiry, the watched pool, a store outage, and replicated managers that
// fail over. Engines are real dockerd in network namespaces (test/testbed).
package discovery

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

const bedPrefix = "disc"

var bed *testbed.Bed // two engines shared by the tests that need engines

func TestMain(m *testing.M) { os.Exit(mainRun(m)) }

func mainRun(m *testing.M) int {
	return testbed.Main(m, testbed.MainOptions{Options: testbed.Options{Engines: 2, Prefix: bedPrefix}}, func(_ testing.TB, b *testbed.Bed) { bed = b })
}

// engineAddr is engine i's address as `shoal join --advertise` takes it.
func engineAddr(i int) string { return net.JoinHostPort(bed.Engines[i].IP, "2375") }

// ---------------------------------------------------------------- stores

// store is a real key-value server started for one test.
type store struct {
	kind   string // etcd or zk
	uri    string // discovery URI with a prefix unique to the test
	p      *shoaltest.Proc
	argv   []string
	env    []string
	client string // 127.0.0.1:port
}

var storeKinds = []string{"etcd", "zk"}

func startStore(t *testing.T, kind string) *store {
	t.Helper()
	dir := t.TempDir()
	port := shoaltest.FreePort(t)
	s := &store{kind: kind, client: fmt.Sprintf("127.0.0.1:%d", port)}
	prefix := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	s.uri = fmt.Sprintf("%s://%s/%s", kind, s.client, prefix)
	switch kind {
	case "etcd":
		if _, err := exec.LookPath("etcd"); err != nil {
			t.Fatalf("etcd not installed (apt-get install etcd-server): %v", err)
		}
		peer := fmt.Sprintf("http://127.0.0.1:%d", shoaltest.FreePort(t))
		s.argv = []string{"etcd", "--name", "t", "--data-dir", filepath.Join(dir, "data"),
			"--listen-client-urls", "http://" + s.client, "--advertise-client-urls", "http://" + s.client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "t=" + peer}
	case "zk":
		jar := "/usr/share/java/zookeeper.jar"
		if _, err := os.Stat(jar); err != nil {
			t.Fatalf("zookeeper not installed (apt-get install zookeeperd): %v", err)
		}
		cfg := filepath.Join(dir, "zoo.cfg")
		conf := fmt.Sprintf("tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
			"minSessionTimeout=400\nmaxSessionTimeout=60000\nadmin.enableServer=false\n4lw.commands.whitelist=ruok\n", filepath.Join(dir, "data"), port)
		if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		s.argv = []string{"java", "-Xmx128m", "-Dzookeeper.jmx.log4j.disable=true", "-cp", jar,
			"org.apache.zookeeper.server.ZooKeeperServerMain", cfg}
	default:
		t.Fatalf("unknown store %q", kind)
	}
	s.p = shoaltest.StartProc(t, kind, s.env, s.argv...)
	s.waitReady(t)
	return s
}

func (s *store) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if s.ready() {
			return
		}
		if !s.p.Alive() {
			t.Fatalf("%s exited:\n%s", s.kind, s.p.Tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready in 30s:\n%s", s.kind, s.p.Tail(30))
}

func (s *store) ready() bool {
	switch s.kind {
	case "etcd":
		c := &http.Client{Timeout: time.Second}
		resp, err := c.Get("http://" + s.client + "/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(b), "true")
	default:
		c, err := net.DialTimeout("tcp", s.client, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		io.WriteString(c, "ruok")
		b, _ := io.ReadAll(c)
		return string(b) == "imok"
	}
}

// crash SIGKILLs the server; restart brings it back on the same data.
func (s *store) crash() { s.p.Kill() }

func (s *store) restart(t *testing.T) {
	t.Helper()
	s.p.Restart(t)
	s.waitReady(t)
}

// ---------------------------------------------------------------- shoal

func shoal(t testing.TB, ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, shoaltest.Binary(t), args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// list runs `shoal list` and returns its lines.
func list(t *testing.T, uri string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := shoal(t, ctx, "list", uri)
	if err != nil {
		t.Fatalf("shoal list %s: %v: %s", uri, err, out)
	}
	return lines(out)
}

func lines(out string) []string {
	var l []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if x := strings.TrimSpace(sc.Text()); x != "" {
			l = append(l, x)
		}
	}
	return l
}

func join(t *testing.T, uri, addr string, extra ...string) *shoaltest.Shoal {
	t.Helper()
	args := append([]string{"join", "--advertise", addr, "--heartbeat", "500ms", "--ttl", "2s", "--log-level", "debug"}, extra...)
	return shoaltest.Start(t, shoaltest.Options{Args: append(args, uri), Name: "join-" + addr, NoWait: true})
}

// manager is one `shoal manage`.
type manager struct{ *shoaltest.Shoal }

func startManager(t *testing.T, name, uri string, extra ...string) *manager {
	t.Helper()
	return startManagerAt(t, name, shoaltest.FreeAddr(t), uri, extra...)
}

func startManagerAt(t *testing.T, name, addr, uri string, extra ...string) *manager {
	t.Helper()
	args := append([]string{"manage", "-H", "tcp://" + addr, "--log-level", "debug"}, shoaltest.FastFlags...)
	args = append(append(args, extra...), uri)
	return &manager{shoaltest.Start(t, shoaltest.Options{Args: args, Name: name})}
}

// restart starts a stopped or killed manager again with the same flags.
func (m *manager) restart(t *testing.T) {
	t.Helper()
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
}

var httpc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func (m *manager) get(path string) ([]byte, error) {
	resp, err := httpc.Get("http://" + m.Addr + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b, err
}

// nodes returns the addresses of the engines in the manager's pool.
func (m *manager) nodes() ([]string, error) {
	b, err := m.get("/nodes")
	if err != nil {
		return nil, err
	}
	var ns []struct {
		Status struct{ State, Addr string }
	}
	if err := json.Unmarshal(b, &ns); err != nil {
		return nil, err
	}
	var addrs []string
	for _, n := range ns {
		addrs = append(addrs, n.Status.Addr+"/"+n.Status.State)
	}
	slices.Sort(addrs)
	return addrs, nil
}

// role returns what /info says: Role and Primary from SystemStatus.
func (m *manager) role() (role, primary string, err error) {
	b, err := m.get("/info")
	if err != nil {
		return "", "", err
	}
	var info struct{ SystemStatus [][2]string }
	if err := json.Unmarshal(b, &info); err != nil {
		return "", "", err
	}
	for _, kv := range info.SystemStatus {
		switch kv[0] {
		case "Role":
			role = kv[1]
		case "Primary":
			primary = kv[1]
		}
	}
	return role, primary, nil
}

func (m *manager) docker(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if stdin == "" {
		o, e, err := shoaltest.Docker(ctx, m.Host, args...)
		if err != nil {
			return o, fmt.Errorf("docker %s via %s: %v: %s", strings.Join(args, " "), m.Addr, err, e)
		}
		return o, nil
	}
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+m.Host, "DOCKER_CONFIG="+t.TempDir())
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return string(out), fmt.Errorf("docker %s via %s: %v: %s", strings.Join(args, " "), m.Addr, err, stderr)
	}
	return string(out), nil
}

// wantPool waits until the manager's pool is exactly the engines listed
// (all healthy).
func wantPool(t *testing.T, m *manager, timeout time.Duration, engines ...int) {
	t.Helper()
	var want []string
	for _, i := range engines {
		want = append(want, bed.Engines[i].IP+"/ready")
	}
	slices.Sort(want)
	shoaltest.Eventually(t, timeout, fmt.Sprintf("pool of %s = %v", m.Name, want), func() error {
		got, err := m.nodes()
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("pool is %v", got)
		}
		return nil
	})
}
