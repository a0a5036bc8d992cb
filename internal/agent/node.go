package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// NodeConfig configures the node side of the tunnel.
type NodeConfig struct {
	// Managers are the cluster ports (host:port) to try, in turn.
	Managers []string
	// TLS presents the node certificate and checks the manager's; build it
	// with ca.RootCA.ClientTLSConfig.
	TLS *tls.Config
	// EngineSocket is the local engine's unix socket, e.g. /var/run/docker.sock.
	EngineSocket string
	// DialEngine overrides how the engine is reached (default: EngineSocket).
	DialEngine func(ctx context.Context) (net.Conn, error)
	// DialManager overrides the TCP dial to a manager (default: net.Dialer).
	DialManager func(ctx context.Context, addr string) (net.Conn, error)
	Timing      Timing
	// MinBackoff and MaxBackoff bound the wait between failed connection
	// attempts (defaults 100ms and 5s); the wait doubles after each failure.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
	// Local answers the requests for the node itself (paths under
	// LocalPrefix, e.g. TaskFiles); nil sends them to the engine too.
	Local http.Handler
	// Down, if set, is called each time the tunnel goes down or could
	// not come up (a refusal, an unreachable manager), before the next
	// try: the node may have been removed or the managers changed.
	Down func()
}

// Node keeps the node's tunnel to a manager up and serves the managers'
// streams by proxying each one to the local engine.
type Node struct {
	cfg NodeConfig
	log *slog.Logger

	mu        sync.Mutex
	connected string         // manager address while a tunnel is up
	sess      *yamux.Session // the tunnel while it is up
	tunnel    uint64         // the tunnel's number while it is up (Tunnel)
}

// tunnels numbers the tunnels of every Node in the process (Tunnel).
var tunnels atomic.Uint64

// NewNode checks cfg and fills in defaults.
func NewNode(cfg NodeConfig) (*Node, error) {
	if len(cfg.Managers) == 0 || cfg.TLS == nil {
		return nil, fmt.Errorf("agent: node needs manager addresses and a TLS config")
	}
	if cfg.DialEngine == nil {
		if cfg.EngineSocket == "" {
			return nil, fmt.Errorf("agent: node needs an engine socket")
		}
		sock := cfg.EngineSocket
		cfg.DialEngine = func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
	}
	if cfg.DialManager == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}
		cfg.DialManager = func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	cfg.MinBackoff = cmp(cfg.MinBackoff, 100*time.Millisecond)
	cfg.MaxBackoff = cmp(cfg.MaxBackoff, 5*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Node{cfg: cfg, log: cfg.Logger}, nil
}

// Connected returns the manager address of the live tunnel, if any.
func (n *Node) Connected() (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.connected, n.connected != ""
}

func (n *Node) setConnected(addr string, sess *yamux.Session) {
	n.mu.Lock()
	n.connected, n.sess, n.tunnel = addr, sess, 0
	if sess != nil {
		n.tunnel = tunnels.Add(1)
	}
	n.mu.Unlock()
}

// Tunnel names the tunnel up now, 0 while none is: a number no other
// tunnel of any Node in the process has had or will have. What a manager
// said holds for the tunnel it was said on: after a drop the next tunnel
// may reach that manager restarted as another release.
func (n *Node) Tunnel() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tunnel
}

// Dial opens a stream to the manager through the tunnel, for this node's
// own calls to the cluster port (a manager that serves them says so:
// Tunnels.ServeCalls); ErrNotConnected while the tunnel is down.
func (n *Node) Dial(ctx context.Context) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	sess := n.sess
	n.mu.Unlock()
	if sess == nil {
		return nil, ErrNotConnected
	}
	st, err := sess.OpenStream()
	if errors.Is(err, yamux.ErrSessionShutdown) {
		return nil, fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	if err != nil {
		return nil, fmt.Errorf("agent: open stream to the manager: %w", err)
	}
	return st, nil
}

// Run keeps a tunnel up until ctx ends, moving to the next manager when
// one cannot be reached or its tunnel drops, and backing off while none
// can. It returns ctx.Err().
func (n *Node) Run(ctx context.Context) error {
	backoff := n.cfg.MinBackoff
	for i := 0; ; i++ {
		addr := n.cfg.Managers[i%len(n.cfg.Managers)]
		served, err := n.serveOnce(ctx, addr)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n.log.Warn("agent: tunnel down", "manager", addr, "err", err)
		if n.cfg.Down != nil {
			n.cfg.Down()
		}
		if served {
			backoff = n.cfg.MinBackoff
			continue // a tunnel that worked gets replaced at once
		}
		if !sleep(ctx, jitter(backoff)) {
			return ctx.Err()
		}
		backoff = min(backoff*2, n.cfg.MaxBackoff)
	}
}

