package tunmux

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/net/nettest"
)

// hung bounds every wait in these tests: only a hung test reaches it.
const hung = 30 * time.Second

var transports = []string{"pipe", "tcp", "tls"}

// nodeConfig is a node's yamux configuration (agent's Timing.yamux) with
// a keepalive so short that pings cross every test.
func nodeConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = true
	c.KeepAliveInterval = 10 * time.Millisecond
	c.ConnectionWriteTimeout = hung
	c.MaxStreamWindowSize = 1 << 20
	c.LogOutput = nil
	c.Logger = log.New(io.Discard, "", 0)
	return c
}

// managerConfig is the manager's (agent's Timing.mux).
func managerConfig() Config {
	return Config{MaxStreamWindow: 1 << 20, WriteTimeout: hung}
}

var (
	tlsOnce           sync.Once
	tlsServer, tlsCli *tls.Config
)

func tlsConfigs(t testing.TB) (*tls.Config, *tls.Config) {
	tlsOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "manager"},
			DNSNames:              []string{"manager"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		cert, _ := x509.ParseCertificate(der)
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		tlsServer = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
		tlsCli = &tls.Config{RootCAs: pool, ServerName: "manager"}
	})
	return tlsServer, tlsCli
}

// connPair is a connection's two ends: the manager's and the node's.
func connPair(t testing.TB, kind string) (mgr, node net.Conn) {
	t.Helper()
	if kind == "pipe" {
		return net.Pipe()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	node, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	mgr = r.c
	if kind == "tls" {
		srv, cli := tlsConfigs(t)
		tm, tn := tls.Server(mgr, srv), tls.Client(node, cli)
		errc := make(chan error, 1)
		go func() { errc <- tm.Handshake() }()
		if err := tn.Handshake(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		mgr, node = tm, tn
	}
	return mgr, node
}

// pair is a tunmux client (the manager) and a real yamux server (the node).
type pair struct {
	t        testing.TB
	sess     *Session
	node     *yamux.Session
	incoming chan *Stream // streams the node opened, not yet accepted
	runDone  chan struct{}
	runErr   error
}

func newPair(t testing.TB, kind string, ycfg *yamux.Config, cfg Config) *pair {
	t.Helper()
	mc, nc := connPair(t, kind)
	node, err := yamux.Server(nc, ycfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{t: t, sess: Client(mc, cfg), node: node, incoming: make(chan *Stream, 1024), runDone: make(chan struct{})}
	go func() {
		defer close(p.runDone)
		p.runErr = p.sess.Run(func(st *Stream) {
			select {
			case p.incoming <- st:
			default:
				st.Reset()
			}
		})
	}()
	t.Cleanup(func() {
		p.sess.Close()
		node.Close()
		p.waitRun()
	})
	return p
}

// waitRun waits for Run to return, and returns its error.
func (p *pair) waitRun() error {
	p.t.Helper()
	select {
	case <-p.runDone:
	case <-time.After(hung):
		p.t.Fatal("Run did not return")
	}
	return p.runErr
}

// open opens a stream from the manager, accepted by the node.
func (p *pair) open() (*Stream, *yamux.Stream) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hung)
	defer cancel()
	m, err := p.sess.Open(ctx)
	if err != nil {
		p.t.Fatalf("Open: %v", err)
	}
	n, err := p.node.AcceptStreamWithContext(ctx)
	if err != nil {
		p.t.Fatalf("node's AcceptStream: %v", err)
	}
	if n.StreamID() != m.ID() {
		p.t.Fatalf("node accepted stream %d, manager opened %d", n.StreamID(), m.ID())
	}
	return m, n
}

// nodeOpen opens a stream from the node, accepted by the manager.
func (p *pair) nodeOpen() (*Stream, *yamux.Stream) {
	p.t.Helper()
	n, err := p.node.OpenStream()
	if err != nil {
		p.t.Fatalf("node's OpenStream: %v", err)
	}
	m := p.accept()
	if m.ID() != n.StreamID() {
		p.t.Fatalf("manager got stream %d, node opened %d", m.ID(), n.StreamID())
	}
	if err := m.Accept(); err != nil {
		p.t.Fatalf("Accept: %v", err)
	}
	return m, n
}

// accept is the next stream the node opened (not acknowledged yet).
func (p *pair) accept() *Stream {
	p.t.Helper()
	select {
	case m := <-p.incoming:
		return m
	case <-time.After(hung):
		p.t.Fatal("no stream from the node")
		return nil
	}
}

// noLeak waits until neither side keeps a stream.
func (p *pair) noLeak() {
	p.t.Helper()
	eventually(p.t, "streams closed on both sides", func() bool {
		return p.sess.NumStreams() == 0 && p.node.NumStreams() == 0
	})
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(hung)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// result runs f in a goroutine: the returned func waits for its error.
func result(t testing.TB, f func() error) func() error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return func() error {
		t.Helper()
		select {
		case err := <-ch:
			return err
		case <-time.After(hung):
			t.Fatal("hung")
			return nil
		}
	}
}

// notYet reports whether nothing came on ch in a short look (no timing
// asserted: used to check that something still blocks).
func notYet[T any](ch <-chan T) bool {
	select {
	case <-ch:
		return false
	case <-time.After(20 * time.Millisecond):
		return true
	}
}

func readAll(t testing.TB, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

func forEachTransport(t *testing.T, f func(t *testing.T, kind string)) {
	for _, kind := range transports {
		t.Run(kind, func(t *testing.T) { f(t, kind) })
	}
}

// TestEcho: streams opened by either side carry data both ways and end
// with half-closes; neither side keeps them.
func TestEcho(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		p := newPair(t, kind, nodeConfig(), managerConfig())
		var wg sync.WaitGroup
		for i := range 4 {
			// The manager's stream: the node echoes it.
			m, n := p.open()
			wg.Go(func() {
				io.Copy(n, n)
				n.Close()
			})
			msg := bytes.Repeat([]byte(fmt.Sprintf("manager %d ", i)), 1000*(i+1))
			done := result(t, func() error {
				_, err := m.Write(msg)
				if err == nil {
					err = m.CloseWrite()
				}
				return err
			})
			if got := readAll(t, m); !bytes.Equal(got, msg) {
				t.Fatalf("echo of %d bytes: got %d", len(msg), len(got))
			}
			if err := done(); err != nil {
				t.Fatal(err)
			}
			m.Close()

			// The node's stream: the manager echoes it.
			m, n = p.nodeOpen()
			wg.Go(func() {
				io.Copy(m, m)
				m.CloseWrite()
			})
			msg = bytes.Repeat([]byte(fmt.Sprintf("node %d ", i)), 1000*(i+1))
			done = result(t, func() error {
				_, err := n.Write(msg)
				if err == nil {
					err = n.Close() // yamux's Close is a half-close
				}
				return err
			})
			if got := readAll(t, n); !bytes.Equal(got, msg) {
				t.Fatalf("echo of %d bytes: got %d", len(msg), len(got))
			}
			if err := done(); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		p.noLeak()
	})
}

// send writes size pseudo-random bytes from seed in writes of random
// sizes, then half-closes; sum is what the peer must read.
func send(w io.Writer, seed uint64, size int) ([32]byte, error) {
	r := mrand.New(mrand.NewPCG(seed, 1))
	h := sha256.New()
	buf := make([]byte, 100<<10)
	for size > 0 {
		k := min(size, 1+r.IntN(len(buf)))
		for i := range k {
			buf[i] = byte(r.Uint32())
		}
		h.Write(buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			return [32]byte{}, err
		}
		size -= k
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}

// slowRead reads to EOF in small reads, pausing now and then, so the
// writer keeps running into the window.
func slowRead(r io.Reader, seed uint64) ([32]byte, int, error) {
	rnd := mrand.New(mrand.NewPCG(seed, 2))
	h := sha256.New()
	buf := make([]byte, 48<<10)
	n := 0
	for {
		k, err := r.Read(buf[:1+rnd.IntN(len(buf))])
		h.Write(buf[:k])
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			return [32]byte{}, n, err
		}
		if rnd.IntN(32) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, n, nil
}

// TestBulk: 20 MiB each way on one stream, and several streams at once,
// with slow readers: the windows fill and are reopened many times over.
func TestBulk(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		p := newPair(t, kind, nodeConfig(), managerConfig())
		size := 20 << 20
		if testing.Short() {
			size = 4 << 20
		}
		m, n := p.open()
		bulk(t, m, n, size, 1)
		m.Close()
		var wg sync.WaitGroup
		for i := range 4 {
			var m *Stream
			var n *yamux.Stream
			if i%2 == 0 {
				m, n = p.open()
			} else {
				m, n = p.nodeOpen()
			}
			wg.Go(func() {
				bulk(t, m, n, size/4, uint64(10+2*i))
				m.Close()
			})
		}
		wg.Wait()
		p.noLeak()
	})
}

