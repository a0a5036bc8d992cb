package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// pinger is an engine's health-check connection, kept outside the
// transport: a check is then one write and one read by the engine's own
// loop, where through the transport it woke the connection's two
// goroutines as well (and they stayed, two more goroutines per engine,
// while the connection idled between checks). Between checks the
// connection stays open only when the pool's descriptors allow it.
//
// The request is written from bytes built once and the answer is parsed
// by hand (status line, Content-Length, Connection, Transfer-Encoding) in
// a buffer borrowed for the check: at 10,000 engines a thousand checks a
// second through net/http's ReadResponse allocated a header map, strings
// and a response each, which the GC of a gigabyte heap then paid for.
type pinger struct {
	mu      sync.Mutex
	conn    net.Conn
	req     []byte  // GET path, built on first use
	path    string  // the path req asks for
	budget  *budget // nil: always kept
	counted bool    // conn is one of the budget's kept ones
}

// pingBufs lends the read buffers of health checks: a check holds one only
// while it reads, so 10,000 engines do not keep 10,000 buffers.
var pingBufs = sync.Pool{New: func() any { b := make([]byte, pingBufSize); return &b }}

// pingBufSize holds any engine's /_ping answer (dockerd's is about 300
// bytes: a dozen headers and "OK"); a longer one fails the check.
const pingBufSize = 4 << 10

// errPingAnswer is a /_ping answer that is not HTTP/1.x as engines send it.
var errPingAnswer = errors.New("engine: malformed /_ping answer")

// ping sends GET path and returns the answer's status, waiting at most
// timeout (and not past ctx); the connection stays open for the next check
// if b (nil: no bound) allows it.
func (c *Client) ping(ctx context.Context, path string, timeout time.Duration, b *budget) (int, error) {
	p := &c.pinger
	p.mu.Lock()
	defer p.mu.Unlock()
	p.budget = b
	if p.req == nil || p.path != path {
		p.req, p.path = fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: shoal\r\n\r\n", path, c.host), path
	}
	start := time.Now()
	deadline := start.Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	reused := p.conn != nil
	status, err := c.pingOnce(ctx, deadline)
	if err != nil && reused && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		// The engine may have closed the idle connection meanwhile: one
		// more try on a new one (net/http does the same for idempotent calls).
		status, err = c.pingOnce(ctx, deadline)
	}
	if obs := c.observe; obs != nil {
		obs(time.Since(start), status, err)
	}
	return status, err
}

func (c *Client) pingOnce(ctx context.Context, deadline time.Time) (status int, err error) {
	p := &c.pinger
	if p.conn == nil {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		conn, err := c.Dial(dctx)
		cancel()
		if err != nil {
			return 0, err
		}
		p.conn = conn
	}
	conn := p.conn
	keep := false
	defer func() {
		if err != nil || !keep {
			p.close()
		} else if p.counted = p.budget.keep(p.counted); !p.counted {
			p.close()
		}
	}()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(p.req); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, err
	}
	bp := pingBufs.Get().(*[]byte)
	defer pingBufs.Put(bp)
	status, keep, err = readPingAnswer(conn, *bp)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// As a context's timeout says it: callers tell a silent
			// engine from a failing one so (manager/silence.go).
			return 0, context.DeadlineExceeded
		}
		return 0, err
	}
	if keep {
		// No deadline between checks: one left set would fire its timer
		// (and wake the process) two seconds later for nothing.
		_ = conn.SetDeadline(time.Time{})
	}
	return status, nil
}

// readPingAnswer reads one HTTP/1.x answer from r into buf and returns its
// status and whether the connection may carry the next request: the body
// had a Content-Length (or a status without one) and was read whole,
// nothing came after it, and the engine did not ask to close. Any other
// framing (chunked, to the end of the connection) still gives the status,
// and the connection is not kept: engines answer /_ping with a length.
func readPingAnswer(r io.Reader, buf []byte) (status int, keep bool, err error) {
	n, end := 0, -1
	for {
		if n == len(buf) {
			return 0, false, errPingAnswer
		}
		m, err := r.Read(buf[n:])
		n += m
		if end = bytes.Index(buf[:n], crlf2); end >= 0 {
			break
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, false, err
		}
	}
	var h pingHead
	if err := h.parse(buf[:end+2]); err != nil {
		return 0, false, err
	}
	got := n - (end + 4) // body bytes read so far
	switch {
	case h.status == 204 || h.status == 304:
		return h.status, !h.close && got == 0, nil
	case h.status/100 == 1 || h.chunked || h.length < 0:
		return h.status, false, nil
	}
	for got < h.length && n < len(buf) {
		m, err := r.Read(buf[n:min(len(buf), end+4+h.length)])
		n, got = n+m, got+m
		if err != nil {
			break
		}
	}
	return h.status, !h.close && got == h.length, nil
}

var (
	crlf  = []byte("\r\n")
	crlf2 = []byte("\r\n\r\n")
)

// pingHead is what a health check needs of an answer's head.
type pingHead struct {
	status  int
	length  int // Content-Length, -1 when absent
	close   bool
	chunked bool
}

// parse reads the status line and the headers of head (each line ending
// in CRLF), without allocating.
func (h *pingHead) parse(head []byte) error {
	h.length = -1
	line, rest, _ := bytes.Cut(head, crlf)
	// HTTP/1.x NNN reason
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return errPingAnswer
	}
	var ok bool
	if h.status, ok = digits(line[9:12]); !ok {
		return errPingAnswer
	}
	h.close = line[7] == '0' // HTTP/1.0 closes unless asked otherwise; not worth following
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, crlf)
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return errPingAnswer
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			v, ok := digits(value)
			if !ok || h.length >= 0 && h.length != v {
				return errPingAnswer
			}
			h.length = v
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				h.close = true
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			h.chunked = !bytes.EqualFold(value, []byte("identity"))
		}
	}
	return nil
}

// digits parses 1 to 9 decimal digits.
func digits(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	v := 0
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		v = v*10 + int(d-'0')
	}
	return v, true
}

func (p *pinger) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
	if p.counted {
		p.counted = false
		p.budget.release()
	}
}

// closePing closes the health-check connection (the engine left the pool).
func (c *Client) closePing() {
	c.pinger.mu.Lock()
	defer c.pinger.mu.Unlock()
	c.pinger.close()
}
