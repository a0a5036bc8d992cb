package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/agent"
)

// A worker of a manager that serves node calls through tunnels sends its
// polls (/self, /overlay) there once told so, presenting its current
// certificate; the manager answers them as it would over TLS. Through
// the tunnel, a call with another node's certificate is refused, one
// with none too, and nothing but the polls is served.
func TestNodeCallsThroughTheTunnel(t *testing.T) {
	m := initManager(t, "mgr")
	ctx := ctxT(t, 90*time.Second)
	w := joinWorker(t, ctx, m, "worker1")
	eventually(t, 30*time.Second, "the worker's tunnel", func() error {
		if !m.connectedIDs()[w.NodeID()] {
			return errors.New("not connected")
		}
		return nil
	})
	calls := callsOf(t, w)
	eventually(t, 30*time.Second, "the worker told the manager serves calls through its tunnel", func() error {
		if !calls.serves(m.ClusterAddr(), calls.tunnel(m.ClusterAddr())) {
			return errors.New("not yet")
		}
		return nil
	})
	// Woken for its record and its networks, the worker asks through the tunnel.
	before, served := calls.throughTunnel.Load(), m.tunnelCalls.Load()
	m.sendWakesOnce(ctx, wakeSelf|wakeOverlay, nil)
	eventually(t, 30*time.Second, "the worker's calls through the tunnel", func() error {
		if calls.throughTunnel.Load() < before+2 || m.tunnelCalls.Load() < served+2 {
			return fmt.Errorf("worker sent %d, manager served %d", calls.throughTunnel.Load()-before, m.tunnelCalls.Load()-served)
		}
		return nil
	})
	// The TLS connections of the first calls are closed: the manager
	// keeps no connection for the nodes' polls (its own agent's included).
	eventually(t, 30*time.Second, "no HTTP connection left on the cluster port", func() error {
		if n := m.portConns.Load(); n != 0 {
			return fmt.Errorf("%d open", n)
		}
		return nil
	})
	self, err := w.fetchSelf(ctx, &http.Client{Transport: calls})
	if err != nil || self.Role != RoleWorker || len(self.Managers) == 0 {
		t.Fatalf("/self through the tunnel: %+v, %v", self, err)
	}

	// Raw calls through the worker's tunnel.
	node := w.tunnelTo(m.ClusterAddr())
	if node == nil {
		t.Fatal("no agent for the manager")
	}
	raw := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return node.Dial(ctx) },
		DisableKeepAlives: true,
	}}
	call := func(method, path, cert string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, "http://manager"+path, nil)
		if cert != "" {
			req.Header.Set(certHeader, cert)
		}
		resp, err := raw.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	own := certHeaderValue(w.kp.Get().Certificate)
	if code, body := call(http.MethodGet, "/self", own); code != http.StatusOK {
		t.Fatalf("/self with the worker's certificate: %d %s", code, body)
	}
	if code, body := call(http.MethodGet, "/self", certHeaderValue(m.kp.Get().Certificate)); code != http.StatusForbidden {
		t.Fatalf("/self with the manager's certificate through the worker's tunnel: %d %s, want 403", code, body)
	}
	if code, body := call(http.MethodGet, "/self", ""); code != http.StatusUnauthorized {
		t.Fatalf("/self with no certificate: %d %s, want 401", code, body)
	}
	if code, body := call(http.MethodGet, "/self", "not base64!"); code != http.StatusBadRequest {
		t.Fatalf("/self with a garbled certificate: %d %s, want 400", code, body)
	}
	if code, body := call(http.MethodPost, "/leave", own); code != http.StatusNotFound {
		t.Fatalf("POST /leave through the tunnel: %d %s, want 404", code, body)
	}
}

// A manager that does not say it serves calls through tunnels (one of an
// older release) is asked over TLS only: the node never opens a stream
// it would not accept.
func TestNodeCallsOverTLSToAnOlderManager(t *testing.T) {
	addr, direct := fakePort(t, nil)
	n, dialed := fakeNodeCalls(map[string]bool{})
	for range 3 {
		getSelf(t, n, addr)
	}
	if dialed.Load() != 0 || direct.Load() != 3 || n.throughTunnel.Load() != 0 {
		t.Fatalf("tunnel dials %d, direct calls %d, through the tunnel %d; want 0, 3, 0", dialed.Load(), direct.Load(), n.throughTunnel.Load())
	}
}