// bulk sends size bytes each way at once on a stream, each followed by
// a half-close, and compares what was read with what was sent.
func bulk(t *testing.T, m *Stream, n *yamux.Stream, size int, seed uint64) {
	type res struct {
		sum [32]byte
		n   int
		err error
	}
	sendTo := func(w io.Writer, closeWrite func() error, seed uint64) chan res {
		ch := make(chan res, 1)
		go func() {
			s, err := send(w, seed, size)
			if err == nil {
				err = closeWrite()
			}
			ch <- res{s, size, err}
		}()
		return ch
	}
	readFrom := func(r io.Reader, seed uint64) chan res {
		ch := make(chan res, 1)
		go func() { s, k, err := slowRead(r, seed); ch <- res{s, k, err} }()
		return ch
	}
	wait := func(ch chan res) res {
		select {
		case r := <-ch:
			return r
		case <-time.After(4 * hung):
			t.Fatal("bulk transfer hung")
			return res{}
		}
	}
	toNode, toMgr := sendTo(m, m.CloseWrite, seed), sendTo(n, n.Close, seed+1)
	atNode, atMgr := readFrom(n, seed), readFrom(m, seed+1)
	for _, c := range []struct {
		name       string
		sent, read chan res
	}{{"manager to node", toNode, atNode}, {"node to manager", toMgr, atMgr}} {
		s, r := wait(c.sent), wait(c.read)
		if s.err != nil {
			t.Errorf("%s: send: %v", c.name, s.err)
		}
		if r.err != nil || r.n != size {
			t.Errorf("%s: read %d of %d bytes: %v", c.name, r.n, size, r.err)
		} else if s.err == nil && r.sum != s.sum {
			t.Errorf("%s: what was read differs from what was sent", c.name)
		}
	}
}

// TestKeepalive: a node's session with keepalive on stays up for many
// intervals with no traffic: the manager answers its pings.
func TestKeepalive(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		p := newPair(t, kind, nodeConfig(), managerConfig())
		for range 5 {
			if _, err := p.node.Ping(); err != nil {
				t.Fatalf("node's ping: %v", err)
			}
		}
		time.Sleep(30 * nodeConfig().KeepAliveInterval)
		if p.node.IsClosed() {
			t.Fatal("the node dropped the session")
		}
		select {
		case <-p.sess.Done():
			t.Fatalf("the session ended: %v", p.sess.Err())
		default:
		}
		if _, err := p.node.Ping(); err != nil {
			t.Fatalf("node's ping: %v", err)
		}
		m, n := p.open()
		n.Write([]byte("still up"))
		n.Close()
		if got := string(readAll(t, m)); got != "still up" {
			t.Fatalf("read %q", got)
		}
	})
}

// TestHalfClose: CloseWrite ends what one side sends; the other reads
// EOF and can still answer, then its own EOF ends the stream.
func TestHalfClose(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		p := newPair(t, kind, nodeConfig(), managerConfig())

		m, n := p.open()
		if _, err := m.Write([]byte("request")); err != nil {
			t.Fatal(err)
		}
		if err := m.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Write([]byte("more")); !errors.Is(err, ErrStreamClosed) {
			t.Fatalf("Write after CloseWrite: %v", err)
		}
		if got := string(readAll(t, n)); got != "request" {
			t.Fatalf("node read %q", got)
		}
		if _, err := n.Write([]byte("answer")); err != nil {
			t.Fatalf("node's answer after the manager's half-close: %v", err)
		}
		n.Close()
		if got := string(readAll(t, m)); got != "answer" {
			t.Fatalf("manager read %q", got)
		}
		p.noLeak()
		// Closing what was half-closed both ways changes nothing.
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}

		// The other way: the node half-closes first.
		m, n = p.nodeOpen()
		n.Write([]byte("call"))
		n.Close()
		if got := string(readAll(t, m)); got != "call" {
			t.Fatalf("manager read %q", got)
		}
		if _, err := m.Write([]byte("reply")); err != nil {
			t.Fatal(err)
		}
		if err := m.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if got := string(readAll(t, n)); got != "reply" {
			t.Fatalf("node read %q", got)
		}
		p.noLeak()
	})
}

