package engine

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"time"
)

// openStream sends GET path on a connection of its own, outside the
// transport, and returns the answer once its headers arrived (within
// headerWait). A stream never goes back to a pool, and the transport keeps
// two goroutines per connection (its read and write loops): for the event
// stream of every engine that was half of an engine's goroutines. Ending
// ctx or closing the body closes the connection.
func (c *Client) openStream(ctx context.Context, path string, headerWait time.Duration) (*http.Response, error) {
	conn, err := c.Dial(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*http.Response, error) {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, "GET", c.URL(path, nil), nil)
	if err != nil {
		return fail(err)
	}
	req.Host = c.host
	_ = conn.SetDeadline(time.Now().Add(headerWait))
	if err := req.Write(conn); err != nil {
		return fail(err)
	}
	// Events are a few hundred bytes and the JSON decoder above buffers
	// too: a small buffer here (ten thousand streams hold one each).
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1<<10), req)
	if err != nil {
		return fail(err)
	}
	_ = conn.SetDeadline(time.Time{})
	resp.Body = &streamBody{ReadCloser: resp.Body, conn: conn, stop: stop}
	return resp, nil
}

// streamBody closes the stream's connection with its body.
type streamBody struct {
	io.ReadCloser
	conn net.Conn
	stop func() bool
}

func (b *streamBody) Close() error {
	b.stop()
	b.ReadCloser.Close()
	return b.conn.Close()
}
