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

	"github.com/hashicorp/yamux"
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
}

type session struct {
	id   ca.Identity
	sess *yamux.Session
	addr net.Addr
	up   time.Time
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
// by a cluster port that also serves other protocols) until it drops.
func (t *Tunnels) ServeConn(ctx context.Context, conn net.Conn) error {
	defer conn.Close()
	id, err := t.verify(ctx, conn)
	if err != nil {
		return err
	}
	// One reader (yamux's receive loop) reads conn: the deadline needs no lock.
	sess, err := yamux.Client(&readDeadline{Conn: conn, idle: t.timing.silentAfter()}, t.timing.managerYamux())
	if err != nil {
		return fmt.Errorf("agent: start session: %w", err)
	}
	s := &session{id: id, sess: sess, addr: conn.RemoteAddr(), up: time.Now()}
	if err := t.add(s); err != nil {
		sess.Close()
		return err
	}
	defer t.remove(s)
	t.log.Info("agent: node connected", "node", id.NodeID, "role", id.Role, "remote", s.addr)
	if srv := t.callServer(); srv != nil {
		// This goroutine, which would wait for the tunnel's end, accepts
		// the node's calls until then.
		stop := context.AfterFunc(ctx, func() { sess.Close() })
		defer stop()
		_ = srv.Serve(&callListener{sess: sess, id: id, slots: make(chan struct{}, maxNodeCalls)})
		if err := ctx.Err(); err != nil {
			return err
		}
		return fmt.Errorf("agent: tunnel of %s closed", id.NodeID)
	}
	select {
	case <-sess.CloseChan():
		return fmt.Errorf("agent: tunnel of %s closed", id.NodeID)
	case <-ctx.Done():
		sess.Close()
		return ctx.Err()
	}
}

// ServeCalls makes the tunnels carry the nodes' own calls to the manager
// too (a node's record, its overlay networks: what it would otherwise ask
// the cluster port over a TLS connection of its own, which the manager
// would keep open with its buffers and a goroutine for every node). h
// serves each call; CallPeer tells it which node's tunnel it came
// through. A node opens a stream only to a manager that said it serves
// them: an older one never accepts it. Call before Serve.
func (t *Tunnels) ServeCalls(h http.Handler) {
	t.mu.Lock()
	defer t.mu.Unlock()
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
}

func (t *Tunnels) callServer() *http.Server {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls
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
// rest wait in the tunnel, so that a node, even one whose certificate was
// stolen, cannot hold a goroutine per stream it opens.
const maxNodeCalls = 8

// callListener hands the streams a node opens to the calls' server, at
// most maxNodeCalls at a time (a slot each, given back as its stream
// closes).
type callListener struct {
	sess  *yamux.Session
	id    ca.Identity
	slots chan struct{}
}

func (l *callListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.sess.CloseChan():
		return nil, fmt.Errorf("agent: tunnel closed: %w", yamux.ErrSessionShutdown) // not a net.Error: no retry
	}
	st, err := l.sess.AcceptStream()
	if err != nil {
		<-l.slots
		// http.Server.Serve retries an error that says it is temporary,
		// for ever: a tunnel that ended on its read deadline (a timeout)
		// or a reset says so, and would keep ServeConn, and the node's
		// entry in Connected, until the manager stops. No error of a
		// tunnel's accept is worth a retry: Serve returns and closes it.
		return nil, fmt.Errorf("agent: tunnel closed: %w", err) // not a net.Error: no retry
	}
	return &callConn{Stream: st, id: l.id, release: func() { <-l.slots }}, nil
}

func (l *callListener) Close() error   { return l.sess.Close() }
func (l *callListener) Addr() net.Addr { return l.sess.Addr() }

// callConn is a stream of a node's call, with the tunnel's identity.
type callConn struct {
	*yamux.Stream
	id      ca.Identity
	once    sync.Once
	release func() // its slot
}

// Close closes the stream and gives its slot back (once).
func (c *callConn) Close() error {
	c.once.Do(c.release)
	return c.Stream.Close()
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
	srv := t.calls
	t.mu.Unlock()
	for _, s := range sessions {
		s.sess.Close()
	}
	if srv != nil {
		// Their handlers read the manager's store, which its owner
		// closes once Close returns.
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
	conn, err := s.sess.OpenStream()
	if errors.Is(err, yamux.ErrSessionShutdown) {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotConnected, nodeID, err)
	}
	if err != nil {
		return nil, fmt.Errorf("agent: open stream to %s: %w", nodeID, err)
	}
	return &streamConn{conn}, nil
}

// streamConn is a tunnel stream with CloseWrite, so that a hijacked
// attach or exec passes the client's end of stdin on to the engine as
// with a direct TCP or unix connection (`docker run -i ... < file` ends).
// A yamux stream's Close sends FIN and keeps reading: a half-close; the
// node turns it into the engine socket's CloseWrite.
type streamConn struct{ *yamux.Stream }

// CloseWrite ends what is sent to the engine; the answer can still be read.
func (c *streamConn) CloseWrite() error { return c.Stream.Close() }

// RoundTripper sends HTTP requests to the node's engine through the
// tunnel, whatever host the request URL names; idle connections (streams)
// are reused as with any http.Transport.
func (e *Endpoint) RoundTripper() http.RoundTripper { return e.transport }

// CloseIdle closes pooled idle streams, e.g. when the node is removed.
func (e *Endpoint) CloseIdle() { e.transport.CloseIdleConnections() }