// TestCloseThenPeerWrites: data that comes after a full Close resets the
// stream, as TCP does; what was unread is dropped.
func TestCloseThenPeerWrites(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		p := newPair(t, kind, nodeConfig(), managerConfig())
		m, n := p.open()
		if _, err := n.Write([]byte("unread")); err != nil {
			t.Fatal(err)
		}
		// Answered after the data was read in: it waits, unread.
		if _, err := p.node.Ping(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Read(make([]byte, 10)); err == nil {
			t.Fatal("Read after Close succeeded")
		}
		if _, err := m.Write([]byte("x")); err == nil {
			t.Fatal("Write after Close succeeded")
		}
		if got := readAll(t, n); len(got) != 0 {
			t.Fatalf("node read %q after the manager's Close", got)
		}
		// The node's writes now meet a reset.
		done := result(t, func() error {
			for {
				if _, err := n.Write([]byte("late")); err != nil {
					return err
				}
				time.Sleep(time.Millisecond)
			}
		})
		if err := done(); !errors.Is(err, yamux.ErrConnectionReset) {
			t.Fatalf("node's Write after the manager's Close: %v", err)
		}
		p.noLeak()
	})
}

// TestPeerClose: the node's Close (a half-close) reaches the manager after
// all it sent, which the manager reads in full before EOF.
func TestPeerClose(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		p := newPair(t, kind, nodeConfig(), managerConfig())
		m, n := p.nodeOpen()
		want := bytes.Repeat([]byte("0123456789abcdef"), 40<<10) // 640 KiB
		done := result(t, func() error {
			if _, err := n.Write(want); err != nil {
				return err
			}
			return n.Close()
		})
		time.Sleep(10 * time.Millisecond) // let some of it wait, unread
		if got := readAll(t, m); !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes, want %d", len(got), len(want))
		}
		if err := done(); err != nil {
			t.Fatal(err)
		}
		// Still at EOF.
		if k, err := m.Read(make([]byte, 1)); k != 0 || err != io.EOF {
			t.Fatalf("Read at the end: %d, %v", k, err)
		}
		m.Close()
		p.noLeak()
	})
}

// TestPeerReset: the node resets a stream (its close timeout): the
// manager's blocked Write and later Reads fail with ErrConnectionReset.
func TestPeerReset(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		ycfg := nodeConfig()
		ycfg.StreamCloseTimeout = 50 * time.Millisecond
		p := newPair(t, kind, ycfg, managerConfig())
		m, n := p.open()
		n.Close() // the manager never closes: the node resets it
		readAll(t, m)
		done := result(t, func() error {
			for {
				if _, err := m.Write(make([]byte, 64<<10)); err != nil {
					return err
				}
			}
		})
		if err := done(); !errors.Is(err, ErrConnectionReset) {
			t.Fatalf("Write after the node's reset: %v", err)
		}
		if _, err := m.Read(make([]byte, 1)); !errors.Is(err, ErrConnectionReset) {
			t.Fatalf("Read after the node's reset: %v", err)
		}
		p.noLeak()
	})
}

// TestCloseTimeout: a stream closed here that the node never closes is
// reset after CloseTimeout, and both sides let it go; one only
// half-closed here is not (its reader still waits for the answer).
func TestCloseTimeout(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		cfg := managerConfig()
		cfg.CloseTimeout = 20 * time.Millisecond
		p := newPair(t, kind, nodeConfig(), cfg)
		m, n := p.open()
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		readAll(t, n)
		// The node neither writes nor closes: only the timeout's reset
		// ends its stream.
		p.noLeak()
		if _, err := n.Write([]byte("x")); !errors.Is(err, yamux.ErrConnectionReset) {
			t.Fatalf("node's Write after the close timeout: %v", err)
		}

		m, n = p.open()
		if err := m.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		readAll(t, n)
		time.Sleep(10 * cfg.CloseTimeout) // a slow answer
		if _, err := n.Write([]byte("late answer")); err != nil {
			t.Fatalf("node's Write to a stream half-closed here: %v", err)
		}
		n.Close()
		if got := string(readAll(t, m)); got != "late answer" {
			t.Fatalf("read %q", got)
		}
		p.noLeak()
	})
}

// TestOpenTimeout: a stream the node never acknowledges ends the session
// after OpenTimeout.
func TestOpenTimeout(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		cfg := managerConfig()
		cfg.OpenTimeout = 20 * time.Millisecond
		p := newPair(t, kind, nodeConfig(), cfg)
		// The node never accepts it: no acknowledgement.
		if _, err := p.sess.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := p.waitRun(); !errors.Is(err, ErrOpenTimeout) {
			t.Fatalf("Run: %v", err)
		}
		if !errors.Is(p.sess.Err(), ErrOpenTimeout) {
			t.Fatalf("Err: %v", p.sess.Err())
		}
		select {
		case <-p.node.CloseChan():
		case <-time.After(hung):
			t.Fatal("the node's session did not end")
		}
	})
}

