package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/test/shoaltest"
)

const apiPort = 2385 // shoal's Docker API inside each namespace (dockerd has 2375)

// host is one cluster node: its shoal process and data directory.
type host struct {
	i    int
	p    *shoaltest.Shoal
	dir  string
	args []string
}

func apiOf(i int) string { return fmt.Sprintf("tcp://%s:%d", bed.Engines[i].IP, apiPort) }

func nodeArgs(i int, dir string) []string {
	return []string{"--data-dir", dir, "--engine", bed.Engines[i].UnixHost(),
		"--advertise-addr", bed.Engines[i].IP, "-H", fmt.Sprintf("tcp://0.0.0.0:%d", apiPort), "--insecure-no-tlsverify",
		"--engine-refresh-interval", "500ms", "--engine-failure-retry", "2"}
}

func docker(t *testing.T, host string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, errOut, err := shoaltest.Docker(ctx, host, args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func dockerErr(host string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, errOut, err := shoaltest.Docker(ctx, host, args...)
	return out + errOut, err
}

func shoalCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := execOut(ctx, shoaltest.Binary(t), args...)
	return strings.TrimSpace(out), err
}

// readyNodes counts the Ready nodes in docker node ls.
func readyNodes(t *testing.T, api string) (int, string) {
	out, err := dockerErr(api, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}} {{.Self}}")
	if err != nil {
		return 0, out
	}
	// A node counts once its engine has answered: until then it shows the
	// hostname its join request gave, not the engine's (nodeN here).
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && strings.HasPrefix(f[0], "node") && f[1] == "Ready" {
			n++
		}
	}
	return n, out
}

// engineHas says whether engine i holds a container named name (asked
// directly over its socket, not through shoal).
func engineHas(t *testing.T, i int, name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _, err := bed.Docker(ctx, bed.Engines[i].UnixHost(), "ps", "-a", "--format", "{{.Names}}")
	if err != nil {
		t.Fatalf("engine %d ps: %v", i, err)
	}
	for _, l := range strings.Fields(out) {
		if l == name {
			return true
		}
	}
	return false
}

