package run

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/dockerapi"
)

// handshakeTimeout bounds a client's TLS handshake: a client that opens a
// connection and sends nothing holds a goroutine no longer than this.
const handshakeTimeout = 10 * time.Second

// handshakeListener completes each connection's TLS handshake before
// handing it to the HTTP server, each in its own goroutine with a
// deadline, so that a refused handshake is logged here with its peer (the
// HTTP server would log it only as a line of text) and a slow one blocks
// no one.
type handshakeListener struct {
	inner   net.Listener
	conf    *tls.Config
	refused *refusalLog
	timeout time.Duration

	conns chan net.Conn
	errc  chan error
	ctx   context.Context // ends on Close: pending handshakes give up
	stop  context.CancelFunc
	once  sync.Once
}

func newHandshakeListener(inner net.Listener, conf *tls.Config, refused *refusalLog, timeout time.Duration) *handshakeListener {
	ctx, stop := context.WithCancel(context.Background())
	l := &handshakeListener{inner: inner, conf: conf, refused: refused, timeout: timeout,
		conns: make(chan net.Conn), errc: make(chan error), ctx: ctx, stop: stop}
	go l.acceptLoop()
	return l
}

// acceptLoop accepts until the listener is closed. An accept error goes to
// the HTTP server, which backs off on temporary ones and otherwise stops
// (and closes this listener).
func (l *handshakeListener) acceptLoop() {
	for {
		raw, err := l.inner.Accept()
		if err != nil {
			select {
			case l.errc <- err:
			case <-l.ctx.Done():
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go l.handshake(raw)
	}
}

func (l *handshakeListener) handshake(raw net.Conn) {
	tc := tls.Server(raw, l.conf)
	ctx, cancel := context.WithTimeout(l.ctx, l.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		answerPlainHTTP(err)
		l.refused.refuse(raw.RemoteAddr(), l.inner.Addr(), err)
		raw.Close()
		return
	}
	select {
	case l.conns <- tc:
	case <-l.ctx.Done():
		tc.Close()
	}
}

// answerPlainHTTP tells a client that spoke plain HTTP to a TLS port what
// it did, in the words of Go's (and so dockerd's) server, which the docker
// CLI shows.
func answerPlainHTTP(err error) {
	var rh tls.RecordHeaderError
	if !errors.As(err, &rh) || rh.Conn == nil || !looksLikeHTTP(rh.RecordHeader) {
		return
	}
	_ = rh.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(rh.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
}

// looksLikeHTTP says whether the first five bytes of a TLS record are
// those of an HTTP request line.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH":
		return true
	}
	return false
}

func (l *handshakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

func (l *handshakeListener) Close() error {
	err := l.inner.Close()
	l.once.Do(l.stop)
	return err
}

func (l *handshakeListener) Addr() net.Addr { return l.inner.Addr() }

// refusalLog warns of refused handshakes at most once per period, with the
// number refused since the last warning: a flood of bad clients must not
// flood the log, and an operator still learns who knocked.
type refusalLog struct {
	log   *slog.Logger
	notes *dockerapi.Refusals
}

func newRefusalLog(log *slog.Logger) *refusalLog {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &refusalLog{log: log, notes: dockerapi.NewRefusals(10 * time.Second)}
}

func (r *refusalLog) refuse(peer, addr net.Addr, err error) {
	r.log.Debug("API TLS handshake refused", "client", peer.String(), "reason", err.Error())
	n, due := r.notes.Note()
	if !due {
		return
	}
	r.log.Warn("API TLS handshake refused", "client", peer.String(), "listener", addr.String(), "reason", err.Error(), "refused", n)
}