// TestDeadlines: a passed deadline fails Read and Write with
// os.ErrDeadlineExceeded, wakes those blocked at once, and the stream
// stays usable once it is moved or cleared.
func TestDeadlines(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		p := newPair(t, kind, nodeConfig(), managerConfig())
		m, n := p.open()
		buf := make([]byte, 100)

		// A past deadline wakes a blocked Read.
		read := result(t, func() error { _, err := m.Read(buf); return err })
		time.Sleep(5 * time.Millisecond) // let it block
		m.SetReadDeadline(time.Now().Add(-time.Second))
		err := read()
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read: %v", err)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Read's error is no timeout: %v", err)
		}
		// Still past: fails at once.
		if _, err := m.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read: %v", err)
		}
		// Cleared: a Read waits for data again.
		m.SetReadDeadline(time.Time{})
		got := make(chan string, 1)
		go func() {
			k, _ := m.Read(buf)
			got <- string(buf[:k])
		}()
		if !notYet(got) {
			t.Fatal("Read returned with no data and no deadline")
		}
		n.Write([]byte("data"))
		if s := <-got; s != "data" {
			t.Fatalf("read %q", s)
		}

		// SetDeadline during a blocked Read: it times out.
		read = result(t, func() error { _, err := m.Read(buf); return err })
		time.Sleep(5 * time.Millisecond)
		m.SetDeadline(time.Now().Add(10 * time.Millisecond))
		if err := read(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read: %v", err)
		}
		m.SetDeadline(time.Time{})

		// A Write blocked on a full window (the node reads nothing).
		write := result(t, func() error {
			for {
				if _, err := m.Write(make([]byte, 64<<10)); err != nil {
					return err
				}
			}
		})
		time.Sleep(5 * time.Millisecond)
		m.SetWriteDeadline(time.Now().Add(-time.Second))
		if err := write(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write: %v", err)
		}
		// Cleared, Writes go on once the node reads.
		m.SetWriteDeadline(time.Time{})
		drained := result(t, func() error {
			_, err := io.Copy(io.Discard, n)
			return err
		})
		if _, err := m.Write(make([]byte, 2<<20)); err != nil {
			t.Fatalf("Write after the deadline was cleared: %v", err)
		}
		// A past write deadline fails a Write at once.
		m.SetWriteDeadline(time.Now().Add(-time.Second))
		if k, err := m.Write([]byte("x")); k != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write past the deadline: %d, %v", k, err)
		}
		m.SetWriteDeadline(time.Time{})
		m.CloseWrite()
		if err := drained(); err != nil {
			t.Fatal(err)
		}
		m.Close()
		n.Close()
		p.noLeak()
	})
}

// TestConcurrentReaders: every Read blocked on a stream returns when it
// ends or its deadline passes, not just one of them.
func TestConcurrentReaders(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		p := newPair(t, kind, nodeConfig(), managerConfig())
		m, n := p.open()
		var reads []func() error
		for range 4 {
			reads = append(reads, result(t, func() error { _, err := m.Read(make([]byte, 1)); return err }))
		}
		time.Sleep(5 * time.Millisecond)
		m.SetReadDeadline(time.Now().Add(-time.Second))
		for _, r := range reads {
			if err := r(); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read: %v", err)
			}
		}
		m.SetReadDeadline(time.Time{})
		reads = nil
		for range 4 {
			reads = append(reads, result(t, func() error { _, err := m.Read(make([]byte, 1)); return err }))
		}
		time.Sleep(5 * time.Millisecond)
		n.Close()
		for _, r := range reads {
			if err := r(); err != io.EOF {
				t.Fatalf("Read: %v", err)
			}
		}
		m.Close()
		p.noLeak()
	})
}

// TestNetConn runs x/net's conformance tests of a net.Conn on streams
// opened by either side.
func TestNetConn(t *testing.T) {
	for _, kind := range transports {
		for _, by := range []string{"manager", "node"} {
			t.Run(kind+"/"+by, func(t *testing.T) {
				nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
					p := newPair(t, kind, nodeConfig(), managerConfig())
					var m *Stream
					var n *yamux.Stream
					if by == "manager" {
						m, n = p.open()
					} else {
						m, n = p.nodeOpen()
					}
					return m, n, func() { p.sess.Close(); p.node.Close() }, nil
				})
			})
		}
	}
}

// TestSessionEnd: when the node's end goes, everything blocked returns
// and Run returns; Close ends the node's session.
func TestSessionEnd(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		cfg := managerConfig()
		cfg.AcceptBacklog = 2
		p := newPair(t, kind, nodeConfig(), cfg)
		m, _ := p.open()
		read := result(t, func() error { _, err := m.Read(make([]byte, 1)); return err })
		w, _ := p.open()
		write := result(t, func() error {
			for {
				if _, err := w.Write(make([]byte, 64<<10)); err != nil {
					return err
				}
			}
		})
		// Two streams the node does not acknowledge: a third Open waits.
		for range 2 {
			if _, err := p.sess.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		open := result(t, func() error { _, err := p.sess.Open(context.Background()); return err })
		ctx, cancel := context.WithCancel(context.Background())
		cancelled := result(t, func() error { _, err := p.sess.Open(ctx); return err })
		time.Sleep(5 * time.Millisecond)
		cancel()
		if err := cancelled(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Open with its context cancelled: %v", err)
		}
		// Cancelled before, with room: no stream either.
		p2 := newPair(t, "pipe", nodeConfig(), managerConfig())
		for range 20 {
			if _, err := p2.sess.Open(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Open with a cancelled context: %v", err)
			}
		}
		p.node.Close()
		if err := read(); err == nil {
			t.Fatal("Read returned no error")
		}
		if err := write(); err == nil {
			t.Fatal("Write returned no error")
		}
		if err := open(); !errors.Is(err, ErrSessionShutdown) {
			t.Fatalf("Open: %v", err)
		}
		if err := p.waitRun(); err == nil {
			t.Fatal("Run returned no error")
		}
		if _, err := p.sess.Open(context.Background()); !errors.Is(err, ErrSessionShutdown) {
			t.Fatalf("Open after the end: %v", err)
		}
		if k := p.sess.NumStreams(); k != 0 {
			t.Fatalf("%d streams left", k)
		}

		// Close ends the node's session.
		p = newPair(t, kind, nodeConfig(), managerConfig())
		m, n := p.open()
		p.sess.Close()
		if err := p.waitRun(); !errors.Is(err, ErrSessionShutdown) {
			t.Fatalf("Run after Close: %v", err)
		}
		select {
		case <-p.node.CloseChan():
		case <-time.After(hung):
			t.Fatal("the node's session did not end")
		}
		if _, err := n.Read(make([]byte, 1)); err == nil {
			t.Fatal("node's Read returned no error")
		}
		if _, err := m.Write([]byte("x")); err == nil {
			t.Fatal("Write after Close succeeded")
		}
	})
}

