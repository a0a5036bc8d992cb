package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/testbed"
)

// TestEngineFaults uses its own Bed of two engines that share one hostname
// ("twin"): they are still two nodes. It then kills and stops engines under
// a running shoal: streams end, nodes go Down with a warning in info, come
// back by themselves, and a pool with no healthy node answers 503.
func TestEngineFaults(t *testing.T) {
	tb := testbed.MustStart(t, testbed.Options{Engines: 2, Prefix: bedPrefix, Hostnames: []string{"twin", "twin"}})
	ctx := ctxT(t, 4*time.Minute)
	if err := tb.LoadBusyboxAll(ctx); err != nil {
		t.Fatal(err)
	}
	s := startShoalT(t, "nodes://"+tb.Engines[0].TCPAddr+","+tb.Engines[1].TCPAddr, "--debug")
	if err := s.WaitNodes(ctx, 2, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	ns, err := s.Nodes(ctx)
	if err != nil || len(ns) != 2 || ns[0].ID == ns[1].ID || ns[0].Description.Hostname != "twin" || ns[1].Description.Hostname != "twin" {
		t.Fatalf("two engines named twin: nodes %+v %v", ns, err)
	}
	out := dkOn(t, s.Host, "node", "ls", "--format", "{{.ID}} {{.Hostname}} {{.Status}}")
	if len(lines(out)) != 2 || strings.Count(out, "twin Ready") != 2 {
		t.Errorf("node ls with two twins: %q", out)
	}
	// Two containers, one per twin; both addressable.
	a, b := uniq("twa"), uniq("twb")
	dkOn(t, s.Host, "run", "-d", "--name", a, "busybox", "sh", "-c", "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done")
	dkOn(t, s.Host, "run", "-d", "--name", b, "busybox", "sleep", "300")
	var ca, cb containerJSON
	for ref, dst := range map[string]*containerJSON{a: &ca, b: &cb} {
		o := dkOn(t, s.Host, "inspect", "--type", "container", ref)
		var cs []containerJSON
		if err := json.Unmarshal([]byte(o), &cs); err != nil || len(cs) != 1 || cs[0].Node == nil {
			t.Fatalf("inspect %s: %v %s", ref, err, o)
		}
		*dst = cs[0]
	}
	if ca.Node.ID == cb.Node.ID {
		t.Fatalf("spread put both containers on node %s", ca.Node.ID)
	}
	ia := engineOf(t, tb, ca.Node.IP)
	ib := 1 - ia
	idA := "" // node ID of engine ia (by address: the hostnames are equal)
	for _, n := range ns {
		if n.Status.Addr == tb.Engines[ia].IP || strings.Contains(n.Status.Addr, tb.Engines[ia].IP+":") {
			idA = n.ID
		}
	}
	if idA == "" || idA != ca.Node.ID {
		t.Fatalf("node of engine %d (%s): %q; container's node %q; nodes %+v", ia, tb.Engines[ia].IP, idA, ca.Node.ID, ns)
	}

	t.Run("LogsFollowEngineKilled", func(t *testing.T) {
		// docker logs -f through shoal; the engine dies mid-stream.
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, cli28, "logs", "-f", a)
		cmd.Env = []string{"DOCKER_HOST=" + s.Host, "DOCKER_CONFIG=" + dockerConfigDir(), "PATH=/usr/bin:/bin"}
		cmd.WaitDelay = time.Second
		outp, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(outp)
		got := 0
		for got < 3 && sc.Scan() {
			if strings.HasPrefix(sc.Text(), "tick") {
				got++
			}
		}
		if got < 3 {
			t.Fatalf("logs -f: only %d lines before the kill", got)
		}
		t0 := time.Now()
		tb.Kill(ia)
		for sc.Scan() {
		}
		err := cmd.Wait()
		if cctx.Err() != nil {
			t.Errorf("logs -f still streaming 30s after its engine was killed")
		} else {
			t.Logf("logs -f ended %s after the kill (%v)", time.Since(t0).Round(time.Millisecond), err)
		}
		if !s.Alive() {
			t.Fatalf("shoal died")
		}
	})

	t.Run("NodeDownAndBack", func(t *testing.T) {
		waitNodeState(t, ctx, s, idA, "Down", 20*time.Second)
		// The CLI prints the Warnings on stderr.
		so, se, err := runDocker2(ctx, dockerCmd{host: s.Host, args: []string{"info"}})
		if err != nil {
			t.Fatal(err)
		}
		out := so + se
		warned := false
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "WARNING") && strings.Contains(l, tb.Engines[ia].IP) {
				warned = true
			}
		}
		if !warned {
			t.Errorf("docker info has no WARNING line for the down node %s:\n%s", tb.Engines[ia].IP, out)
		}
		// Totals count healthy nodes only.
		var info struct{ NCPU int }
		jsonUnmarshal(t, []byte(dkOn(t, s.Host, "info", "--format", "{{json .}}")), &info)
		ei, err := tb.Info(ctx, ib)
		if err != nil {
			t.Fatal(err)
		}
		if info.NCPU != int(ei["NCPU"].(float64)) {
			t.Errorf("info NCPU %d with one node down, want the healthy node's %v", info.NCPU, ei["NCPU"])
		}
		// New containers go to the healthy twin.
		c := uniq("twc")
		dkOn(t, s.Host, "run", "-d", "--name", c, "busybox", "sleep", "300")
		o := dkOn(t, s.Host, "inspect", "--type", "container", "-f", "{{.Node.IP}}", c)
		if strings.TrimSpace(o) != tb.Engines[ib].IP {
			t.Errorf("container created while node %d is down landed on %q", ia, o)
		}
		// The name of a container on the down node stays taken: a second
		// container of that name would clash when the node returns.
		if _, err := runDocker(ctx, dockerCmd{host: s.Host, args: []string{"create", "--name", a, "busybox", "true"}}); err == nil {
			t.Errorf("create --name %s succeeded while its holder's node is down (duplicate name)", a)
		} else if e := err.(*dockerErr); !strings.Contains(e.stderr, "Conflict") {
			t.Errorf("create --name %s while its node is down: %q, want Conflict", a, e.stderr)
		}
		// Calls on its containers fail promptly instead of hanging.
		t1 := time.Now()
		if _, err := runDocker(ctx, dockerCmd{host: s.Host, args: []string{"inspect", "--type", "container", a}}); err == nil {
			t.Errorf("inspect of a container on a down node succeeded")
		}
		if d := time.Since(t1); d > 10*time.Second {
			t.Errorf("inspect on a down node took %s", d)
		}
		// Restart the engine: Ready again without touching shoal.
		if err := tb.Start(ctx, ia); err != nil {
			t.Fatal(err)
		}
		waitNodeState(t, ctx, s, idA, "Ready", 30*time.Second)
		if out := dkOn(t, s.Host, "info", "--format", "{{json .Warnings}}"); strings.Contains(out, "WARNING") {
			t.Errorf("warnings after recovery: %s", out)
		}
		if _, err := runDocker(ctx, dockerCmd{host: s.Host, args: []string{"inspect", "--type", "container", a}}); err != nil {
			t.Errorf("container %s on the restarted engine: %v", a, err)
		}
	})

	t.Run("ClientHangsUpMidLogs", func(t *testing.T) {
		goroutines := func() int {
			st, _, body, err := s.Do(ctx, "GET", "/debug/pprof/goroutine?debug=1", nil, nil)
			if err != nil || st != 200 {
				t.Fatalf("GET /debug/pprof/goroutine: %d %v", st, err)
			}
			// "goroutine profile: total N"
			var n int
			first, _, _ := strings.Cut(string(body), "\n")
			if _, err := fmtSscan(strings.TrimPrefix(first, "goroutine profile: total "), &n); err != nil {
				t.Fatalf("goroutine profile header %q", first)
			}
			return n
		}
		base := goroutines()
		for i := 0; i < 20; i++ {
			cctx, cancel := context.WithCancel(ctx)
			req, _ := http.NewRequestWithContext(cctx, "GET", "http://"+s.Addr+"/containers/"+b+"/logs?follow=1&stdout=1", nil)
			resp, err := httpc.Do(req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("logs follow: %v", err)
			}
			go io.Copy(io.Discard, resp.Body)
			time.Sleep(20 * time.Millisecond)
			cancel()
		}
		var n int
		err := waitFor(ctx, 10*time.Second, func() error {
			if n = goroutines(); n > base+5 {
				return io.EOF
			}
			return nil
		})
		if err != nil {
			t.Errorf("goroutines: %d before, %d after 20 abandoned logs -f (leak)", base, n)
		}
		if out := dkOn(t, s.Host, "ps", "-q"); len(lines(out)) < 2 {
			t.Errorf("ps after hang-ups: %q", out)
		}
	})

	t.Run("NoHealthyNode", func(t *testing.T) {
		tb.Kill(0)
		tb.Kill(1)
		ids := []string{ns[0].ID, ns[1].ID}
		for _, id := range ids {
			waitNodeState(t, ctx, s, id, "Down", 20*time.Second)
		}
		st, _, body, err := s.Do(ctx, "POST", "/containers/create", []byte(`{"Image":"busybox","Cmd":["true"]}`), nil)
		if err != nil || st != 503 {
			t.Errorf("create with every node down: %d %v %s, want 503", st, err, body)
		}
		var m struct{ Message string }
		json.Unmarshal(body, &m)
		if !strings.Contains(strings.ToLower(m.Message), "healthy") {
			t.Errorf("503 message %q does not explain", m.Message)
		}
		o, err := runDocker(ctx, dockerCmd{host: s.Host, args: []string{"run", "--rm", "busybox", "true"}})
		if err == nil {
			t.Errorf("docker run with every node down succeeded: %q", o)
		} else if e := err.(*dockerErr); !strings.Contains(strings.ToLower(e.stderr), "healthy") {
			t.Errorf("docker run with every node down: %q", e.stderr)
		}
		if !s.Alive() {
			t.Fatal("shoal died")
		}
		if st, _, _, err := s.Do(ctx, "GET", "/_ping", nil, nil); err != nil || st != 200 {
			t.Errorf("ping with every node down: %d %v", st, err)
		}
	})
}