// A call meant for the tunnel that cannot go through it (the tunnel down,
// or not answered) goes over TLS, and the manager is asked over TLS from
// then on until an answer says it serves calls through tunnels again.
func TestNodeCallsFallBackToTLS(t *testing.T) {
	var marks atomic.Bool
	addr, direct := fakePort(t, &marks)
	n, dialed := fakeNodeCalls(map[string]bool{addr: true})
	getSelf(t, n, addr)
	if dialed.Load() != 1 || direct.Load() != 1 || n.serves(addr, 1) {
		t.Fatalf("tunnel down: dials %d, TLS calls %d, still via the tunnel %v; want 1, 1, false", dialed.Load(), direct.Load(), n.serves(addr, 1))
	}
	getSelf(t, n, addr)
	if dialed.Load() != 1 || direct.Load() != 2 {
		t.Fatalf("next call: dials %d, TLS calls %d; want 1, 2", dialed.Load(), direct.Load())
	}
	marks.Store(true)
	getSelf(t, n, addr)
	getSelf(t, n, addr)
	if !n.serves(addr, 1) || dialed.Load() != 2 {
		t.Fatalf("after the manager said so again: via the tunnel %v, dials %d; want true, 2", n.serves(addr, 1), dialed.Load())
	}
}

// fakePort is a cluster port that counts its calls and, while marks is
// set, says it serves calls through tunnels.
func fakePort(t *testing.T, marks *atomic.Bool) (addr string, calls *atomic.Int64) {
	calls = &atomic.Int64{}
	return servePort(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if marks != nil && marks.Load() {
			w.Header().Set(tunnelCallsHeader, "1")
		}
		w.Write([]byte("{}"))
	}), calls
}

// servePort serves h on a loopback port until the test ends.
func servePort(t *testing.T, h http.HandlerFunc) (addr string) {
	srv := &http.Server{Handler: h}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// fakeNodeCalls is a node's calls whose tunnels, all numbered 1, fail
// every dial (counted), believing via of the managers.
func fakeNodeCalls(via map[string]bool) (*nodeCalls, *atomic.Int64) {
	dialed := &atomic.Int64{}
	n := &nodeCalls{tls: &http.Transport{}, via: map[string]uint64{}, cert: func() [][]byte { return nil },
		dial:   func(context.Context, string) (net.Conn, error) { dialed.Add(1); return nil, agent.ErrNotConnected },
		tunnel: func(string) uint64 { return 1 }}
	for addr, ok := range via {
		if ok {
			n.via[addr] = 1
		}
	}
	n.tun = &http.Transport{DialTLSContext: func(ctx context.Context, _, a string) (net.Conn, error) { return n.dial(ctx, a) }}
	n.tun.DialContext = n.tun.DialTLSContext // the tests' URLs are http://
	return n, dialed
}

func getSelf(t *testing.T, rt http.RoundTripper, addr string) {
	t.Helper()
	resp, err := (&http.Client{Transport: rt}).Get("http://" + addr + "/self")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// callsOf is how n's calls reach the managers, once its Run has begun.
func callsOf(t *testing.T, n *node) *nodeCalls {
	t.Helper()
	eventually(t, 10*time.Second, "the node's calls", func() error {
		if n.calls.Load() == nil {
			return errors.New("not yet")
		}
		return nil
	})
	return n.calls.Load()
}

// What a manager said holds for the tunnel up when it said it: an answer
// to a call that began before the tunnel dropped (a manager answering as
// it shuts down, to restart as an older release) does not send the next
// tunnel's calls through it; the first answer on the new tunnel does.
func TestNodeCallsAnswerOfAnEarlierTunnel(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var block atomic.Bool
	block.Store(true)
	addr := servePort(t, func(w http.ResponseWriter, r *http.Request) {
		if block.Load() {
			close(entered)
			<-release
		}
		w.Header().Set(tunnelCallsHeader, "1")
		w.Write([]byte("{}"))
	})

	n, dialed := fakeNodeCalls(map[string]bool{})
	var tunnel atomic.Uint64
	tunnel.Store(1)
	n.tunnel = func(string) uint64 { return tunnel.Load() }
	done := make(chan struct{})
	go func() { defer close(done); getSelf(t, n, addr) }()
	<-entered
	tunnel.Store(2) // the tunnel dropped and a new one came up meanwhile
	block.Store(false)
	close(release)
	<-done
	if n.serves(addr, 2) {
		t.Fatal("an answer to a call begun on tunnel 1 counts for tunnel 2")
	}
	getSelf(t, n, addr) // over TLS, on tunnel 2
	if dialed.Load() != 0 || !n.serves(addr, 2) {
		t.Fatalf("tunnel dials %d, serves on tunnel 2 %v; want 0, true", dialed.Load(), n.serves(addr, 2))
	}
}