// TestAcceptBacklog: streams the node opens beyond AcceptBacklog, while
// those before wait to be accepted, are reset; those accepted work.
func TestAcceptBacklog(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		cfg := managerConfig()
		cfg.AcceptBacklog = 3
		p := newPair(t, kind, nodeConfig(), cfg)
		var ns []*yamux.Stream
		for range 6 {
			n, err := p.node.OpenStream()
			if err != nil {
				t.Fatal(err)
			}
			ns = append(ns, n)
		}
		var ms []*Stream
		for range 3 {
			ms = append(ms, p.accept())
		}
		for _, n := range ns[3:] {
			if _, err := n.Read(make([]byte, 1)); !errors.Is(err, yamux.ErrConnectionReset) {
				t.Fatalf("node's Read of a stream beyond the backlog: %v", err)
			}
		}
		if !notYet(p.incoming) {
			t.Fatal("a stream beyond the backlog was handed on")
		}
		for i, m := range ms {
			if err := m.Accept(); err != nil {
				t.Fatal(err)
			}
			ns[i].Write([]byte("hello"))
			ns[i].Close()
			if got := string(readAll(t, m)); got != "hello" {
				t.Fatalf("read %q", got)
			}
			m.Close()
		}
		// Accepted, they make room.
		m, n := p.nodeOpen()
		m.Close()
		n.Close()
		p.noLeak()
	})
}

// TestGoAway: once the node goes away, Open fails; streams keep working.
func TestGoAway(t *testing.T) {
	p := newPair(t, "pipe", nodeConfig(), managerConfig())
	m, n := p.open()
	if err := p.node.GoAway(); err != nil {
		t.Fatal(err)
	}
	// The ping's answer comes after the GoAway was read.
	if _, err := p.node.Ping(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.sess.Open(context.Background()); !errors.Is(err, ErrRemoteGoAway) {
		t.Fatalf("Open after GoAway: %v", err)
	}
	n.Write([]byte("on"))
	n.Close()
	if got := string(readAll(t, m)); got != "on" {
		t.Fatalf("read %q", got)
	}
}

// raw is a peer that speaks the wire protocol frame by frame.
type raw struct {
	t    testing.TB
	c    net.Conn
	sess *Session
	in   chan *Stream
	run  func() error
}

func newRaw(t testing.TB, cfg Config) *raw {
	t.Helper()
	a, b := net.Pipe()
	r := &raw{t: t, c: b, sess: Client(a, cfg), in: make(chan *Stream, 64)}
	r.run = result(t, func() error {
		return r.sess.Run(func(st *Stream) {
			select {
			case r.in <- st:
			default:
				st.Reset()
			}
		})
	})
	t.Cleanup(func() { r.sess.Close(); b.Close() })
	return r
}

func frame(typ uint8, flags uint16, id, length uint32, data []byte) []byte {
	b := make([]byte, headerSize, headerSize+len(data))
	b[1] = typ
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint32(b[4:], id)
	binary.BigEndian.PutUint32(b[8:], length)
	return append(b, data...)
}

func (r *raw) send(typ uint8, flags uint16, id, length uint32, data []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(hung))
	if _, err := r.c.Write(frame(typ, flags, id, length, data)); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

type rawFrame struct {
	typ    uint8
	flags  uint16
	id     uint32
	length uint32
	data   []byte
}

func (r *raw) recv() (rawFrame, error) {
	r.c.SetReadDeadline(time.Now().Add(hung))
	var h [headerSize]byte
	if _, err := io.ReadFull(r.c, h[:]); err != nil {
		return rawFrame{}, err
	}
	f := rawFrame{typ: h[1], flags: binary.BigEndian.Uint16(h[2:]), id: binary.BigEndian.Uint32(h[4:]), length: binary.BigEndian.Uint32(h[8:])}
	if h[0] != 0 {
		r.t.Fatalf("frame of version %d", h[0])
	}
	if f.typ == typeData {
		f.data = make([]byte, f.length)
		if _, err := io.ReadFull(r.c, f.data); err != nil {
			return f, err
		}
	}
	return f, nil
}

func (r *raw) mustRecv() rawFrame {
	r.t.Helper()
	f, err := r.recv()
	if err != nil {
		r.t.Fatalf("raw read: %v", err)
	}
	return f
}

// drain reads frames to the end, in the background.
func (r *raw) drain() func() []rawFrame {
	ch := make(chan []rawFrame, 1)
	go func() {
		var fs []rawFrame
		for {
			f, err := r.recv()
			if err != nil {
				ch <- fs
				return
			}
			fs = append(fs, f)
		}
	}()
	return func() []rawFrame { return <-ch }
}

// TestProtocolErrors: a peer that breaks the protocol ends the session
// with ErrProtocol (telling it so where the frame is understood).
func TestProtocolErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		frames [][]byte
		goAway bool
	}{
		{"version", [][]byte{{1, typePing, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}}, false},
		{"type", [][]byte{frame(7, 0, 0, 0, nil)}, false},
		{"beyond window", [][]byte{
			frame(typeWindowUpdate, flagSYN, 2, 0, nil),
			frame(typeData, 0, 2, initialWindow+1, make([]byte, initialWindow+1)),
		}, true},
		{"beyond window in parts", [][]byte{
			frame(typeWindowUpdate, flagSYN, 2, 0, nil),
			frame(typeData, 0, 2, initialWindow, make([]byte, initialWindow)),
			frame(typeData, 0, 2, 1, []byte{1}),
		}, true},
		{"opened twice", [][]byte{
			frame(typeWindowUpdate, flagSYN, 2, 0, nil),
			frame(typeWindowUpdate, flagSYN, 2, 0, nil),
		}, true},
		{"odd stream ID", [][]byte{frame(typeWindowUpdate, flagSYN, 1, 0, nil)}, true},
		{"stream 0", [][]byte{frame(typeWindowUpdate, flagSYN, 0, 0, nil)}, true},
		{"peer's protocol error", [][]byte{frame(typeGoAway, 0, 0, goAwayProtoErr, nil)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRaw(t, managerConfig())
			frames := r.drain()
			for _, f := range c.frames {
				r.c.Write(f) // may fail once the session ended
			}
			if err := r.run(); !errors.Is(err, ErrProtocol) {
				t.Fatalf("Run: %v", err)
			}
			r.c.Close()
			sawGoAway := false
			for _, f := range frames() {
				if f.typ == typeGoAway && f.length == goAwayProtoErr {
					sawGoAway = true
				}
			}
			if sawGoAway != c.goAway {
				t.Fatalf("GoAway(protocol error) sent: %v, want %v", sawGoAway, c.goAway)
			}
		})
	}
}

