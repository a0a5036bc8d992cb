package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
)

// fakeEngine is a real HTTP server on a unix socket standing in for dockerd.
func fakeEngine(t testing.TB) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.56")
		io.WriteString(w, "OK")
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	// /attach hijacks like the engine's attach: 101, then raw bytes both ways.
	mux.HandleFunc("POST /attach", func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(buf, "HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
		buf.Flush()
		io.Copy(conn, buf) // echo until the client half-closes
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

type cluster struct {
	root    *ca.RootCA
	tunnels *Tunnels
	addr    string
	ln      net.Listener
}

var fastTiming = Timing{KeepAliveInterval: 200 * time.Millisecond, KeepAliveTimeout: 500 * time.Millisecond}

// bulkTiming is for tests that move tens of MiB at once: under -race on a
// loaded machine a write can stall past fastTiming's 500 ms, which yamux
// counts as a dead session; those tests are about data, not heartbeats.
var bulkTiming = Timing{KeepAliveInterval: 200 * time.Millisecond, KeepAliveTimeout: 10 * time.Second}

func keypair(t testing.TB, root *ca.RootCA, id string, role ca.Role) *ca.Keypair {
	t.Helper()
	nc, err := root.IssueNode(ca.NodeRequest{NodeID: id, Role: role, Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := nc.TLS()
	if err != nil {
		t.Fatal(err)
	}
	return ca.NewKeypair(c)
}

func newManager(t *testing.T, root *ca.RootCA, id string) *cluster {
	t.Helper()
	return newManagerTimed(t, root, id, fastTiming)
}

func newManagerTimed(t testing.TB, root *ca.RootCA, id string, timing Timing) *cluster {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", root.ServerTLSConfig(keypair(t, root, id, ca.RoleManager)))
	if err != nil {
		t.Fatal(err)
	}
	tun := NewTunnels(root, timing, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tun.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); tun.Close(); <-done })
	return &cluster{root: root, tunnels: tun, addr: ln.Addr().String(), ln: ln}
}

func startNode(t *testing.T, root *ca.RootCA, kp *ca.Keypair, sock string, managers ...string) *Node {
	t.Helper()
	return startNodeTimed(t, root, kp, sock, fastTiming, managers...)
}

func startNodeTimed(t *testing.T, root *ca.RootCA, kp *ca.Keypair, sock string, timing Timing, managers ...string) *Node {
	t.Helper()
	n, err := NewNode(NodeConfig{
		Managers: managers, TLS: root.ClientTLSConfig(kp), EngineSocket: sock,
		Timing: timing, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

func waitConnected(t testing.TB, tun *Tunnels, nodeID string, want bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		ch := tun.Changed()
		_, ok := tun.get(nodeID)
		if ok == want {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("node %s connected=%v, want %v", nodeID, ok, want)
		}
	}
}

func ping(ep *Endpoint) (string, error) {
	client := &http.Client{Transport: ep.RoundTripper(), Timeout: 5 * time.Second}
	resp, err := client.Get("http://engine/_ping")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestTunnelHTTP(t *testing.T) {
	root, _ := ca.NewRootCA("c1", time.Now())
	m := newManagerTimed(t, root, "m1", bulkTiming)
	startNodeTimed(t, root, keypair(t, root, "node1", ca.RoleWorker), fakeEngine(t), bulkTiming, m.addr)
	waitConnected(t, m.tunnels, "node1", true)

	peers := m.tunnels.Connected()
	if len(peers) != 1 || peers[0].Identity.NodeID != "node1" || peers[0].Identity.Role != ca.RoleWorker {
		t.Fatalf("connected = %+v", peers)
	}
	ep := m.tunnels.Endpoint("node1")
	if got, err := ping(ep); err != nil || got != "OK" {
		t.Fatalf("ping = %q, %v", got, err)
	}

	// Many concurrent requests, each with a body larger than a stream window.
	body := strings.Repeat("0123456789abcdef", 1<<17) // 2 MiB
	client := &http.Client{Transport: ep.RoundTripper()}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			resp, err := client.Post("http://engine/echo", "text/plain", strings.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err == nil && string(b) != body {
				err = fmt.Errorf("echo returned %d bytes, want %d", len(b), len(body))
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	if _, err := m.tunnels.Endpoint("nobody").Dial(context.Background()); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("dial unknown node: %v", err)
	}
}

func TestTunnelHijack(t *testing.T) {
	root, _ := ca.NewRootCA("c1", time.Now())
	m := newManager(t, root, "m1")
	startNode(t, root, keypair(t, root, "node1", ca.RoleWorker), fakeEngine(t), m.addr)
	waitConnected(t, m.tunnels, "node1", true)

	conn, err := m.tunnels.Endpoint("node1").Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "POST /attach HTTP/1.1\r\nHost: engine\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(conn, "hello over the tunnel")
	// Half-close as the API's hijack does: the engine sees EOF, echoes, and ends.
	cw, ok := conn.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("a tunnel stream (%T) has no CloseWrite: a hijacked stdin would never end", conn)
	}
	cw.CloseWrite()
	got, err := io.ReadAll(br)
	if err != nil || string(got) != "hello over the tunnel" {
		t.Fatalf("echo = %q, %v", got, err)
	}
}

func TestTunnelReconnectAndFailover(t *testing.T) {
	root, _ := ca.NewRootCA("c1", time.Now())
	m1 := newManager(t, root, "m1")
	m2 := newManager(t, root, "m2")
	sock := fakeEngine(t)
	// A dead address first: the node must move on to a live manager.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	n := startNode(t, root, keypair(t, root, "node1", ca.RoleWorker), sock, deadAddr, m1.addr, m2.addr)
	waitConnected(t, m1.tunnels, "node1", true)
	ep1 := m1.tunnels.Endpoint("node1")
	if _, err := ping(ep1); err != nil {
		t.Fatal(err)
	}

	// The manager drops the tunnel: the node comes back (same endpoint works).
	start := time.Now()
	m1.tunnels.Disconnect("node1")
	deadline := time.Now().Add(5 * time.Second)
	for !reconnectedSince(start, m1.tunnels, m2.tunnels) {
		if time.Now().After(deadline) {
			t.Fatal("node did not reconnect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The manager counts the tunnel once its session starts; the node
	// once its first ping is answered, a moment later.
	for _, ok := n.Connected(); !ok; _, ok = n.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("node does not report its tunnel")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("node reconnected in %s", time.Since(start).Round(time.Millisecond))

	if got, err := ping(ep1); err != nil && !errors.Is(err, ErrNotConnected) {
		t.Fatalf("endpoint after reconnect: %q, %v", got, err)
	}

	// m1 goes away entirely: the node ends up on m2.
	m1.tunnels.Close()
	m1.ln.Close()
	waitConnected(t, m2.tunnels, "node1", true)
	if got, err := ping(m2.tunnels.Endpoint("node1")); err != nil || got != "OK" {
		t.Fatalf("ping via m2 = %q, %v", got, err)
	}
}

func TestTunnelRefusesStrangers(t *testing.T) {
	root, _ := ca.NewRootCA("c1", time.Now())
	m := newManager(t, root, "m1")
	sock := fakeEngine(t)

	foreign, _ := ca.NewRootCA("c1", time.Now())
	startNode(t, foreign, keypair(t, foreign, "intruder", ca.RoleWorker), sock, m.addr)

	root.Revocations().Revoke("removed")
	revoked := startNode(t, root, keypair(t, root, "removed", ca.RoleWorker), sock, m.addr)

	// A worker posing as a manager: the node must not open its engine to it.
	fakeMgr, err := tls.Listen("tcp", "127.0.0.1:0", root.ServerTLSConfig(keypair(t, root, "w-posing", ca.RoleWorker)))
	if err != nil {
		t.Fatal(err)
	}
	defer fakeMgr.Close()
	fakeTunnels := NewTunnels(root, fastTiming, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go fakeTunnels.Serve(ctx, fakeMgr)
	honest := startNode(t, root, keypair(t, root, "honest", ca.RoleWorker), sock, fakeMgr.Addr().String())

	time.Sleep(time.Second)
	if peers := m.tunnels.Connected(); len(peers) != 0 {
		t.Fatalf("refused nodes connected: %+v", peers)
	}
	if _, ok := revoked.Connected(); ok {
		t.Fatal("revoked node believes it is connected")
	}
	if peers := fakeTunnels.Connected(); len(peers) != 0 {
		t.Fatalf("node connected to a worker posing as manager: %+v", peers)
	}
	if _, ok := honest.Connected(); ok {
		t.Fatal("node trusted a worker as manager")
	}
}

func TestTunnelDetectsDeadNode(t *testing.T) {
	root, _ := ca.NewRootCA("c1", time.Now())
	m := newManager(t, root, "m1")
	relay := relayedNode(t, root, m)
	start := time.Now()
	relay.freeze()
	waitConnected(t, m.tunnels, "node1", false)
	took := time.Since(start)
	t.Logf("silent node dropped after %s (ping every %s, timeout %s)", took.Round(time.Millisecond), fastTiming.KeepAliveInterval, fastTiming.KeepAliveTimeout)
	if took > 2*time.Second {
		t.Fatalf("dead node noticed after %s", took)
	}
}

// relayedNode runs node1 until the test ends, connected to m through a
// relay the test can freeze, as a cable pulled out would: no FIN, just
// silence. It never reconnects (hour-long backoff).
func relayedNode(t *testing.T, root *ca.RootCA, m *cluster) *relay {
	t.Helper()
	relay := newRelay(t, m.addr)
	n, err := NewNode(NodeConfig{
		Managers: []string{relay.addr}, TLS: root.ClientTLSConfig(keypair(t, root, "node1", ca.RoleWorker)),
		EngineSocket: fakeEngine(t), Timing: fastTiming, MinBackoff: time.Hour, MaxBackoff: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go n.Run(ctx)
	waitConnected(t, m.tunnels, "node1", true)
	return relay
}

// relay forwards TCP to target until frozen, after which it swallows bytes.
type relay struct {
	addr   string
	mu     sync.Mutex
	frozen bool
}

func newRelay(t *testing.T, target string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r := &relay{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); up.Close() })
			go r.pipe(up, c)
			go r.pipe(c, up)
		}
	}()
	return r
}

func (r *relay) freeze() {
	r.mu.Lock()
	r.frozen = true
	r.mu.Unlock()
}

func (r *relay) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		frozen := r.frozen
		r.mu.Unlock()
		if !frozen {
			dst.Write(buf[:n])
		}
	}
}

func reconnectedSince(t0 time.Time, sets ...*Tunnels) bool {
	for _, set := range sets {
		for _, p := range set.Connected() {
			if p.Identity.NodeID == "node1" && p.Since.After(t0) {
				return true
			}
		}
	}
	return false
}

// writeSizes records the largest TLS record written to a connection,
// and the largest write: a node's TLS writes whole records, one or
// several (a batch) per write.
type writeSizes struct {
	net.Conn
	max    *atomic.Int64 // the largest record, header and tag included
	writes *atomic.Int64 // the largest write
}

func storeMax(v *atomic.Int64, n int64) {
	for {
		m := v.Load()
		if n <= m || v.CompareAndSwap(m, n) {
			return
		}
	}
}

func (c writeSizes) Write(p []byte) (int, error) {
	if c.writes != nil {
		storeMax(c.writes, int64(len(p)))
	}
	for r := p; len(r) >= 5; {
		n := 5 + int(binary.BigEndian.Uint16(r[3:5]))
		storeMax(c.max, int64(n))
		if n > len(r) {
			break // a record cut across writes: not how TLS writes
		}
		r = r[n:]
	}
	return c.Conn.Write(p)
}

// TestTunnelSmallRecords checks that a node sends its engine's answers
// in TLS records of at most maxRecord bytes: a manager keeps, per tunnel,
// a read buffer as large as the largest record it was sent.
func TestTunnelSmallRecords(t *testing.T) {
	root, _ := ca.NewRootCA("c1", time.Now())
	m := newManagerTimed(t, root, "m1", bulkTiming)
	var largest, largestWrite atomic.Int64
	kp := keypair(t, root, "node1", ca.RoleWorker)
	n, err := NewNode(NodeConfig{
		Managers: []string{m.addr}, TLS: root.ClientTLSConfig(kp), EngineSocket: fakeEngine(t), Timing: bulkTiming,
		DialManager: func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return writeSizes{conn, &largest, &largestWrite}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runNode(t, n, m, "node1")
	// The handshake's records (the node's certificate: ~1.5 KiB in one)
	// come before the tunnel, and are not what its reader keeps.
	largest.Store(0)
	largestWrite.Store(0)

	body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB echoed back
	client := &http.Client{Transport: m.tunnels.Endpoint("node1").RoundTripper(), Timeout: 30 * time.Second}
	resp, err := client.Post("http://engine/echo", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("echo: %d bytes, %v", len(got), err)
	}
	// A record is its plaintext plus a 5-byte header, a content type byte
	// and a 16-byte tag (TLS 1.3).
	if l := largest.Load(); l > maxRecord+64 {
		t.Fatalf("largest TLS record sent by the node: %d bytes, want at most %d", l, maxRecord+64)
	}
	// The records of one of yamux's writes go out together, not one
	// system call each.
	if w := largestWrite.Load(); w < 4*maxRecord {
		t.Fatalf("largest write of the node's connection: %d bytes: its records were not batched", w)
	}
}

// TestNodeDownHook: the node's Down hook runs each time its tunnel drops
// or is refused (it may have been removed: the cluster asks about itself
// then), and not while the tunnel stays up.
func TestNodeDownHook(t *testing.T) {
	root, _ := ca.NewRootCA("c1", time.Now())
	m := newManager(t, root, "m1")
	sock := fakeEngine(t)
	downs := make(chan struct{}, 100)
	n, err := NewNode(NodeConfig{
		Managers: []string{m.addr}, TLS: root.ClientTLSConfig(keypair(t, root, "node1", ca.RoleWorker)),
		EngineSocket: sock, Timing: fastTiming, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Down: func() { downs <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	runNode(t, n, m, "node1")
	if len(downs) != 0 {
		t.Fatalf("Down ran %d times while the tunnel came up", len(downs))
	}
	root.Revocations().Revoke("node1")
	m.tunnels.Disconnect("node1")
	for range 2 { // the drop, then a refusal
		select {
		case <-downs:
		case <-time.After(10 * time.Second):
			t.Fatal("Down did not run after the tunnel dropped and was refused")
		}
	}
}

// runNode runs n until the test ends and waits for its tunnel to m.
func runNode(t testing.TB, n *Node, m *cluster, id string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitConnected(t, m.tunnels, id, true)
}

// A manager that serves the nodes' calls (ServeCalls) answers what a node
// sends through its tunnel (Node.Dial), telling the handler which node's
// tunnel carried it; each call is a stream of its own, and nothing is
// kept once it is answered.
func TestNodeCallsThroughTheTunnel(t *testing.T) {
	root, _ := ca.NewRootCA("c1", time.Now())
	ln, err := tls.Listen("tcp", "127.0.0.1:0", root.ServerTLSConfig(keypair(t, root, "m1", ca.RoleManager)))
	if err != nil {
		t.Fatal(err)
	}
	tun := NewTunnels(root, fastTiming, nil)
	tun.ServeCalls(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := CallPeer(r.Context())
		if !ok {
			http.Error(w, "no peer", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, id.NodeID)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tun.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); tun.Close(); <-done })

	n := startNode(t, root, keypair(t, root, "node1", ca.RoleWorker), fakeEngine(t), ln.Addr().String())
	if _, err := n.Dial(context.Background()); !errors.Is(err, ErrNotConnected) {
		// The node may already be up; that is fine too.
		if _, ok := n.Connected(); !ok {
			t.Fatalf("Dial before the tunnel is up: %v, want ErrNotConnected", err)
		}
	}
	waitConnected(t, tun, "node1", true)
	hc := nodeCallClient(t, n)
	for i := range 3 {
		resp, err := hc.Get("http://manager/self")
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := string(b); resp.StatusCode != 200 || got != "GET /self node1" {
			t.Fatalf("call %d: %d %q, want 200 %q", i, resp.StatusCode, got, "GET /self node1")
		}
	}
	// Each call's stream was closed once answered (Connection: close).
	s, _ := tun.get("node1")
	deadline := time.Now().Add(5 * time.Second)
	for s.sess.NumStreams() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams left open after the calls", s.sess.NumStreams())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The manager sends no pings of its own: a node that is alive but has
// nothing to say keeps its tunnel (its own pings are heard), for many
// times the manager's silence limit.
func TestQuietNodeKeepsItsTunnel(t *testing.T) {
	root, _ := ca.NewRootCA("c1", time.Now())
	m := newManager(t, root, "m1")
	n := startNode(t, root, keypair(t, root, "node1", ca.RoleWorker), fakeEngine(t), m.addr)
	waitConnected(t, m.tunnels, "node1", true)
	s, _ := m.tunnels.get("node1")
	time.Sleep(4 * fastTiming.silentAfter())
	if cur, ok := m.tunnels.get("node1"); !ok || cur != s {
		t.Fatal("a quiet, live node's tunnel was dropped or replaced")
	}
	if _, ok := n.Connected(); !ok {
		t.Fatal("the node lost its tunnel")
	}
}

// A manager that serves the nodes' calls still drops a node gone silent
// (its read deadline ends the tunnel with a timeout, which http.Server
// would retry for ever as a temporary accept error): the node leaves
// Connected and its tunnel's goroutine ends.
func TestTunnelDetectsDeadNodeWithCalls(t *testing.T) {
	root, _ := ca.NewRootCA("c1", time.Now())
	m := newManager(t, root, "m1")
	m.tunnels.ServeCalls(http.NotFoundHandler())
	relay := relayedNode(t, root, m)
	relay.freeze()
	waitConnected(t, m.tunnels, "node1", false)
}

// Tunnel names the node's tunnel while it is up: 0 while none is, and
// another number for the tunnel that replaces a dropped one.
func TestNodeTunnelNumber(t *testing.T) {
	root, _ := ca.NewRootCA("c1", time.Now())
	m := newManager(t, root, "m1")
	n := startNode(t, root, keypair(t, root, "node1", ca.RoleWorker), fakeEngine(t), m.addr)
	waitTunnel := func(not uint64) uint64 {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if cur := n.Tunnel(); cur != 0 && cur != not {
				return cur
			}
			if time.Now().After(deadline) {
				t.Fatalf("tunnel number %d, want one other than 0 and %d", n.Tunnel(), not)
			}
		}
	}
	first := waitTunnel(0)
	m.tunnels.Disconnect("node1")
	waitTunnel(first)
}

// Close lets a node's call under way end before it returns (its handler
// reads what the manager closes next), as the cluster port's shutdown does.
func TestTunnelsCloseWaitsForCalls(t *testing.T) {
	root, _ := ca.NewRootCA("c1", time.Now())
	m := newManager(t, root, "m1")
	entered := make(chan struct{})
	var done atomic.Bool
	m.tunnels.ServeCalls(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()               // the tunnel is closed
		time.Sleep(100 * time.Millisecond) // and the handler has work left
		done.Store(true)
	}))
	n := startNode(t, root, keypair(t, root, "node1", ca.RoleWorker), fakeEngine(t), m.addr)
	waitConnected(t, m.tunnels, "node1", true)
	for deadline := time.Now().Add(5 * time.Second); n.Tunnel() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the node never saw its tunnel up")
		}
	}
	hc := &http.Client{Transport: &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return n.Dial(ctx) },
		DisableKeepAlives: true,
	}}
	go func() {
		if resp, err := hc.Get("http://manager/self"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	m.tunnels.Close()
	if !done.Load() {
		t.Fatal("Close returned while a node's call was still being served")
	}
}

// nodeCallClient sends n's own calls through its tunnel, one stream per
// call, once n sees its tunnel up.
func nodeCallClient(t *testing.T, n *Node) *http.Client {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, ok := n.Connected(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the node never saw its tunnel up")
		}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return n.Dial(ctx) },
		DisableKeepAlives: true,
	}}
}

// A manager serves at most maxNodeCalls of one node's calls at once: the
// others wait in the tunnel and are served as slots free, none lost.
func TestNodeCallsAtMostSomeAtOnce(t *testing.T) {
	root, _ := ca.NewRootCA("c1", time.Now())
	m := newManager(t, root, "m1")
	var now, most atomic.Int64
	release := make(chan struct{})
	m.tunnels.ServeCalls(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := now.Add(1)
		for {
			p := most.Load()
			if k <= p || most.CompareAndSwap(p, k) {
				break
			}
		}
		<-release
		now.Add(-1)
		w.Write([]byte("ok"))
	}))
	n := startNode(t, root, keypair(t, root, "node1", ca.RoleWorker), fakeEngine(t), m.addr)
	waitConnected(t, m.tunnels, "node1", true)
	hc := nodeCallClient(t, n)
	const calls = maxNodeCalls + 4
	errs := make(chan error, calls)
	for range calls {
		go func() {
			resp, err := hc.Get("http://manager/self")
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); now.Load() < maxNodeCalls; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls served at once, want %d", now.Load(), maxNodeCalls)
		}
	}
	time.Sleep(200 * time.Millisecond) // had more been let in, they would be by now
	if got := most.Load(); got != maxNodeCalls {
		t.Fatalf("%d calls served at once, want at most %d", got, maxNodeCalls)
	}
	close(release)
	for range calls {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := most.Load(); got != maxNodeCalls {
		t.Fatalf("%d calls served at once, want at most %d", got, maxNodeCalls)
	}
}