func TestWorkers(t *testing.T) {
	base := t.TempDir()
	mgr, api := initManager(t, base)
	out := mgr.p.Output()
	if !strings.Contains(out, "shoal join --token SWMTKN-1-") {
		t.Fatalf("init did not print the join command:\n%s", out)
	}
	token, err := shoalCmd(t, "join-token", "-H", api, "-q", "worker")
	if err != nil || !strings.HasPrefix(token, "SWMTKN-1-") {
		t.Fatalf("join-token: %q %v", token, err)
	}
	joinAddr := bed.Engines[0].IP + ":2377"
	if out, err := dockerErr(api, "swarm", "init"); err == nil || !strings.Contains(out, "already part of a swarm") {
		t.Errorf("docker swarm init on a cluster manager: %v %q; want dockerd's 'already part of a swarm'", err, out)
	}

	start := time.Now()
	workers := map[int]*host{}
	for _, i := range []int{1, 2} {
		w := &host{i: i, dir: filepath.Join(base, fmt.Sprintf("w%d", i))}
		w.args = append(append([]string{"join", "--token", token}, nodeArgs(i, w.dir)...), joinAddr)
		w.p = startShoal(t, i, fmt.Sprintf("worker%d", i), w.args...)
		workers[i] = w
	}
	shoaltest.Eventually(t, 40*time.Second, "3 Ready nodes", func() error {
		if n, out := readyNodes(t, api); n != 3 || strings.Count(out, "node") != 3 {
			return fmt.Errorf("%d ready:\n%s", n, out)
		}
		return nil
	})
	t.Logf("FIGURE join: 2 workers Ready in node ls %s after their shoal join started", time.Since(start).Round(10*time.Millisecond))
	ls := docker(t, api, "node", "ls")
	t.Logf("docker node ls:\n%s", ls)
	if !regexp.MustCompile(`\*\s+node1\s+Ready\s+Active\s+Leader`).MatchString(ls) {
		t.Errorf("node ls does not mark node1 as this Leader manager:\n%s", ls)
	}
	info := docker(t, api, "info")
	for _, want := range []string{"Swarm: active", "Is Manager: true", "Managers: 1", "Nodes: 3", bed.Engines[0].IP + ":2377"} {
		if !strings.Contains(info, want) {
			t.Errorf("docker info lacks %q:\n%s", want, info)
		}
	}
	// The engines are reached through the tunnels: shoal was given only their unix sockets.
	shoaltest.Eventually(t, 30*time.Second, "3 healthy engines", func() error {
		out, err := dockerErr(api, "info", "--format", "{{json .DriverStatus}}")
		if err != nil || strings.Count(out, `"Healthy"`) != 3 {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})

	t.Run("run on a worker through its tunnel", func(t *testing.T) {
		docker(t, api, "run", "-d", "--name", "onw", "-e", "constraint:node==node2", "busybox", "sleep", "300")
		if !engineHas(t, 1, "onw") {
			t.Fatal("container onw is not on node2's engine")
		}
		if out := docker(t, api, "exec", "onw", "echo", "tunnel-ok"); !strings.Contains(out, "tunnel-ok") {
			t.Fatalf("exec through the tunnel: %q", out)
		}
		docker(t, api, "rm", "-f", "onw")
	})

	t.Run("drain", func(t *testing.T) {
		docker(t, api, "node", "update", "--availability", "drain", "node3")
		if out := docker(t, api, "node", "inspect", "node3", "--format", "{{.Spec.Availability}}"); strings.TrimSpace(out) != "drain" {
			t.Fatalf("availability %q", out)
		}
		time.Sleep(time.Second)
		for k := range 4 {
			docker(t, api, "run", "-d", "--name", fmt.Sprintf("dr%d", k), "busybox", "sleep", "300")
		}
		for k := range 4 {
			if engineHas(t, 2, fmt.Sprintf("dr%d", k)) {
				t.Errorf("dr%d was placed on drained node3", k)
			}
			docker(t, api, "rm", "-f", fmt.Sprintf("dr%d", k))
		}
		docker(t, api, "node", "update", "--availability", "active", "node3")
	})

	t.Run("label constraint", func(t *testing.T) {
		docker(t, api, "node", "update", "--label-add", "zone=x", "node3")
		if out := docker(t, api, "node", "inspect", "node3", "--format", "{{.Spec.Labels.zone}}"); strings.TrimSpace(out) != "x" {
			t.Fatalf("label %q", out)
		}
		docker(t, api, "run", "-d", "--name", "lab", "-e", "constraint:node.labels.zone==x", "busybox", "sleep", "300")
		if !engineHas(t, 2, "lab") {
			t.Error("lab is not on node3, the node labelled zone=x")
		}
		docker(t, api, "rm", "-f", "lab")
		docker(t, api, "node", "update", "--label-rm", "zone", "node3")
		if out, err := dockerErr(api, "run", "-d", "--name", "lab2", "-e", "constraint:node.labels.zone==x", "busybox", "true"); err == nil {
			t.Errorf("placed without any node labelled zone=x: %s", out)
		}
	})

	t.Run("out of sequence", func(t *testing.T) {
		out, err := dockerErr(api, "node", "inspect", "node2", "--format", "{{.Version.Index}}")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stale := strings.TrimSpace(out)
		docker(t, api, "node", "update", "--label-add", "a=b", "node2")
		body := `{"Role":"worker","Availability":"active"}`
		resp, err := execOut(ctx, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json",
			"-d", body, fmt.Sprintf("http://%s:%d/v1.50/nodes/node2/update?version=%s", bed.Engines[0].IP, apiPort, stale))
		if err != nil || (resp != "400" && resp != "409") {
			t.Errorf("stale version update: %q %v", resp, err)
		}
	})

	t.Run("wrong CA digest refused", func(t *testing.T) {
		other, err := ca.NewRootCA("other", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		otherTok, _ := ca.NewJoinToken(other.CertPEM())
		real, _ := ca.ParseJoinToken(token)
		bad := ca.JoinToken{Digest: otherTok.Digest, Secret: real.Secret}.String()
		p := startShoal(t, 1, "badjoin", append(append([]string{"join", "--token", bad}, nodeArgs(1, filepath.Join(base, "bad"))...), joinAddr)...)
		exited, code := p.Wait(20 * time.Second)
		if !exited || code == 0 || !strings.Contains(p.Output(), "does not match") {
			t.Fatalf("join with a foreign CA digest: exited %v code %d\n%s", exited, code, p.LogTail(5))
		}
	})

	t.Run("rotated token", func(t *testing.T) {
		newTok, err := shoalCmd(t, "join-token", "-H", api, "--rotate", "-q", "worker")
		if err != nil || newTok == token || !strings.HasPrefix(newTok, "SWMTKN-1-") {
			t.Fatalf("rotate: %q %v", newTok, err)
		}
		if out := docker(t, api, "swarm", "join-token", "-q", "worker"); strings.TrimSpace(out) != newTok {
			t.Errorf("docker swarm join-token shows %q, want %q", out, newTok)
		}
		p := startShoal(t, 2, "oldtoken", append(append([]string{"join", "--token", token}, nodeArgs(2, filepath.Join(base, "old"))...), joinAddr)...)
		exited, code := p.Wait(20 * time.Second)
		if !exited || code == 0 || !strings.Contains(p.Output(), "invalid join token") {
			t.Fatalf("join with the rotated-out token: exited %v code %d\n%s", exited, code, p.LogTail(5))
		}
		// Nodes already in keep working.
		docker(t, api, "run", "-d", "--name", "afterrot", "-e", "constraint:node==node3", "busybox", "sleep", "300")
		if !engineHas(t, 2, "afterrot") {
			t.Error("afterrot is not on node3")
		}
		docker(t, api, "rm", "-f", "afterrot")
		if n, out := readyNodes(t, api); n != 3 {
			t.Errorf("after rotation %d ready:\n%s", n, out)
		}
		if out := docker(t, api, "swarm", "join-token", "worker"); !strings.Contains(out, newTok) || !strings.Contains(out, joinAddr) {
			t.Errorf("docker swarm join-token worker:\n%s", out)
		}
	})

	t.Run("certificate from another CA refused", func(t *testing.T) {
		other, err := ca.NewRootCA("other", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		nc, err := other.IssueNode(ca.NodeRequest{NodeID: "intruder", Role: ca.RoleManager})
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := nc.TLS()
		conf := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}, NextProtos: []string{"shoal-tunnel"}}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", joinAddr, conf)
		if err == nil {
			// TLS 1.3: the server's verdict on the client certificate arrives with the first read.
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || strings.Contains(err.Error(), "timeout") {
			t.Fatalf("a foreign CA's certificate reached the cluster port: %v", err)
		}
	})

	t.Run("Down after missed heartbeats", func(t *testing.T) {
		w := workers[1]
		w.p.Kill()
		killed := time.Now()
		shoaltest.Eventually(t, 30*time.Second, "node2 Down", func() error {
			out := docker(t, api, "node", "inspect", "node2", "--format", "{{.Status.State}}")
			if strings.TrimSpace(out) != "down" {
				return fmt.Errorf("state %s", out)
			}
			return nil
		})
		t.Logf("FIGURE down: node2 Down %s after its shoal was killed", time.Since(killed).Round(100*time.Millisecond))
		w.p = startShoal(t, 1, "worker1-again", w.args...)
		shoaltest.Eventually(t, 30*time.Second, "node2 Ready again", func() error {
			if n, out := readyNodes(t, api); n != 3 {
				return fmt.Errorf("%d ready:\n%s", n, out)
			}
			return nil
		})
	})

	t.Run("rm refuses a Ready node", func(t *testing.T) {
		if out, err := dockerErr(api, "node", "rm", "node3"); err == nil || !strings.Contains(out, "not down") {
			t.Fatalf("node rm of a Ready node: %v %s", err, out)
		}
		if out, err := dockerErr(api, "node", "demote", "node1"); err == nil || !strings.Contains(out, "last manager") {
			t.Fatalf("demote of the last manager: %v %s", err, out)
		}
	})

	t.Run("rm force revokes", func(t *testing.T) {
		id := strings.TrimSpace(docker(t, api, "node", "inspect", "node3", "--format", "{{.ID}}"))
		docker(t, api, "node", "rm", "--force", "node3")
		if out := docker(t, api, "node", "ls"); strings.Contains(out, id) {
			t.Fatalf("node3 still listed:\n%s", out)
		}
		w := workers[2]
		w.p.Kill()
		restarted := startShoal(t, 2, "worker2-again", w.args...)
		time.Sleep(6 * time.Second)
		if out := restarted.Output(); strings.Contains(out, "tunnel up") {
			t.Fatalf("the removed node's agent reconnected:\n%s", restarted.LogTail(10))
		}
		if out := docker(t, api, "node", "ls"); strings.Contains(out, id) || strings.Contains(out, "node3") {
			t.Fatalf("node3 is back:\n%s", out)
		}
	})
}

// leaderOf returns the index of the host whose node is the Leader, as api sees it.
func leaderOf(t *testing.T, api string) int {
	t.Helper()
	out := docker(t, api, "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[1] == "Leader" {
			for i, e := range bed.Engines {
				if e.Hostname == f[0] {
					return i
				}
			}
		}
	}
	t.Fatalf("no leader in:\n%s", out)
	return -1
}

func TestManagers(t *testing.T) {
	base := t.TempDir()
	hosts := make([]*host, 3)
	hosts[0] = &host{i: 0, dir: filepath.Join(base, "m0")}
	hosts[0].args = append([]string{"init"}, nodeArgs(0, hosts[0].dir)...)
	hosts[0].p = startShoal(t, 0, "manager0", hosts[0].args...)
	shoaltest.Eventually(t, 30*time.Second, "manager API", func() error {
		_, err := dockerErr(apiOf(0), "version")
		return err
	})
	mtoken, err := shoalCmd(t, "join-token", "-H", apiOf(0), "-q", "manager")
	if err != nil {
		t.Fatal(err)
	}
	joinAddr := bed.Engines[0].IP + ":2377"
	for _, i := range []int{1, 2} {
		start := time.Now()
		h := &host{i: i, dir: filepath.Join(base, fmt.Sprintf("m%d", i))}
		h.args = append(append([]string{"join", "--token", mtoken}, nodeArgs(i, h.dir)...), joinAddr)
		h.p = startShoal(t, i, fmt.Sprintf("manager%d", i), h.args...)
		hosts[i] = h
		shoaltest.Eventually(t, 40*time.Second, "manager API", func() error {
			_, err := dockerErr(apiOf(i), "info")
			return err
		})
		if os.Getenv("CLUSTER_DEBUG") != "" {
			t.Log(h.p.LogTail(25))
		}
		t.Logf("FIGURE join: manager %d serves the API %s after its shoal join started", i, time.Since(start).Round(10*time.Millisecond))
	}
	shoaltest.Eventually(t, 30*time.Second, "3 Ready managers, all reachable", func() error {
		out, err := dockerErr(apiOf(1), "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.ManagerStatus}}")
		if err != nil || strings.Count(out, "Ready") != 3 || strings.Count(out, "Leader")+strings.Count(out, "Reachable") != 3 {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})
	ls := docker(t, apiOf(1), "node", "ls")
	t.Logf("docker node ls (on node2):\n%s", ls)
	if !regexp.MustCompile(`\*\s+node2\s+Ready`).MatchString(ls) {
		t.Errorf("node ls on node2's manager does not mark node2:\n%s", ls)
	}
	if info := docker(t, apiOf(2), "info"); !strings.Contains(info, "Managers: 3") || !strings.Contains(info, bed.Engines[2].IP+":2377") {
		t.Errorf("docker info on node3:\n%s", info)
	}

	// Any manager serves the whole API.
	shoaltest.Eventually(t, 20*time.Second, "3 healthy engines on node3's manager", func() error {
		out, err := dockerErr(apiOf(2), "info", "--format", "{{json .DriverStatus}}")
		if err != nil || strings.Count(out, `"Healthy"`) != 3 {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})
	docker(t, apiOf(2), "run", "-d", "--name", "anym", "-e", "constraint:node==node1", "busybox", "sleep", "300")
	if out := docker(t, apiOf(1), "ps", "--format", "{{.Names}}"); !strings.Contains(out, "node1/anym") {
		t.Errorf("node2's manager does not list node1/anym:\n%s", out)
	}
	docker(t, apiOf(0), "rm", "-f", "anym")

	// Two workers join: 3 managers and 2 workers.
	wtoken, err := shoalCmd(t, "join-token", "-H", apiOf(1), "-q", "worker")
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{3, 4} {
		w := &host{i: i, dir: filepath.Join(base, fmt.Sprintf("w%d", i))}
		w.args = append(append([]string{"join", "--token", wtoken}, nodeArgs(i, w.dir)...), bed.Engines[1].IP+":2377")
		w.p = startShoal(t, i, fmt.Sprintf("worker%d", i), w.args...)
	}
	shoaltest.Eventually(t, 40*time.Second, "5 Ready nodes", func() error {
		if n, out := readyNodes(t, apiOf(0)); n != 5 {
			return fmt.Errorf("%d ready:\n%s", n, out)
		}
		return nil
	})

	// Kill the leader: measure until a write goes through another manager.
	leader := leaderOf(t, apiOf(0))
	other := (leader + 1) % 3
	hosts[leader].p.Kill()
	killed := time.Now()
	var took time.Duration
	for k := 0; ; k++ {
		if _, err := dockerErr(apiOf(other), "node", "update", "--label-add", fmt.Sprintf("w=%d", k), bed.Engines[other].Hostname); err == nil {
			took = time.Since(killed)
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatal("no write accepted within 30 s of the leader's death")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("FIGURE failover: leader %s killed (SIGKILL); a node update through %s accepted %s later", bed.Engines[leader].Hostname, bed.Engines[other].Hostname, took.Round(10*time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("writes came back after %s, want ≤ 3 s", took)
	}
	out := docker(t, apiOf(other), "node", "ls")
	if !regexp.MustCompile(bed.Engines[leader].Hostname + `\s+\S+\s+Active\s+Unreachable`).MatchString(out) {
		t.Errorf("the dead leader is not Unreachable:\n%s", out)
	}
	// The workers keep working through the managers that are left.
	shoaltest.Eventually(t, 30*time.Second, "a container on a worker after the failover", func() error {
		out, err := dockerErr(apiOf(other), "run", "--rm", "-e", "constraint:node=="+bed.Engines[4].Hostname, "busybox", "echo", "on-worker")
		if err != nil || !strings.Contains(out, "on-worker") {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})

	// The killed manager comes back with its data.
	hosts[leader].p = startShoal(t, leader, fmt.Sprintf("manager%d-again", leader), hosts[leader].args...)
	shoaltest.Eventually(t, 40*time.Second, "restarted manager reachable and writable", func() error {
		_, err := dockerErr(apiOf(leader), "node", "update", "--label-add", "back=1", bed.Engines[leader].Hostname)
		return err
	})

	// Two managers down: no quorum, writes 503, reads keep working.
	third := 3 - leader - other
	hosts[other].p.Kill()
	hosts[third].p.Kill()
	out, err = dockerErr(apiOf(leader), "node", "update", "--label-add", "q=1", bed.Engines[leader].Hostname)
	if err == nil || !strings.Contains(out, "no quorum") {
		t.Errorf("write without quorum: %v %s", err, out)
	}
	if out, err := dockerErr(apiOf(leader), "node", "ls"); err != nil || !strings.Contains(out, "node1") {
		t.Errorf("read without quorum: %v %s", err, out)
	}
	hosts[other].p = startShoal(t, other, fmt.Sprintf("manager%d-again", other), hosts[other].args...)
	shoaltest.Eventually(t, 40*time.Second, "quorum back", func() error {
		_, err := dockerErr(apiOf(leader), "node", "update", "--label-add", "q=2", bed.Engines[leader].Hostname)
		return err
	})
}

// TestPartition cuts one manager of three off the network (its veth down)
// and heals it: the two others keep the API writable and show it
// Unreachable; healed, it catches up with the writes made meanwhile.
func TestPartition(t *testing.T) {
	base := t.TempDir()
	hosts := make([]*host, 3)
	hosts[0] = &host{i: 0, dir: filepath.Join(base, "m0")}
	hosts[0].args = append([]string{"init"}, nodeArgs(0, hosts[0].dir)...)
	hosts[0].p = startShoal(t, 0, "manager0", hosts[0].args...)
	shoaltest.Eventually(t, 30*time.Second, "manager API", func() error {
		_, err := dockerErr(apiOf(0), "version")
		return err
	})
	mtoken, err := shoalCmd(t, "join-token", "-H", apiOf(0), "-q", "manager")
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		h := &host{i: i, dir: filepath.Join(base, fmt.Sprintf("m%d", i))}
		h.args = append(append([]string{"join", "--token", mtoken}, nodeArgs(i, h.dir)...), bed.Engines[0].IP+":2377")
		h.p = startShoal(t, i, fmt.Sprintf("manager%d", i), h.args...)
		hosts[i] = h
		shoaltest.Eventually(t, 40*time.Second, "manager API", func() error {
			_, err := dockerErr(apiOf(i), "info")
			return err
		})
	}
	allUp := func(api string) func() error {
		return func() error {
			out, err := dockerErr(api, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.ManagerStatus}}")
			if err != nil || strings.Count(out, "Ready") != 3 || strings.Count(out, "Leader")+strings.Count(out, "Reachable") != 3 ||
				!strings.Contains(out, "node1") || !strings.Contains(out, "node2") || !strings.Contains(out, "node3") {
				return fmt.Errorf("%v\n%s", err, out)
			}
			return nil
		}
	}
	for i := range 3 {
		shoaltest.Eventually(t, 40*time.Second, "3 reachable managers", allUp(apiOf(i)))
	}

	cut := leaderOf(t, apiOf(1)) // the leader: the others must also elect a new one
	a, b := (cut+1)%3, (cut+2)%3
	if err := bed.LinkDown(cut); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bed.LinkUp(cut) })
	start := time.Now()
	shoaltest.Eventually(t, 20*time.Second, "a write while the leader is cut off", func() error {
		_, err := dockerErr(apiOf(a), "node", "update", "--label-add", "during=1", bed.Engines[a].Hostname)
		return err
	})
	t.Logf("FIGURE partition: leader %s cut off (link down); a write through %s accepted %s later", bed.Engines[cut].Hostname, bed.Engines[a].Hostname, time.Since(start).Round(10*time.Millisecond))
	shoaltest.Eventually(t, 30*time.Second, "the cut manager Unreachable", func() error {
		l, err := nodeLine(apiOf(b), cut)
		if err != nil || !strings.Contains(l, "Unreachable") {
			return fmt.Errorf("%v %q", err, l)
		}
		return nil
	})
	t.Logf("docker node ls (on %s) while cut:\n%s", bed.Engines[b].Hostname, docker(t, apiOf(b), "node", "ls"))
	docker(t, apiOf(b), "node", "update", "--label-add", "cut=yes", bed.Engines[a].Hostname)

	if err := bed.LinkUp(cut); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	shoaltest.Eventually(t, 30*time.Second, "the healed manager sees the write made while it was cut off", func() error {
		out, err := dockerErr(apiOf(cut), "node", "inspect", bed.Engines[a].Hostname, "--format", "{{.Spec.Labels.cut}}")
		if err != nil || strings.TrimSpace(out) != "yes" {
			return fmt.Errorf("%v %q", err, out)
		}
		return nil
	})
	t.Logf("FIGURE heal: link up; the write made during the cut read through %s %s later", bed.Engines[cut].Hostname, time.Since(healed).Round(10*time.Millisecond))
	shoaltest.Eventually(t, 30*time.Second, "3 reachable managers after healing", allUp(apiOf(a)))
	t.Logf("FIGURE heal: all 3 managers Ready and reachable again %s after link up", time.Since(healed).Round(10*time.Millisecond))
	docker(t, apiOf(cut), "node", "update", "--label-add", "after=1", bed.Engines[cut].Hostname)
}

// initManager starts `shoal init` on engine 0 with its data in base/m0 and
// waits for its Docker API, whose address it returns.
func initManager(t *testing.T, base string) (*host, string) {
	t.Helper()
	mgr := &host{i: 0, dir: filepath.Join(base, "m0")}
	mgr.args = append([]string{"init"}, nodeArgs(0, mgr.dir)...)
	mgr.p = startShoal(t, 0, "manager0", mgr.args...)
	api := apiOf(0)
	shoaltest.Eventually(t, 30*time.Second, "manager API", func() error {
		_, err := dockerErr(api, "version")
		return err
	})
	return mgr, api
}
