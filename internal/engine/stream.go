package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// openStream sends GET path on a connection of its own, outside the
// transport, and returns the answer once its headers arrived (within
// headerWait). A stream never goes back to a pool, and the transport keeps
// two goroutines per connection (its read and write loops): for the event
// stream of every engine that was half of an engine's goroutines. Ending
// ctx or closing the stream closes the connection.
func (c *Client) openStream(ctx context.Context, path string, headerWait time.Duration) (*stream, error) {
	conn, err := c.Dial(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*stream, error) {
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
	br := bufio.NewReaderSize(conn, 1<<10)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fail(err)
	}
	_ = conn.SetDeadline(time.Time{})
	st := &stream{Response: resp, conn: conn, stop: stop,
		chunked: slices.Equal(resp.TransferEncoding, []string{"chunked"})}
	st.src = resp.Body
	if resp.StatusCode == http.StatusOK && (st.chunked || resp.ContentLength < 0) {
		// Read here (readEvents), from what came with the headers on.
		st.pending, _ = br.Peek(br.Buffered())
		st.src, resp.Body = conn, http.NoBody
	}
	return st, nil
}

// stream is an answer read on a connection of its own: an error's body
// through net/http, a stream's by readEvents.
type stream struct {
	*http.Response
	conn    net.Conn
	stop    func() bool
	src     io.Reader     // the body: the connection itself, or net/http's reader
	chunked bool          // and src is the connection
	pending []byte        // of the body, read with the headers
	queued  *atomic.Int64 // if set, readEvents counts here the events it read (Lag)
}

func (s *stream) Close() error {
	s.stop()
	s.Body.Close()
	return s.conn.Close()
}

// readEvents sends the stream's events, each as the engine wrote it, until
// the stream or ctx ends; then it sends why on errc.
//
// Its goroutine lives as long as the engine is connected, waiting for the
// next event, and a goroutine keeps the largest stack it ever needed:
// reading through net/http's chunked reader and a JSON decoder it waited
// ten frames deeper than its read and kept an 8 KiB stack. Here it reads
// the connection itself, into a small buffer, and decodes nothing (the
// session does): it waits on Go's smallest stack, 2 KiB (issue 16: ten
// thousand engines).
func readEvents(ctx context.Context, s *stream, out chan<- json.RawMessage, errc chan<- error) {
	// Only what reading needs is kept, not the answer and its request
	// (1–2 KiB an engine).
	src, p, conn, stop, body, queued := s.src, s.pending, s.conn, s.stop, s.Body, s.queued
	defer func() {
		stop()
		body.Close()
		conn.Close()
	}()
	sc := eventScanner{chunked: s.chunked}
	buf := make([]byte, 512)
	for {
		if len(p) == 0 {
			n, err := src.Read(buf)
			if n == 0 {
				errc <- sc.end(err)
				return
			}
			p = buf[:n]
		}
		err := sc.feed(p)
		p = nil
		for _, ev := range sc.events {
			if queued != nil {
				queued.Add(1) // applyEvents takes it off once applied
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
		sc.events = sc.events[:0]
		if err != nil {
			errc <- err
			return
		}
	}
}

// eventScanner cuts a stream's body, as it arrives, into its JSON objects
// (or arrays): the events. With chunked, the body is in HTTP chunks,
// whose extensions and trailers it ignores, as net/http does.
type eventScanner struct {
	chunked bool
	events  []json.RawMessage // completed by the last feed

	left   int    // bytes of the current chunk not yet read
	header []byte // of the next chunk, while it arrives
	crlf   int    // bytes of the CRLF after a chunk still to come

	value             []byte // the event so far
	depth             int
	inString, escaped bool
}

var errChunked = errors.New("event stream: malformed chunked encoding")

// feed scans p, appending the events it completes to s.events. The last
// chunk is io.EOF.
func (s *eventScanner) feed(p []byte) error {
	for len(p) > 0 {
		if !s.chunked {
			return s.scan(p)
		}
		switch {
		case s.crlf > 0:
			if p[0] != "\r\n"[2-s.crlf] {
				return errChunked
			}
			s.crlf--
			p = p[1:]
		case s.left > 0:
			n := min(s.left, len(p))
			if err := s.scan(p[:n]); err != nil {
				return err
			}
			s.left -= n
			p = p[n:]
			if s.left == 0 {
				s.crlf = 2
			}
		default: // a chunk's header
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				if len(s.header)+len(p) > 1<<10 {
					return errChunked
				}
				s.header = append(s.header, p...)
				return nil
			}
			line := append(s.header, p[:i]...)
			s.header, p = s.header[:0], p[i+1:]
			if j := bytes.IndexAny(line, ";\r"); j >= 0 {
				line = line[:j]
			}
			n, err := strconv.ParseUint(string(line), 16, 31)
			if err != nil {
				return errChunked
			}
			if n == 0 {
				if s.value != nil {
					return io.ErrUnexpectedEOF // within an event
				}
				return io.EOF
			}
			s.left = int(n)
		}
	}
	return nil
}

// scan scans bytes of the body proper.
func (s *eventScanner) scan(p []byte) error {
	for i, c := range p {
		if s.value == nil {
			switch c {
			case ' ', '\t', '\r', '\n':
				continue
			case '{', '[':
				s.value = make([]byte, 0, max(512, len(p)-i))
			default:
				return fmt.Errorf("decoding event: %q where an object begins", c)
			}
		}
		s.value = append(s.value, c)
		switch {
		case s.escaped:
			s.escaped = false
		case s.inString:
			s.escaped, s.inString = c == '\\', c != '"'
		case c == '"':
			s.inString = true
		case c == '{' || c == '[':
			s.depth++
		case c == '}' || c == ']':
			if s.depth--; s.depth == 0 {
				s.events = append(s.events, s.value)
				s.value = nil
			}
		}
	}
	return nil
}

// end is why the stream ended when its connection did with err.
func (s *eventScanner) end(err error) error {
	if err == nil || err == io.EOF && (s.value != nil || s.chunked) {
		return io.ErrUnexpectedEOF // within an event, or before the last chunk
	}
	return err
}

// decodeEvent decodes an event of the stream.
func decodeEvent(raw json.RawMessage) (Event, error) {
	ev := Event{Raw: raw}
	if err := json.Unmarshal(raw, &ev.Message); err != nil {
		return Event{}, fmt.Errorf("decoding event: %w", err)
	}
	return ev, nil
}

// aside runs f on a goroutine of its own and waits for it. An engine's
// session loop lives as long as the engine is connected (ten thousand of
// them in a large pool), waiting most of the time: what it does between
// waits (loads, health checks, applying events, logging) takes a deep
// stack, which the goroutine would keep while it waits. Run aside, that
// stack goes when f returns.
func aside(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}
