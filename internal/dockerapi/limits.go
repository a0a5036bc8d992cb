package dockerapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults of Limits. Requests as a whole have no deadline: logs -f,
// attach, events, load and build streams legitimately last hours.
const (
	// DefaultReadHeaderTimeout cuts a client that sends its request
	// headers slowly (slowloris) before it holds a connection for long.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout closes keep-alive connections between requests.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultMaxHeaderBytes is Go's (and so dockerd's) 1 MiB: registry
	// auth headers of a build can be large.
	DefaultMaxHeaderBytes = http.DefaultMaxHeaderBytes
	// DefaultMaxBodyBytes caps the JSON body of a request; a create with
	// thousands of Env entries and labels stays far below it.
	DefaultMaxBodyBytes = maxJSONBody
	// DefaultMaxConnsPerClient caps the connections of one client address:
	// high enough for one host's legitimate fan-in (a CI runner's parallel
	// runs, an upper shoal or a replica holding a stream per client call),
	// low enough that one address cannot take all of DefaultMaxConns.
	DefaultMaxConnsPerClient = 1024
	// DefaultMaxConns caps all API connections; it stays well below the
	// 20,000 open files shoal asks for, since a proxied call holds a
	// connection to an engine too and engines need theirs.
	DefaultMaxConns = 8192
)

// Limits bound what one client can take of the API server, so that a slow
// or abusive client cannot starve others or grow memory without bound.
// A zero connection cap means no cap.
type Limits struct {
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	MaxConnsPerClient int
	MaxConns          int
	// MaxStreamsPerClient and MaxStreams cap the long-lived calls (see
	// StreamLimiter).
	MaxStreamsPerClient int
	MaxStreams          int
}

// DefaultLimits are the limits shoal serves with unless told otherwise.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
		MaxConnsPerClient: DefaultMaxConnsPerClient,
		MaxConns:          DefaultMaxConns,

		MaxStreamsPerClient: DefaultMaxStreamsPerClient,
		MaxStreams:          DefaultMaxStreams,
	}
}

// HTTPServer returns the http.Server that serves h within l. Its own
// errors (bad handshakes, malformed requests) are logged at debug level.
func (l Limits) HTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// Listener wraps ln so that connections beyond the caps of c are refused
// as soon as they are accepted: an HTTP client is answered a 503 with the
// reason, then closed. Wrap the plain listener, below TLS, so a refused
// client costs no handshake.
func (c *ConnLimiter) Listener(ln net.Listener) net.Listener {
	if c == nil {
		return ln
	}
	return &limitListener{Listener: ln, c: c}
}

// ConnLimiter counts the API's open connections, per client address and
// in all, across every listener it wraps.
type ConnLimiter struct {
	perClient, total int
	log              *slog.Logger
	q                *quota
	refused          *Refusals

	answering chan struct{} // one per refused connection being answered
}

// NewConnLimiter returns the limiter of l's connection caps.
func NewConnLimiter(l Limits, log *slog.Logger) *ConnLimiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ConnLimiter{perClient: l.MaxConnsPerClient, total: l.MaxConns, log: log,
		q: newQuota(l.MaxConnsPerClient, l.MaxConns), refused: NewRefusals(10 * time.Second), answering: make(chan struct{}, maxRefusedAnswers)}
}

// clientOf is the address a connection counts against. Unix socket
// clients share no address, and are local users the socket's mode let in:
// they count only against the total.
func clientOf(conn net.Conn) string {
	a, ok := conn.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return ""
	}
	return a.IP.String()
}

// admit counts conn in, or reports why it is refused.
func (c *ConnLimiter) admit(client string) error {
	switch c.q.take(client) {
	case totalFull:
		return fmt.Errorf("too many connections: limit is %d (--max-conns)", c.total)
	case clientFull:
		return fmt.Errorf("too many connections from %s: limit is %d (--max-conns-per-client)", client, c.perClient)
	}
	return nil
}

func (c *ConnLimiter) release(client string) { c.q.give(client) }

// refuse logs a refused connection at warning level, at most once per
// period, with the count refused since: a flood must not flood the log.
func (c *ConnLimiter) refuse(conn net.Conn, why error) {
	if n, due := c.refused.Note(); due {
		c.log.Warn("API connection refused", "client", conn.RemoteAddr().String(), "reason", why.Error(), "refused", n)
	}
}