// TestRawReset: a blocked Read and Write of a stream the peer resets
// fail with ErrConnectionReset; data for a stream that is gone is skipped.
func TestRawReset(t *testing.T) {
	r := newRaw(t, managerConfig())
	r.send(typeWindowUpdate, flagSYN, 2, 0, nil)
	st := <-r.in
	accept := result(t, st.Accept) // the pipe has no buffer: read as it writes
	if f := r.mustRecv(); f.typ != typeWindowUpdate || f.flags != flagACK || f.id != 2 || f.length != 1<<20-initialWindow {
		t.Fatalf("answer to SYN: %+v", f)
	}
	if err := accept(); err != nil {
		t.Fatal(err)
	}
	pong := make(chan struct{})
	go func() {
		for {
			f, err := r.recv()
			if err != nil {
				return
			}
			if f.typ == typePing && f.flags == flagACK && f.length == 77 {
				close(pong)
			}
		}
	}()
	read := result(t, func() error { _, err := st.Read(make([]byte, 1)); return err })
	write := result(t, func() error {
		for {
			if _, err := st.Write(make([]byte, 64<<10)); err != nil {
				return err
			}
		}
	})
	time.Sleep(5 * time.Millisecond)
	r.send(typeWindowUpdate, flagRST, 2, 0, nil)
	if err := read(); !errors.Is(err, ErrConnectionReset) {
		t.Fatalf("Read: %v", err)
	}
	if err := write(); !errors.Is(err, ErrConnectionReset) {
		t.Fatalf("Write: %v", err)
	}
	// Data still in flight for it is skipped; the session goes on.
	r.send(typeData, 0, 2, 5, []byte("stale"))
	r.send(typePing, flagSYN, 0, 77, nil)
	select {
	case <-pong:
	case <-time.After(hung):
		t.Fatal("the ping after stale data was not answered")
	}
	if k := r.sess.NumStreams(); k != 0 {
		t.Fatalf("%d streams left", k)
	}
}

// TestNoDataAfterFIN: a Close racing a Write never puts data on the wire
// after the stream's FIN (yamux would take it for a new message).
func TestNoDataAfterFIN(t *testing.T) {
	r := newRaw(t, managerConfig())
	frames := r.drain()
	var streams []*Stream
	for range 50 {
		st, err := r.sess.Open(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// Plenty of window: a Write is never waiting for it.
		r.send(typeWindowUpdate, flagACK, st.ID(), 64<<20, nil)
		streams = append(streams, st)
	}
	var wg sync.WaitGroup
	for _, st := range streams {
		wg.Go(func() {
			for {
				if _, err := st.Write(make([]byte, 1000)); err != nil {
					return
				}
			}
		})
		wg.Go(func() {
			time.Sleep(time.Duration(mrand.IntN(1000)) * time.Microsecond)
			st.Close()
		})
	}
	wg.Wait()
	r.sess.Close()
	finned := map[uint32]bool{}
	for _, f := range frames() {
		if f.typ == typeData && finned[f.id] {
			t.Fatalf("data frame on stream %d after its FIN", f.id)
		}
		if f.flags&flagFIN != 0 {
			if finned[f.id] {
				t.Fatalf("stream %d: a second FIN", f.id)
			}
			finned[f.id] = true
		}
	}
}

// TestAcceptAfterReset: a stream the peer reset before it was accepted
// cannot be accepted, and leaves room in the backlog.
func TestAcceptAfterReset(t *testing.T) {
	cfg := managerConfig()
	cfg.AcceptBacklog = 1
	r := newRaw(t, cfg)
	frames := r.drain()
	r.send(typeWindowUpdate, flagSYN, 2, 0, nil)
	st := <-r.in
	r.send(typeWindowUpdate, flagRST, 2, 0, nil)
	r.send(typeWindowUpdate, flagSYN, 4, 0, nil) // room again: not refused
	st4 := <-r.in
	if err := st.Accept(); !errors.Is(err, ErrConnectionReset) {
		t.Fatalf("Accept of a reset stream: %v", err)
	}
	if err := st4.Accept(); err != nil {
		t.Fatal(err)
	}
	r.sess.Close()
	for _, f := range frames() {
		if f.id == 2 {
			t.Fatalf("frame on the reset stream: %+v", f)
		}
	}
}

// fuzzSeeds are the wire's frames, well and badly formed.
func fuzzSeeds() [][]byte {
	cat := func(fs ...[]byte) []byte { return bytes.Join(fs, nil) }
	return [][]byte{
		nil,
		frame(typePing, flagSYN, 0, 1, nil),
		cat(frame(typeWindowUpdate, flagSYN, 2, 1<<20, nil), frame(typeData, 0, 2, 5, []byte("hello")),
			frame(typeWindowUpdate, flagFIN, 2, 0, nil)),
		cat(frame(typeWindowUpdate, flagSYN, 2, 0, nil), frame(typeData, flagFIN, 2, 3, []byte("abc")),
			frame(typeWindowUpdate, flagRST, 2, 0, nil), frame(typeData, 0, 2, 3, []byte("xyz"))),
		cat(frame(typeWindowUpdate, flagACK, 1, 1<<20, nil), frame(typeData, 0, 1, 2, []byte("hi")),
			frame(typeWindowUpdate, flagFIN, 1, 0, nil)),
		cat(frame(typeWindowUpdate, flagRST, 1, 0, nil), frame(typeGoAway, 0, 0, goAwayNormal, nil)),
		cat(frame(typeData, flagSYN, 4, 4, []byte("data")), frame(typeData, flagSYN, 6, 1, []byte("x"))),
		frame(typeData, 0, 8, math32, nil),
		frame(typeGoAway, 0, 0, goAwayProtoErr, nil),
		frame(9, 0, 0, 0, nil),
		{1, 0, 0, 0},
	}
}

const math32 = 1<<32 - 1

// FuzzReadLoop feeds arbitrary bytes to a session as its peer's: it must
// end (when they do) without a panic, and with every call on its streams
// returning.
func FuzzReadLoop(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(fuzzOne)
}

func fuzzOne(t *testing.T, in []byte) {
	a, b := net.Pipe()
	sess := Client(a, Config{AcceptBacklog: 2, WriteTimeout: hung})
	var wg sync.WaitGroup
	talk := func(st *Stream) {
		st.Write([]byte("answer"))
		io.Copy(io.Discard, st)
		st.CloseWrite()
		st.Close()
	}
	use := func(st *Stream) { wg.Go(func() { talk(st) }) }
	// Stream 1: the manager's own, which the input may acknowledge.
	wg.Go(func() {
		if st, err := sess.Open(context.Background()); err == nil {
			talk(st)
		}
	})
	run := result(t, func() error {
		return sess.Run(func(st *Stream) {
			if st.ID()%4 == 0 {
				st.Accept()
			}
			use(st) // even unaccepted: it ends with the session
		})
	})
	go io.Copy(io.Discard, b)
	b.Write(in)
	b.Close()
	if err := run(); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a write was stuck: %v", err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(hung):
		t.Fatal("a stream's call did not return after the session ended")
	}
}

