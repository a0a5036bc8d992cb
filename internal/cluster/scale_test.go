package cluster

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
)

// What a node costs a manager while nothing changes (issue 16, point 6):
// a node's calls every second or two write nothing after the first, and
// a verified certificate is remembered but never past its revocation.
func TestNodeCallsWriteOnce(t *testing.T) {
	m := initManager(t, "mgr")
	ctx := ctxT(t, 90*time.Second)
	sw, err := m.Swarm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The manager's own agent records its own TLS info once.
	eventually(t, 30*time.Second, "the manager's own TLS info", func() error {
		it, err := m.nodes.Get(ctx, m.NodeID())
		if err != nil || it.Value.TLS == nil {
			return errors.New("not recorded yet")
		}
		return nil
	})
	// A worker that joined (Start) but runs no agent: the test makes its calls.
	w, err := New(joinCfg(t, m, "worker1", sw.JoinTokens.Worker))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	m.store.ObserveWrites(func(time.Duration, error) { writes.Add(1) })
	hc := (&node{Cluster: w}).client(t)
	self := func() (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+m.ClusterAddr()+"/self?trust="+trustDigest(w.root.TrustPEM()), nil)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	const calls = 20
	for i := range calls {
		if code, err := self(); err != nil || code != http.StatusOK {
			t.Fatalf("GET /self #%d: %d %v", i, code, err)
		}
		if i == calls/2 {
			m.syncOnce(ctx) // a sync pass in between changes nothing
		}
	}
	if n := writes.Load(); n != 1 {
		t.Errorf("%d calls of /self wrote %d times, want 1 (the node's TLS info, once)", calls, n)
	}
	it, err := m.nodes.Get(ctx, w.NodeID())
	if err != nil || it.Value.TLS == nil || it.Value.TLS.TrustDigest != trustDigest(w.root.TrustPEM()) {
		t.Fatalf("the worker's recorded TLS info: %+v, %v", it.Value.TLS, err)
	}

	// The certificate is remembered now; a revocation still refuses it.
	m.root.Revocations().Revoke(w.NodeID())
	if code, err := self(); err != nil || code != http.StatusGone {
		t.Fatalf("GET /self with a revoked certificate: %d %v, want 410", code, err)
	}
}

// A join the manager cannot admit for now (503: its store did not commit
// the record in time) is tried again with the same request until it is
// admitted; a refusal (a wrong token: 403) is not.
func TestJoinRetriesTransientRefusals(t *testing.T) {
	saved := joinBackoff
	joinBackoff.first, joinBackoff.max, joinBackoff.total = time.Millisecond, 4*time.Millisecond, time.Minute
	t.Cleanup(func() { joinBackoff = saved })

	root, err := ca.NewRootCA("c1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mc, err := root.IssueNode(ca.NodeRequest{NodeID: "mgr", Role: ca.RoleManager, Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := mc.TLS()
	if err != nil {
		t.Fatal(err)
	}
	var answers []int
	var calls int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := answers[min(calls, len(answers)-1)]
		calls++
		if status != http.StatusOK {
			httpError(w, status, "store: no quorum")
			return
		}
		writeJSONResp(w, joinResponse{NodeID: "n1", Role: RoleWorker})
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := &Cluster{cfg: Config{JoinAddr: srv.Listener.Addr().String()}, log: slog.New(slog.DiscardHandler)}
	ctx := ctxT(t, 30*time.Second)

	answers, calls = []int{503, 503, 503, 200}, 0
	resp, err := c.askToJoinRetrying(ctx, root, joinRequest{Hostname: "h"})
	if err != nil || resp.NodeID != "n1" || calls != 4 {
		t.Fatalf("three 503s then 200: %+v, %v after %d calls, want n1 after 4", resp, err, calls)
	}

	answers, calls = []int{403, 200}, 0
	if _, err := c.askToJoinRetrying(ctx, root, joinRequest{}); !errors.Is(err, ErrJoinRefused) || calls != 1 {
		t.Fatalf("403: %v after %d calls, want ErrJoinRefused after 1", err, calls)
	}

	joinBackoff.total = 20 * time.Millisecond
	answers, calls = []int{503}, 0
	if _, err := c.askToJoinRetrying(ctx, root, joinRequest{}); !errors.Is(err, ErrJoinRefused) || calls < 2 {
		t.Fatalf("503 forever: %v after %d calls, want ErrJoinRefused after a few tries", err, calls)
	}
}

// A join tried again with the same request (its first answer was lost but
// the record written) is admitted as the same node; the same key with
// another hostname is refused.
func TestJoinAgainSameRequest(t *testing.T) {
	m := initManager(t, "mgr")
	ctx := ctxT(t, 60*time.Second)
	tr, err := m.tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	csr, _, err := ca.NewCSR()
	if err != nil {
		t.Fatal(err)
	}
	req := joinRequest{Token: tr.Tokens.Worker.String(), CSR: csr, Hostname: "w1", Addr: "127.0.0.1"}
	first, err := m.admit(ctx, req, "127.0.0.1:5000")
	if err != nil {
		t.Fatal(err)
	}
	// The admitting manager counts the node at once, before a sync pass.
	if info := m.SwarmInfo(ctx); info.Nodes != 2 {
		t.Errorf("swarm info right after the join counts %d nodes, want 2", info.Nodes)
	}
	again, err := m.admit(ctx, req, "127.0.0.1:5001")
	if err != nil || again.NodeID != first.NodeID {
		t.Fatalf("the same join again: %v, node %s (first %s)", err, again.NodeID, first.NodeID)
	}
	recs, err := m.records(ctx)
	if err != nil || len(recs) != 2 {
		t.Fatalf("records after two tries of one join: %d, %v; want 2 (the manager and w1)", len(recs), err)
	}
	req.Hostname = "other"
	if _, err := m.admit(ctx, req, "127.0.0.1:5002"); err == nil {
		t.Fatal("another hostname with the same key was admitted")
	}
}

// Tunnels coming and going (1,000 nodes connecting) start at most one sync
// pass (a read of every node record) per tunnelSyncGap.
func TestSyncWait(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		since time.Duration
		want  time.Duration
	}{
		{0, tunnelSyncGap},
		{tunnelSyncGap / 4, 3 * tunnelSyncGap / 4},
		{tunnelSyncGap, 0},
		{time.Hour, 0},
	} {
		if got := syncWait(now.Add(-tc.since), now); got != tc.want {
			t.Errorf("last pass %v ago: wait %v, want %v", tc.since, got, tc.want)
		}
	}
	if got := syncWait(time.Time{}, now); got != 0 {
		t.Errorf("first pass waits %v", got)
	}
}