// serveOnce dials addr and serves its streams until the tunnel drops;
// served reports whether the tunnel came up at all.
func (n *Node) serveOnce(ctx context.Context, addr string) (served bool, err error) {
	conn, err := n.dial(ctx, addr)
	if err != nil {
		return false, err
	}
	sess, err := yamux.Server(conn, n.cfg.Timing.yamux())
	if err != nil {
		conn.Close()
		return false, fmt.Errorf("agent: start session: %w", err)
	}
	// With TLS 1.3 the client's handshake ends before the manager has
	// checked the node certificate; one ping proves the manager admitted
	// us, so a refused (e.g. revoked) node backs off instead of spinning.
	if _, err := sess.Ping(); err != nil {
		sess.Close()
		return false, fmt.Errorf("agent: manager %s refused the tunnel: %w", addr, err)
	}
	n.setConnected(addr, sess)
	defer n.setConnected("", nil)
	n.log.Info("agent: tunnel up", "manager", addr)
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	defer sess.Close()
	return true, n.accept(ctx, sess)
}

// dial connects to a manager: a TLS connection whose writes go out in
// small records (smallRecords).
func (n *Node) dial(ctx context.Context, addr string) (net.Conn, error) {
	raw, err := n.cfg.DialManager(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("agent: dial %s: %w", addr, err)
	}
	cfg := n.cfg.TLS.Clone()
	bc := &batchConn{Conn: raw}
	conn := tls.Client(bc, cfg)
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("agent: TLS handshake with %s: %w", addr, err)
	}
	return smallRecords{Conn: conn, raw: bc}, nil
}

func (n *Node) accept(ctx context.Context, sess *yamux.Session) error {
	for {
		stream, err := sess.Accept()
		if err != nil {
			return fmt.Errorf("agent: accept: %w", err)
		}
		go n.proxy(ctx, stream)
	}
}

// proxy joins one manager stream to a fresh engine connection, passing
// half-closes through so hijacked (attach, exec) streams end cleanly.
func (n *Node) proxy(ctx context.Context, stream net.Conn) {
	var in io.Reader = stream
	if n.cfg.Local != nil {
		br := bufio.NewReader(stream)
		if start, _ := br.Peek(localPeek); isLocal(start) {
			serveLocal(stream, br, n.cfg.Local)
			return
		}
		in = br
	}
	defer stream.Close()
	engine, err := n.cfg.DialEngine(ctx)
	if err != nil {
		n.log.Warn("agent: dial engine", "err", err)
		return
	}
	defer engine.Close()
	join(readerConn{stream, in}, engine)
}

// readerConn is a stream read through the buffer that peeked at it.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite passes a half-close on, as the stream itself does.
func (c readerConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// join copies both ways until both directions end. The end of one
// direction is passed on as a half-close where the connection supports it.
func join(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { copyHalf(b, a) })
	wg.Go(func() { copyHalf(a, b) })
	wg.Wait()
}

type closeWriter interface{ CloseWrite() error }

func copyHalf(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if cw, ok := dst.(closeWriter); ok && err == nil {
		cw.CloseWrite()
		return
	}
	// No half-close (a yamux stream's Close is one) or an error: close.
	dst.Close()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		src.Close()
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// maxRecord caps the TLS records a node sends on its tunnel. A TLS
// connection's reader keeps a buffer as large as the largest record it
// has read, and larger as it reads ahead (Go's grows to twice a 16 KiB
// record and never shrinks): on a manager that was ~30 KiB per node for
// as long as the tunnel lives, 30 MiB at 1,000 nodes; with records of at
// most 4 KiB, 14 KiB; with 1 KiB, 5.5 KiB (heap profiles at 1,000 nodes,
// docs/benchmarks.md). The cost is more records (22 bytes of header and
// tag each, 2%) for bulk answers.
const maxRecord = 1 << 10

// smallRecords writes to a TLS connection in pieces of at most
// maxRecord bytes (each Write of a tls.Conn is its own record(s)), and
// sends the records of one Write in one write of the connection under
// it (batchConn): a record per system call cut bulk throughput to a
// third (BenchmarkTunnelEcho).
type smallRecords struct {
	net.Conn // the TLS connection
	raw      *batchConn
}

func (c smallRecords) Write(p []byte) (int, error) {
	c.raw.hold()
	n := 0
	var err error
	for len(p) > 0 {
		k := min(len(p), maxRecord)
		var m int
		m, err = c.Conn.Write(p[:k])
		n += m
		if err != nil {
			break
		}
		p = p[k:]
	}
	if ferr := c.raw.release(); err == nil {
		err = ferr
	}
	return n, err
}

// batchConn is the connection under a node's TLS: while a smallRecords
// Write is under way, what TLS writes to it is gathered, and sent at the
// end in one write. Writes outside (the handshake, alerts) go straight
// through, after what was gathered.
type batchConn struct {
	net.Conn
	mu    sync.Mutex
	holds int
	buf   []byte
}

// maxBatch is how much a batch keeps of its buffer between writes.
const maxBatch = 64 << 10

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holds > 0 {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *batchConn) hold() {
	c.mu.Lock()
	c.holds++
	c.mu.Unlock()
}

// release ends a hold; the last sends what was gathered.
func (c *batchConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holds--
	if c.holds > 0 || len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > maxBatch {
		c.buf = nil
	} else {
		c.buf = c.buf[:0]
	}
	return err
}