// rawFrame is one yamux frame header as a node sends it.
func rawFrame(typ uint8, flags uint16, id, length uint32) []byte {
	h := make([]byte, 12)
	h[1] = typ
	binary.BigEndian.PutUint16(h[2:4], flags)
	binary.BigEndian.PutUint32(h[4:8], id)
	binary.BigEndian.PutUint32(h[8:12], length)
	return h
}

// A node that holds its maxNodeCalls slots and then opens streams and
// resets them at once (what a yamux node cannot do, a hostile one can)
// does not grow the manager's list of its waiting calls past
// maxWaitingCalls: the streams beyond are reset by the manager.
func TestNodeCallsWaitingBounded(t *testing.T) {
	root, _ := ca.NewRootCA("c1", time.Now())
	// This node sends no pings: the manager must not drop its silent
	// tunnel during the test.
	m := newManagerTimed(t, root, "m1", Timing{KeepAliveInterval: time.Minute, KeepAliveTimeout: time.Minute})
	release := make(chan struct{})
	var served atomic.Int64
	m.tunnels.ServeCalls(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		<-release
	}))
	t.Cleanup(func() { close(release) })
	conn, err := tls.Dial("tcp", m.addr, root.ClientTLSConfig(keypair(t, root, "node1", ca.RoleWorker)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitConnected(t, m.tunnels, "node1", true)
	// The frames the manager sends back: the IDs it reset.
	resets := make(chan uint32, 4096)
	go func() {
		br := bufio.NewReader(conn)
		h := make([]byte, 12)
		for {
			if _, err := io.ReadFull(br, h); err != nil {
				close(resets)
				return
			}
			flags, id, n := binary.BigEndian.Uint16(h[2:4]), binary.BigEndian.Uint32(h[4:8]), binary.BigEndian.Uint32(h[8:12])
			if h[1] == 0 && n > 0 {
				io.CopyN(io.Discard, br, int64(n))
			}
			if flags&8 != 0 {
				resets <- id
			}
		}
	}()
	id := uint32(2)
	req := []byte("GET /self HTTP/1.1\r\nHost: manager\r\n\r\n")
	for range maxNodeCalls {
		// A call the handler holds: its slot stays taken.
		conn.Write(rawFrame(1, 1, id, 0))
		conn.Write(append(rawFrame(0, 0, id, uint32(len(req))), req...))
		id += 2
	}
	for deadline := time.Now().Add(10 * time.Second); served.Load() < maxNodeCalls; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls served, want %d", served.Load(), maxNodeCalls)
		}
	}
	const extra = maxWaitingCalls + 100
	first := id
	for range extra {
		conn.Write(rawFrame(1, 1, id, 0)) // SYN
		conn.Write(rawFrame(1, 8, id, 0)) // RST: the node's side of it is gone
		id += 2
	}
	// A stream the node has not reset, after all those: refused too.
	conn.Write(rawFrame(1, 1, id, 0))
	last := id
	got := map[uint32]bool{}
	for deadline := time.After(10 * time.Second); !got[last]; {
		select {
		case r, ok := <-resets:
			if !ok {
				t.Fatal("the manager ended the tunnel")
			}
			got[r] = true
		case <-deadline:
			t.Fatalf("the manager reset %d streams, not the last one (%d): its waiting list grows without bound", len(got), last)
		}
	}
	for r := range got {
		if r < first {
			t.Fatalf("the manager reset stream %d, a call being served", r)
		}
	}
	if n := len(got); n < extra+1-maxWaitingCalls {
		t.Fatalf("the manager reset %d streams, want at least %d (all beyond %d waiting)", n, extra+1-maxWaitingCalls, maxWaitingCalls)
	}
	if served.Load() != maxNodeCalls {
		t.Fatalf("%d calls served, want %d", served.Load(), maxNodeCalls)
	}
}

