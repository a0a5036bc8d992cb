package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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
type pinger struct {
	mu      sync.Mutex
	conn    net.Conn
	br      *bufio.Reader
	budget  *budget // nil: always kept
	counted bool    // conn is one of the budget's kept ones
}

// ping sends GET path and returns the answer's status; the connection
// stays open for the next check if b (nil: no bound) allows it.
func (c *Client) ping(ctx context.Context, path string, b *budget) (int, error) {
	p := &c.pinger
	p.mu.Lock()
	defer p.mu.Unlock()
	p.budget = b
	start := time.Now()
	reused := p.conn != nil
	status, err := c.pingOnce(ctx, path)
	if err != nil && reused && ctx.Err() == nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		// The engine may have closed the idle connection meanwhile: one
		// more try on a new one (net/http does the same for idempotent calls).
		status, err = c.pingOnce(ctx, path)
	}
	if obs := c.observe; obs != nil {
		obs(time.Since(start), status, err)
	}
	return status, err
}

func (c *Client) pingOnce(ctx context.Context, path string) (status int, err error) {
	p := &c.pinger
	if p.conn == nil {
		conn, err := c.Dial(ctx)
		if err != nil {
			return 0, err
		}
		p.conn, p.br = conn, bufio.NewReaderSize(conn, 512)
	}
	conn := p.conn
	defer func() {
		if err != nil {
			p.close()
		} else if p.conn != nil {
			if p.counted = p.budget.keep(p.counted); !p.counted {
				p.close()
			}
		}
	}()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: shoal\r\n\r\n", path, c.host); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.Close {
		p.close()
	}
	_ = conn.SetDeadline(time.Time{})
	return resp.StatusCode, nil
}

func (p *pinger) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn, p.br = nil, nil
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
