package cluster

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/store"
)

func TestRecentlySeen(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	down := 15 * time.Second
	for _, tc := range []struct {
		name     string
		seen     time.Time
		ok, self bool
		now      time.Time
		want     bool
	}{
		{"seen just now", start.Add(time.Minute), true, false, start.Add(time.Minute + time.Second), true},
		{"silent too long", start, true, false, start.Add(down), false},
		{"never seen", time.Time{}, false, false, start.Add(time.Second), false},
		{"self at start", time.Time{}, false, true, start.Add(time.Second), true},
		{"self long after start", time.Time{}, false, true, start.Add(down + time.Second), false},
	} {
		if got := recentlySeen(tc.seen, tc.ok, tc.self, start, tc.now, down); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRoleChange(t *testing.T) {
	for _, tc := range []struct {
		cur, recorded, want string
		ok                  bool
	}{
		{RoleWorker, RoleWorker, "", false},
		{RoleWorker, RoleManager, RoleManager, true},
		{RoleManager, RoleWorker, RoleWorker, true},
		{RoleManager, "", "", false},
		{RoleWorker, "overlord", "", false},
	} {
		got, ok := roleChange(tc.cur, tc.recorded)
		if got != tc.want || ok != tc.ok {
			t.Errorf("roleChange(%q, %q) = %q %v", tc.cur, tc.recorded, got, ok)
		}
	}
}

func TestRotateTokens(t *testing.T) {
	root, err := ca.NewRootCA("c", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	toks, err := ca.NewJoinTokens(root.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	tr := tokensRecord{Tokens: toks, Version: 4}
	now := time.Now()
	got, err := rotateTokens(tr, 4, false, true, root.CertPEM(), now)
	if err != nil || got.Version != 5 || got.Tokens.Worker != toks.Worker || got.Tokens.Manager == toks.Manager || !got.Created.Equal(now) {
		t.Fatalf("rotate manager = %+v, %v", got, err)
	}
	if _, err := got.Tokens.Admit(toks.Manager.String()); !errors.Is(err, ca.ErrInvalidToken) {
		t.Fatalf("the old manager token still admits: %v", err)
	}
	if _, err := rotateTokens(tr, 3, true, false, root.CertPEM(), now); !errors.Is(err, ErrOutOfSequence) || !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("stale version: %v", err)
	}
}

func TestJoinStatus(t *testing.T) {
	for err, want := range map[error]int{
		ca.ErrInvalidToken:         http.StatusForbidden,
		ca.ErrTokenCAMismatch:      http.StatusForbidden,
		ca.ErrInvalidCSR:           http.StatusBadRequest,
		store.ErrNoQuorum:          http.StatusServiceUnavailable,
		errors.New("disk on fire"): http.StatusInternalServerError,
	} {
		if got := joinStatus(err); got != want {
			t.Errorf("joinStatus(%v) = %d, want %d", err, got, want)
		}
	}
}

func TestNewRecord(t *testing.T) {
	now := time.Now()
	w := newRecord("id1", joinRequest{Hostname: "h", ClusterAddr: "10.0.0.9:2377"}, ca.RoleWorker, "10.0.0.9:51234", now)
	if w.Addr != "10.0.0.9" || w.Role != RoleWorker || w.ClusterAddr != "" || w.Version != 1 || w.ID != "id1" {
		t.Fatalf("worker record %+v", w)
	}
	m := newRecord("id2", joinRequest{Addr: "192.168.1.2", ClusterAddr: "192.168.1.2:2377"}, ca.RoleManager, "10.0.0.9:51234", now)
	if m.Addr != "192.168.1.2" || m.Role != RoleManager || m.ClusterAddr != "192.168.1.2:2377" {
		t.Fatalf("manager record %+v", m)
	}
}

// A node's ID is derived from the key of its join request: 25 base-36
// characters like swarm mode's, the same for the same key (a join tried
// again names the same node), another for another key.
func TestNodeIDOf(t *testing.T) {
	csr1, _, err := ca.NewCSR()
	if err != nil {
		t.Fatal(err)
	}
	csr2, _, err := ca.NewCSR()
	if err != nil {
		t.Fatal(err)
	}
	a, err := nodeIDOf(csr1)
	if err != nil || len(a) != 25 || strings.Trim(a, "0123456789abcdefghijklmnopqrstuvwxyz") != "" {
		t.Fatalf("nodeIDOf = %q, %v", a, err)
	}
	if again, _ := nodeIDOf(csr1); again != a {
		t.Errorf("the same request gave %s then %s", a, again)
	}
	if b, _ := nodeIDOf(csr2); b == a {
		t.Errorf("two keys gave one ID %s", a)
	}
	if _, err := nodeIDOf([]byte("junk")); !errors.Is(err, ca.ErrInvalidCSR) {
		t.Errorf("junk request: %v, want ErrInvalidCSR", err)
	}
}

func TestAskOrder(t *testing.T) {
	c := &Cluster{st: state{ClusterAddr: "b:2377", Managers: []string{"a:2377", "b:2377", "c:2377"}}}
	if got := c.askOrder(); !slices.Equal(got, []string{"a:2377", "c:2377", "b:2377"}) {
		t.Fatalf("askOrder = %v: this manager's own copy should come last", got)
	}
}

func TestWriteGivesUpAsNoQuorum(t *testing.T) {
	if !retryable(store.ErrNoQuorum) || !retryable(context.DeadlineExceeded) || retryable(store.ErrNotFound) || retryable(nil) {
		t.Fatal("retryable")
	}
	if err := giveUp(context.DeadlineExceeded, true); !errors.Is(err, store.ErrNoQuorum) || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("a timed-out write: %v", err)
	}
	if err := giveUp(store.ErrNotFound, false); !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNoQuorum) {
		t.Fatalf("a refused write: %v", err)
	}
	c := &Cluster{}
	calls := 0
	err := c.write(context.Background(), func(context.Context) error { calls++; return store.ErrExists })
	if !errors.Is(err, store.ErrExists) || calls != 1 {
		t.Fatalf("write of a refused op: %v after %d calls", err, calls)
	}
}

func TestStoreConfigPorts(t *testing.T) {
	c, err := New(Config{DataDir: "/d", ListenAddr: "0.0.0.0:4000"})
	if err != nil {
		t.Fatal(err)
	}
	c.st = state{NodeID: "n", ClusterID: "cl", Addr: "10.1.1.1"}
	sc := c.storeConfig([]string{"https://10.1.1.2:4001"})
	if sc.ClientURL != "https://10.1.1.1:4001" || sc.PeerURL != "https://10.1.1.1:4002" ||
		sc.ListenClientURL != "https://0.0.0.0:4001" || sc.ListenPeerURL != "https://0.0.0.0:4002" ||
		sc.Name != "n" || sc.ClusterToken != "cl" || len(sc.Join) != 1 {
		t.Fatalf("store config %+v", sc)
	}
	if c.myClusterAddr() != "10.1.1.1:4000" {
		t.Fatalf("cluster addr %s", c.myClusterAddr())
	}
	if a, _ := c.advertise("192.0.2.1"); a != "192.0.2.1" {
		t.Fatalf("advertise falls back to %s", a)
	}
	if _, err := New(Config{}); !errors.Is(err, store.ErrConfig) {
		t.Fatalf("no data directory: %v", err)
	}
}

// Renewal is due between 50% and 80% of the certificate's life.
func TestRenewIn(t *testing.T) {
	root, err := ca.NewRootCA("c", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := root.IssueNode(ca.NodeRequest{NodeID: "n", Role: ca.RoleWorker, Hosts: []string{"127.0.0.1"}, Lifetime: time.Hour, AllowShort: true})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := nc.TLS()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{kp: ca.NewKeypair(cert)}
	for frac, want := range map[float64]time.Duration{0: 30 * time.Minute, 1: 48 * time.Minute} {
		c.renewFrac = frac
		if got := c.renewIn(); got > want || got < want-time.Minute {
			t.Errorf("renewIn at fraction %v = %s, want about %s", frac, got, want)
		}
	}
}

func TestNextState(t *testing.T) {
	worker := state{NodeID: "n", Role: RoleWorker, Addr: "10.0.0.2", Managers: []string{"10.0.0.1:2377"}}
	resp := certResponse{Role: RoleManager, Managers: []string{"10.0.0.1:2377", "10.0.0.2:2377"}, StoreURLs: []string{"https://10.0.0.1:2378"}}
	mgr, err := nextState(worker, RoleManager, "10.0.0.2:2377", resp)
	if err != nil || mgr.Role != RoleManager || mgr.ClusterAddr != "10.0.0.2:2377" || len(mgr.StoreJoin) != 1 || len(mgr.Managers) != 2 {
		t.Fatalf("promoted state %+v, %v", mgr, err)
	}
	if _, err := nextState(worker, RoleManager, "10.0.0.2:2377", certResponse{Role: RoleManager}); err == nil {
		t.Fatal("promotion without a store member to join through")
	}
	if _, err := nextState(worker, RoleManager, "x", certResponse{Role: RoleWorker}); err == nil {
		t.Fatal("a certificate for the wrong role accepted")
	}
	mgr.StoreJoin = nil
	back, err := nextState(mgr, RoleWorker, "", certResponse{Role: RoleWorker, Managers: resp.Managers})
	if err != nil || back.ClusterAddr != "" || back.StoreJoin != nil || !slices.Equal(back.Managers, []string{"10.0.0.1:2377"}) {
		t.Fatalf("demoted state %+v, %v", back, err)
	}
	if len(resp.Managers) != 2 {
		t.Fatal("nextState changed the reply's manager list")
	}
}