// TestReset: the manager's Reset fails the node's Read and Write at once.
func TestReset(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		p := newPair(t, kind, nodeConfig(), managerConfig())
		m, n := p.open()
		read := result(t, func() error { _, err := n.Read(make([]byte, 1)); return err })
		time.Sleep(5 * time.Millisecond)
		m.Reset()
		if err := read(); !errors.Is(err, yamux.ErrConnectionReset) {
			t.Fatalf("node's Read: %v", err)
		}
		if _, err := n.Write([]byte("x")); !errors.Is(err, yamux.ErrConnectionReset) {
			t.Fatalf("node's Write: %v", err)
		}
		if _, err := m.Read(make([]byte, 1)); !errors.Is(err, ErrConnectionReset) {
			t.Fatalf("Read: %v", err)
		}
		if _, err := m.Write([]byte("x")); !errors.Is(err, ErrConnectionReset) {
			t.Fatalf("Write: %v", err)
		}
		m.Close()
		p.noLeak()
	})
}

// buffered is what a stream holds unread.
func buffered(st *Stream) (uint32, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.buffered, st.chunks != nil
}

// TestFlowControl: the node can send no more than the window the
// manager gave (the initial one until it accepts a stream), and a stream
// read to the end keeps no buffer.
func TestFlowControl(t *testing.T) {
	p := newPair(t, "pipe", nodeConfig(), managerConfig())
	n, err := p.node.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	m := p.accept()
	want := bytes.Repeat([]byte("flow"), 1<<20) // 4 MiB
	wrote := result(t, func() error {
		if _, err := n.Write(want); err != nil {
			return err
		}
		return n.Close()
	})
	eventually(t, "the initial window filled", func() bool { b, _ := buffered(m); return b == initialWindow })
	time.Sleep(10 * time.Millisecond) // no more comes
	if b, _ := buffered(m); b != initialWindow {
		t.Fatalf("%d bytes buffered before Accept, window %d", b, initialWindow)
	}
	if err := m.Accept(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the whole window filled", func() bool { b, _ := buffered(m); return b == 1<<20 })
	time.Sleep(10 * time.Millisecond)
	if b, _ := buffered(m); b != 1<<20 {
		t.Fatalf("%d bytes buffered, window %d", b, 1<<20)
	}
	if got := readAll(t, m); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d", len(got), len(want))
	}
	if err := wrote(); err != nil {
		t.Fatal(err)
	}
	if b, kept := buffered(m); b != 0 || kept {
		t.Fatalf("read to the end, the stream keeps %d bytes (buffer kept: %v)", b, kept)
	}
	m.Close()
	p.noLeak()
}

// streamListener is a net.Listener of the streams the node opens.
type streamListener struct {
	p    *pair
	done chan struct{}
	once sync.Once
}

func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case st := <-l.p.incoming:
		if err := st.Accept(); err != nil {
			st.Close()
			return l.Accept()
		}
		return st, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *streamListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *streamListener) Addr() net.Addr { return l.p.sess.Addr() }

// TestHTTP: net/http both ways, as the manager uses streams: requests to
// the node's server over streams the manager opens (its engine), and the
// node's requests to a server of the manager's (its calls); keep-alive
// streams are reused, and none is left once idle ones are closed.
func TestHTTP(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		p := newPair(t, kind, nodeConfig(), managerConfig())
		echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("X-Len", strconv.Itoa(len(b)))
			w.Write(b)
		})
		nodeSrv := &http.Server{Handler: echo, ErrorLog: log.New(io.Discard, "", 0)}
		go nodeSrv.Serve(p.node)
		defer nodeSrv.Close()
		ln := &streamListener{p: p, done: make(chan struct{})}
		mgrSrv := &http.Server{Handler: echo, ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: hung}
		go mgrSrv.Serve(ln)
		defer mgrSrv.Close()

		toNode := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return p.sess.Open(ctx)
		}}
		toMgr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return p.node.OpenStream()
		}}
		call := func(tr *http.Transport, i int) error {
			body := bytes.Repeat([]byte{byte(i)}, mrand.IntN(300<<10))
			ctx, cancel := context.WithTimeout(context.Background(), hung)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://peer/echo", bytes.NewReader(body))
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, body) || resp.Header.Get("X-Len") != strconv.Itoa(len(body)) {
				return fmt.Errorf("echo of %d bytes: %d", len(body), len(got))
			}
			return nil
		}
		var wg sync.WaitGroup
		for i := range 40 {
			tr := toNode
			if i%2 == 1 {
				tr = toMgr
			}
			wg.Go(func() {
				if err := call(tr, i); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		toNode.CloseIdleConnections()
		toMgr.CloseIdleConnections()
		p.noLeak()
	})
}

// TestManyStreams: far more streams than AcceptBacklog, opened from both
// sides while the other accepts: each acknowledgement lets another open.
func TestManyStreams(t *testing.T) {
	cfg := managerConfig()
	cfg.AcceptBacklog = 4
	ycfg := nodeConfig()
	ycfg.AcceptBacklog = 4
	p := newPair(t, "pipe", ycfg, cfg)
	const k = 200
	var wg sync.WaitGroup
	wg.Go(func() { // the node answers each of the manager's streams
		for range k {
			n, err := p.node.AcceptStream()
			if err != nil {
				t.Error(err)
				return
			}
			wg.Go(func() {
				io.Copy(n, n)
				n.Close()
			})
		}
	})
	wg.Go(func() { // the manager answers each of the node's
		for range k {
			m := p.accept()
			if err := m.Accept(); err != nil {
				t.Error(err)
				return
			}
			wg.Go(func() {
				io.Copy(m, m)
				m.Close()
			})
		}
	})
	talk := func(c interface {
		io.ReadWriter
		CloseWrite() error
	}, i int) {
		msg := fmt.Sprintf("stream %d", i)
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Error(err)
			return
		}
		c.CloseWrite()
		if got, err := io.ReadAll(c); err != nil || string(got) != msg {
			t.Errorf("read %q, %v", got, err)
		}
	}
	for i := range k {
		wg.Go(func() {
			m, err := p.sess.Open(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			talk(m, i)
			m.Close()
		})
		wg.Go(func() {
			n, err := p.node.OpenStream()
			if err != nil {
				t.Error(err)
				return
			}
			talk(yamuxHalf{n}, i)
		})
	}
	wg.Wait()
	p.noLeak()
}