// BenchmarkTunnelEcho: 4 MiB posted to a node's engine through its
// tunnel and echoed back (the engine on a unix socket, as dockerd): what
// a `docker cp` or a build context costs the tunnel both ways, with the
// node's small records (smallRecords) and the manager's tunmux.
//
//	go test -run '^$' -bench TunnelEcho -benchmem ./internal/agent/
func BenchmarkTunnelEcho(b *testing.B) {
	root, _ := ca.NewRootCA("c1", time.Now())
	m := newManagerTimed(b, root, "m1", bulkTiming)
	n, err := NewNode(NodeConfig{Managers: []string{m.addr}, TLS: root.ClientTLSConfig(keypair(b, root, "node1", ca.RoleWorker)),
		EngineSocket: fakeEngine(b), Timing: bulkTiming})
	if err != nil {
		b.Fatal(err)
	}
	runNode(b, n, m, "node1")
	body := bytes.Repeat([]byte("0123456789abcdef"), 256<<10) // 4 MiB
	client := &http.Client{Transport: m.tunnels.Endpoint("node1").RoundTripper()}
	b.SetBytes(int64(2 * len(body)))
	for b.Loop() {
		resp, err := client.Post("http://engine/echo", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		k, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || k != int64(len(body)) {
			b.Fatalf("echo: %d bytes, %v", k, err)
		}
	}
}