type limitListener struct {
	net.Listener
	c *ConnLimiter
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		client := clientOf(conn)
		if err := l.c.admit(client); err != nil {
			l.c.refuse(conn, err)
			l.c.answer(conn, err)
			continue
		}
		return &limitConn{Conn: conn, release: func() { l.c.release(client) }}, nil
	}
}

// limitConn gives its place back once, on its first Close; a hijacked
// connection (attach, exec) is closed through it as well.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// drainFactor bounds the oversize body read and discarded before the
// answer: beyond drainFactor times the limit the client gets the answer and
// a reset, as it is then sending far more than any API call needs.
const drainFactor = 4

// errBodyTooLarge is a request body over the server's limit.
type errBodyTooLarge struct{ limit int64 }

func (e errBodyTooLarge) Error() string {
	return fmt.Sprintf("request body too large: limit is %d bytes", e.limit)
}

func (errBodyTooLarge) HTTPStatus() int { return http.StatusBadRequest }

// limitBody refuses a body declared larger than the limit before the
// handler runs, and cuts one that grows past it while read (chunked), so
// no handler or forwarded call reads more than limit bytes.
func (s *Server) limitBody(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p params) error {
		limit := s.MaxBodyBytes
		if limit <= 0 || r.Body == nil || r.Body == http.NoBody {
			return h(w, r, p)
		}
		if r.ContentLength > limit {
			// Read what the client is still sending (up to a bound) so that
			// it reads this answer: closing on unread data resets the
			// connection, and the client would see "connection reset"
			// instead of the message.
			if r.ContentLength <= drainFactor*limit {
				_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, r.ContentLength))
			}
			return errBodyTooLarge{limit}
		}
		r.Body = &limitedBody{rc: r.Body, left: limit, limit: limit}
		return h(w, r, p)
	}
}

// limitedBody reads at most limit bytes of a body and then fails with
// errBodyTooLarge.
type limitedBody struct {
	rc    io.ReadCloser
	left  int64
	limit int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errBodyTooLarge{b.limit}
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.left {
		n = int(b.left)
		b.left = -1
		return n, errBodyTooLarge{b.limit}
	}
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// Answering refused connections: at most maxRefusedAnswers at once, each
// within refusedReadWait to read the request's headers and
// refusedWriteWait to write the answer. A flood of refused connections
// thus costs a bounded number of goroutines for a bounded time; past the
// bound they are closed without a word, as before.
const (
	maxRefusedAnswers = 64
	refusedReadWait   = 500 * time.Millisecond
	refusedWriteWait  = time.Second
	refusedHeadLimit  = 16 << 10
)

// answer closes a refused connection, telling its client why if it can:
// off the accept loop, which must never wait on a client.
func (c *ConnLimiter) answer(conn net.Conn, why error) {
	select {
	case c.answering <- struct{}{}:
	default:
		conn.Close()
		return
	}
	go func() {
		defer func() { <-c.answering }()
		answerRefused(conn, why)
	}()
}

// tlsHandshake is the first byte of a TLS client's first record.
const tlsHandshake = 0x16

// answerRefused answers an HTTP client on a refused connection with a
// minimal 503 and Docker's JSON error, once it has read the request's
// headers (closing on an unread request resets the connection, and the
// client would lose the answer). A TLS client is only closed: the caps
// count below TLS, and an answer in clear would read as garbage to it. A
// client that sends nothing in time is closed too.
func answerRefused(conn net.Conn, why error) {
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(refusedReadWait))
	var head []byte
	buf := make([]byte, 4096)
	for len(head) < refusedHeadLimit && !bytes.Contains(head, []byte("\r\n\r\n")) {
		n, err := conn.Read(buf)
		head = append(head, buf[:n]...)
		if len(head) > 0 && head[0] == tlsHandshake {
			return
		}
		if err != nil {
			break
		}
	}
	if len(head) == 0 {
		return
	}
	_ = conn.SetWriteDeadline(time.Now().Add(refusedWriteWait))
	_, _ = conn.Write(refusedResponse(why))
}

// refusedResponse is the whole HTTP answer to a refused connection.
func refusedResponse(why error) []byte {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{why.Error()})
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n",
		len(body)+1, body)
}