// yamuxHalf is a yamux stream whose Close (a half-close) is CloseWrite.
type yamuxHalf struct{ *yamux.Stream }

func (s yamuxHalf) CloseWrite() error { return s.Stream.Close() }

// scriptConn reads a fixed script, then EOF; what is written is dropped
// and Close does not cut the script short.
type scriptConn struct {
	net.Conn // nil: only the methods below are used
	r        io.Reader
}

func (c *scriptConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *scriptConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// TestNoStreamAfterEnd: a stream the peer opens once the session has
// ended (a frame read before the end, handled after it) is not handed on,
// and none that was handed on waits for ever.
func TestNoStreamAfterEnd(t *testing.T) {
	script := bytes.Join([][]byte{
		frame(typeWindowUpdate, flagSYN, 2, 0, nil),
		frame(typeWindowUpdate, flagSYN, 4, 0, nil),
		frame(typeData, 0, 4, 3, []byte("abc")),
	}, nil)
	sess := Client(&scriptConn{r: bytes.NewReader(script)}, managerConfig())
	var late []*Stream
	run := result(t, func() error {
		return sess.Run(func(st *Stream) {
			if st.ID() == 2 {
				sess.Close() // the session ends while Run handles a frame
				return
			}
			late = append(late, st)
		})
	})
	run()
	for _, st := range late {
		read := result(t, func() error {
			_, err := io.ReadAll(st)
			return err
		})
		if err := read(); err != nil {
			t.Fatalf("Read of stream %d: %v", st.ID(), err)
		}
		t.Errorf("stream %d handed on after the session ended", st.ID())
	}
}

// TestCloseReturnsWindow: a node blocked on a full window (the manager
// read nothing: a client gone while `docker logs -f` ran) learns of the
// manager's Close at once, by a reset, not CloseTimeout later.
func TestCloseReturnsWindow(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		cfg := managerConfig()
		cfg.CloseTimeout = time.Hour // only the returned window can unblock the node
		p := newPair(t, kind, nodeConfig(), cfg)
		m, n := p.open()
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		wrote := make(chan int64, 1)
		done := result(t, func() error {
			var total int64
			defer func() { wrote <- total }()
			for {
				k, err := n.Write(chunk)
				total += int64(k)
				if err != nil {
					return err
				}
			}
		})
		// The node fills the window the manager gave, and waits.
		eventually(t, "the manager's window full", func() bool {
			b, _ := buffered(m)
			return b >= cfg.MaxStreamWindow
		})
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := done(); !errors.Is(err, yamux.ErrConnectionReset) {
			t.Fatalf("node's Write after the manager's Close: %v", err)
		}
		if got := <-wrote; got < int64(cfg.MaxStreamWindow) {
			t.Fatalf("node wrote %d bytes, want at least the window (%d)", got, cfg.MaxStreamWindow)
		}
		p.noLeak()
	})
}

// TestSmallFramesCoalesce: data unread that came in many small frames
// is kept in chunks of up to smallFrame, not one allocation and slice
// header per frame (a node sending one byte a frame would make the
// manager hold ~27 times what it sent).
func TestSmallFramesCoalesce(t *testing.T) {
	r := newRaw(t, managerConfig())
	r.send(typeWindowUpdate, flagSYN, 2, 0, nil)
	var st *Stream
	select {
	case st = <-r.in:
	case <-time.After(hung):
		t.Fatal("no stream")
	}
	r.drain() // the manager's frames (its ACK), read and dropped
	if err := st.Accept(); err != nil {
		t.Fatal(err)
	}
	const n = 16 << 10
	for i := range n {
		r.send(typeData, 0, 2, 1, []byte{byte(i)})
	}
	eventually(t, "all frames in", func() bool { b, _ := buffered(st); return b == n })
	st.mu.Lock()
	chunks, held := len(st.chunks), 0
	for _, c := range st.chunks {
		held += cap(c)
	}
	st.mu.Unlock()
	if max := n/smallFrame + 1; chunks > max {
		t.Fatalf("%d bytes in 1-byte frames kept in %d chunks, want at most %d", n, chunks, max)
	}
	if held > 2*n {
		t.Fatalf("%d bytes unread hold %d bytes of buffers, want at most %d", n, held, 2*n)
	}
	got := make([]byte, n)
	if _, err := io.ReadFull(st, got); err != nil {
		t.Fatal(err)
	}
	for i, b := range got {
		if b != byte(i) {
			t.Fatalf("byte %d is %d, want %d", i, b, byte(i))
		}
	}
}

// TestCloseWriteStopsWrite: a Write waiting for window on one goroutine
// ends when another half-closes the stream, and no data follows the FIN.
func TestCloseWriteStopsWrite(t *testing.T) {
	forEachTransport(t, func(t *testing.T, kind string) {
		p := newPair(t, kind, nodeConfig(), managerConfig())
		m, n := p.open()
		big := bytes.Repeat([]byte("y"), 2<<20) // past the node's window: the node reads nothing yet
		done := result(t, func() error { _, err := m.Write(big); return err })
		eventually(t, "the node's window full", func() bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			return m.sendWindow == 0
		})
		if err := m.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if err := done(); !errors.Is(err, ErrStreamClosed) {
			t.Fatalf("Write waiting when CloseWrite came: %v", err)
		}
		got := readAll(t, n) // up to the FIN, then EOF
		if len(got) == 0 || len(got) >= len(big) || !bytes.Equal(got, big[:len(got)]) {
			t.Fatalf("node read %d bytes before EOF, want a prefix of what was written", len(got))
		}
	})
}
