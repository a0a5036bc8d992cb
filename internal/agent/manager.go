package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/agent/tunmux"
	"github.com/shoal-dev/shoal/internal/ca"
)

// Tunnels is the manager side: it accepts nodes' tunnels on the cluster
// port and lets the rest of the manager dial each node's engine through them.
type Tunnels struct {
	root   *ca.RootCA
	timing Timing
	log    *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session // by node ID; the newest tunnel wins
	closed   bool
	changed  chan struct{} // closed and replaced on every connect/disconnect
	calls    *http.Server  // the nodes' own calls through their tunnels (ServeCalls)
	callq    *callQueue    // the calls' streams, for calls to accept
}

type session struct {
	id   ca.Identity
	sess *tunmux.Session
	addr net.Addr
	up   time.Time

	mu      sync.Mutex
	active  int              // the node's calls being served (at most maxNodeCalls)
	waiting []*tunmux.Stream // the node's calls beyond those, not yet accepted
}

// NewTunnels returns an empty set of tunnels whose peers root verifies.
func NewTunnels(root *ca.RootCA, timing Timing, logger *slog.Logger) *Tunnels {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Tunnels{root: root, timing: timing, log: logger, sessions: map[string]*session{}, changed: make(chan struct{})}
}

// Serve accepts tunnels on ln, a TLS listener built with
// ca.RootCA.ServerTLSConfig, until ctx ends or ln fails.
func (t *Tunnels) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("agent: accept: %w", err)
		}
		go func() {
			if err := t.ServeConn(ctx, conn); err != nil {
				t.log.Debug("agent: tunnel ended", "remote", conn.RemoteAddr(), "err", err)
			}
		}()
	}
}

// ServeConn runs one node's tunnel on conn (a *tls.Conn, e.g. handed over
// by a cluster port that also serves other protocols) until it drops. Its
// goroutine reads the tunnel (tunmux): the only one the tunnel has.
func (t *Tunnels) ServeConn(ctx context.Context, conn net.Conn) error {
	defer conn.Close()
	// On a goroutine of its own: this one lives as long as the tunnel and
	// would keep the stack the certificate checks needed.
	var id ca.Identity
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		id, err = t.verify(ctx, conn)
	}()
	<-done
	if err != nil {
		return err
	}
	// One reader (the session's Run) reads conn: the deadline needs no lock.
	sess := tunmux.Client(&readDeadline{Conn: conn, idle: t.timing.silentAfter()}, t.timing.mux())
	s := &session{id: id, sess: sess, addr: conn.RemoteAddr(), up: time.Now()}
	if err := t.add(s); err != nil {
		sess.Close()
		return err
	}
	defer t.remove(s)
	t.log.Info("agent: node connected", "node", id.NodeID, "role", id.Role, "remote", s.addr)
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	err = sess.Run(func(st *tunmux.Stream) { t.nodeCall(s, st) })
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("agent: tunnel of %s closed: %w", id.NodeID, err)
}

// ServeCalls makes the tunnels carry the nodes' own calls to the manager
// too (a node's record, its overlay networks: what it would otherwise ask
// the cluster port over a TLS connection of its own, which the manager
// would keep open with its buffers and a goroutine for every node). h
// serves each call; CallPeer tells it which node's tunnel it came
// through. A node opens a stream only to a manager that said it serves
// them: an older one never accepts it. Call before Serve; Close stops
// serving them.
func (t *Tunnels) ServeCalls(h http.Handler) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.calls != nil || t.closed {
		return
	}
	t.callq = newCallQueue()
	t.calls = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if cc, ok := c.(*callConn); ok {
				return context.WithValue(ctx, callPeerKey{}, cc.id)
			}
			return ctx
		},
	}
	// One server, and one goroutine accepting, for all the tunnels.
	go t.calls.Serve(t.callq)
}

func (t *Tunnels) callQueue() *callQueue {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.callq
}

type callPeerKey struct{}

// CallPeer is the identity of the node whose tunnel carried the call
// being served (ServeCalls): the certificate it connected with.
func CallPeer(ctx context.Context) (ca.Identity, bool) {
	id, ok := ctx.Value(callPeerKey{}).(ca.Identity)
	return id, ok
}

// maxNodeCalls is how many of one node's calls the manager serves at
// once: a node makes one or two at a time (its record, its networks); the
// rest wait in the tunnel, unacknowledged (and beyond the tunnel's
// backlog refused), so that a node, even one whose certificate was
// stolen, cannot hold a goroutine per stream it opens.
const maxNodeCalls = 8

// maxWaitingCalls is how many more of a node's calls wait: beyond, they
// are reset. Streams the node itself reset while they waited count until
// their turn, when they are dropped. Each may hold what the node sent
// before it was accepted (up to yamux's initial window, 256 KiB): a node
// makes one or two calls at a time, and a hostile one pins at most 8 MiB.
const maxWaitingCalls = 32

// nodeCall takes a stream the node opened (the tunnel's reader calls
// it): served at once if fewer than maxNodeCalls of the node's are, else
// once one of those ends.
func (t *Tunnels) nodeCall(s *session, st *tunmux.Stream) {
	q := t.callQueue()
	if q == nil {
		st.Reset() // this manager serves no calls: the node asks over TLS
		return
	}
	s.mu.Lock()
	if s.active >= maxNodeCalls {
		if len(s.waiting) >= maxWaitingCalls {
			s.mu.Unlock()
			st.Reset()
			return
		}
		s.waiting = append(s.waiting, st)
		s.mu.Unlock()
		return
	}
	s.active++
	s.mu.Unlock()
	t.startCall(q, s, st)
}

// startCall accepts a call's stream, in the slot it was given, and
// queues it for the calls' server; a stream that can no longer be
// accepted gives its slot to the next.
func (t *Tunnels) startCall(q *callQueue, s *session, st *tunmux.Stream) {
	for st != nil {
		if st.Accept() == nil {
			q.push(&callConn{Stream: st, id: s.id, release: func() { t.endCall(q, s) }})
			return
		}
		st.Close()
		st = s.nextCall()
	}
}

// endCall ends a call: its slot goes to the next waiting, if any.
func (t *Tunnels) endCall(q *callQueue, s *session) {
	if st := s.nextCall(); st != nil {
		t.startCall(q, s, st)
	}
}

// nextCall hands the slot of a call that ended to the next waiting
// call, or frees it (nil).
func (s *session) nextCall() *tunmux.Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waiting) == 0 {
		s.active--
		return nil
	}
	st := s.waiting[0]
	s.waiting[0] = nil
	s.waiting = s.waiting[1:]
	if len(s.waiting) == 0 {
		s.waiting = nil
	}
	return st
}

// callQueue is the listener of the calls' server: the calls' streams of
// every tunnel, in the order they were accepted.
type callQueue struct {
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	ready  chan struct{} // a token when conns may have one
	done   chan struct{}
}

func newCallQueue() *callQueue {
	return &callQueue{ready: make(chan struct{}, 1), done: make(chan struct{})}
}

func (q *callQueue) push(c net.Conn) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		c.Close()
		return
	}
	q.conns = append(q.conns, c)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *callQueue) Accept() (net.Conn, error) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, net.ErrClosed
		}
		if len(q.conns) > 0 {
			c := q.conns[0]
			q.conns[0] = nil
			q.conns = q.conns[1:]
			if len(q.conns) == 0 {
				q.conns = nil
			}
			q.mu.Unlock()
			return c, nil
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-q.done:
		}
	}
}

// Close refuses further calls and closes those not yet served.
func (q *callQueue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	conns := q.conns
	q.conns = nil
	close(q.done)
	q.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return nil
}

func (q *callQueue) Addr() net.Addr { return callAddr{} }

type callAddr struct{}

func (callAddr) Network() string { return "tunnel" }
func (callAddr) String() string  { return "tunnel" }

// callConn is a stream of a node's call, with the tunnel's identity.
type callConn struct {
	*tunmux.Stream
	id      ca.Identity
	once    sync.Once
	release func() // its slot
}

// Close closes the stream and gives its slot back (once).
func (c *callConn) Close() error {
	err := c.Stream.Close()
	c.once.Do(c.release)
	return err
}

// verify completes the handshake and checks the node certificate against
// the cluster CA, so a listener with a weaker TLS config still admits only
// nodes of this cluster.
func (t *Tunnels) verify(ctx context.Context, conn net.Conn) (ca.Identity, error) {
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return ca.Identity{}, fmt.Errorf("%w: not a TLS connection", ErrIdentity)
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return ca.Identity{}, fmt.Errorf("%w: handshake: %w", ErrIdentity, err)
	}
	id, err := t.root.PeerIdentity(tc.ConnectionState())
	if err != nil {
		return ca.Identity{}, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	return id, nil
}

func (t *Tunnels) add(s *session) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	if old, ok := t.sessions[s.id.NodeID]; ok {
		old.sess.Close() // the node reconnected; its old tunnel is dead or dying
	}
	t.sessions[s.id.NodeID] = s
	t.notifyLocked()
	return nil
}

func (t *Tunnels) remove(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sessions[s.id.NodeID] == s {
		delete(t.sessions, s.id.NodeID)
		t.notifyLocked()
		t.log.Info("agent: node disconnected", "node", s.id.NodeID)
	}
}

func (t *Tunnels) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *Tunnels) get(nodeID string) (*session, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.sessions[nodeID]
	return s, ok
}

// Changed returns a channel closed at the next connect or disconnect.
func (t *Tunnels) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

// Peer describes a connected node.
type Peer struct {
	Identity ca.Identity
	Remote   net.Addr
	Since    time.Time
}

// Connected lists the connected nodes, sorted by node ID.
func (t *Tunnels) Connected() []Peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Peer, 0, len(t.sessions))
	for _, s := range t.sessions {
		out = append(out, Peer{Identity: s.id, Remote: s.addr, Since: s.up})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identity.NodeID < out[j].Identity.NodeID })
	return out
}

// Disconnect drops a node's tunnel, e.g. after `docker node rm` revoked it
// (revocation itself keeps it from connecting again).
func (t *Tunnels) Disconnect(nodeID string) bool {
	s, ok := t.get(nodeID)
	if ok {
		s.sess.Close()
	}
	return ok
}

// Close drops every tunnel and refuses new ones. The nodes' calls under
// way (ServeCalls) end first, as the cluster port's do when it stops: for
// up to callsDrain, then they are cut off.
func (t *Tunnels) Close() error {
	t.mu.Lock()
	t.closed = true
	sessions := make([]*session, 0, len(t.sessions))
	for _, s := range t.sessions {
		sessions = append(sessions, s)
	}
	srv, q := t.calls, t.callq
	t.mu.Unlock()
	for _, s := range sessions {
		s.sess.Close()
	}
	if srv != nil {
		q.Close() // also if Serve has not started yet
		// Their handlers read the manager's store, which its owner
		// closes once Close returns. Shutdown closes the calls' queue.
		ctx, cancel := context.WithTimeout(context.Background(), callsDrain)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
	}
	return nil
}

// callsDrain is how long Close waits for the nodes' calls under way.
const callsDrain = 2 * time.Second

// Endpoint returns the way to one node's engine. It looks the tunnel up
// at each dial, so it stays valid across the node's reconnections.
func (t *Tunnels) Endpoint(nodeID string) *Endpoint {
	e := &Endpoint{tunnels: t, nodeID: nodeID}
	e.transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return e.Dial(ctx)
		},
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0, // engine calls like wait and logs legitimately block
	}
	return e
}

// Endpoint dials one node's engine through its tunnel.
type Endpoint struct {
	tunnels   *Tunnels
	nodeID    string
	transport *http.Transport
}

// NodeID is the node this endpoint reaches.
func (e *Endpoint) NodeID() string { return e.nodeID }

// Dial opens a new stream to the node's engine: a connection to its API
// socket as if dialled locally.
func (e *Endpoint) Dial(ctx context.Context) (net.Conn, error) {
	return e.tunnels.Dial(ctx, e.nodeID)
}

// Dial opens a new stream to a node: to its engine's API socket as if
// dialled locally, or, for a request under LocalPrefix, to its agent.
func (t *Tunnels) Dial(ctx context.Context, nodeID string) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, ok := t.get(nodeID)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotConnected, nodeID)
	}
	st, err := s.sess.Open(ctx)
	if errors.Is(err, tunmux.ErrSessionShutdown) || errors.Is(err, tunmux.ErrRemoteGoAway) {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotConnected, nodeID, err)
	}
	if err != nil {
		return nil, fmt.Errorf("agent: open stream to %s: %w", nodeID, err)
	}
	// A stream has CloseWrite, so that a hijacked attach or exec passes
	// the client's end of stdin on to the engine as with a direct TCP or
	// unix connection (`docker run -i ... < file` ends); the node turns
	// it into the engine socket's CloseWrite.
	return st, nil
}

// RoundTripper sends HTTP requests to the node's engine through the
// tunnel, whatever host the request URL names; idle connections (streams)
// are reused as with any http.Transport.
func (e *Endpoint) RoundTripper() http.RoundTripper { return e.transport }

// CloseIdle closes pooled idle streams, e.g. when the node is removed.
func (e *Endpoint) CloseIdle() { e.transport.CloseIdleConnections() }
