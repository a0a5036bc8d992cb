package engine

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// dockerdPing is dockerd's answer to GET /_ping (Docker 27), as sent.
const dockerdPing = "HTTP/1.1 200 OK\r\nApi-Version: 1.47\r\nBuilder-Version: 2\r\nCache-Control: no-cache, no-store, must-revalidate\r\n" +
	"Content-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Mon, 30 Nov 2026 21:00:00 GMT\r\nDocker-Experimental: false\r\n" +
	"Ostype: linux\r\nPragma: no-cache\r\nServer: Docker/27.5.1 (linux)\r\n\r\nOK"

// The hand-written reader of /_ping answers gives the status, and keeps
// the connection only when the answer was delimited, read whole and
// nothing else came; what it cannot follow costs a new connection, never
// a wrong status.
func TestReadPingAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		status       int
		keep         bool
		err          bool
		together     bool // only when read at once (bytes after the body are not read for: the next check's answer would not parse, and it retries on a new connection)
	}{
		{name: "dockerd", answer: dockerdPing, status: 200, keep: true},
		{name: "lower-case names", answer: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nOK", status: 200, keep: true},
		{name: "engine closes", answer: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nOK", status: 200},
		{name: "server error", answer: "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail", status: 500, keep: true},
		{name: "no body", answer: "HTTP/1.1 204 No Content\r\n\r\n", status: 204, keep: true},
		{name: "HTTP/1.0", answer: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK", status: 200},
		{name: "chunked", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nOK\r\n0\r\n\r\n", status: 200},
		{name: "to the end", answer: "HTTP/1.1 200 OK\r\n\r\nOK", status: 200},
		{name: "more than the body", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOKHTTP/1.1", status: 200, together: true},
		{name: "body cut short", answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nOK", status: 200},
		{name: "no status line", answer: "SSH-2.0-OpenSSH_9.6\r\n\r\n", err: true},
		{name: "bad status", answer: "HTTP/1.1 2x0 OK\r\n\r\n", err: true},
		{name: "bad length", answer: "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nOK", err: true},
		{name: "two lengths", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nOK", err: true},
		{name: "head cut short", answer: "HTTP/1.1 200 OK\r\nContent-Len", err: true},
		{name: "head too long", answer: "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("x", pingBufSize) + "\r\n\r\n", err: true},
	} {
		for _, oneByte := range []bool{false, true} {
			if oneByte && tc.together {
				continue
			}
			var r io.Reader = strings.NewReader(tc.answer)
			if oneByte {
				r = iotest.OneByteReader(r)
			}
			status, keep, err := readPingAnswer(r, make([]byte, pingBufSize))
			if (err != nil) != tc.err || status != tc.status || keep != tc.keep {
				t.Errorf("%s (one byte at a time %v): status %d, keep %v, error %v; want %d, %v, error %v",
					tc.name, oneByte, status, keep, err, tc.status, tc.keep, tc.err)
			}
		}
	}
}

// A health check on a kept connection allocates next to nothing: at
// 10,000 engines a thousand checks a second through net/http were a
// steady stream of garbage.
func TestPingAllocations(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("OK")) }))
	defer srv.Close()
	c, err := NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.closePing()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ping := func() {
		if status, err := c.ping(ctx, "/_ping", 5*time.Second, nil); status != 200 || err != nil {
			t.Fatalf("ping: %d %v", status, err)
		}
	}
	ping() // connects
	// The server's allocations are counted too (same process): compare
	// with a bound, well under net/http's client alone (about 25).
	if n := testing.AllocsPerRun(200, ping); n > 40 {
		t.Errorf("a check on a kept connection allocates %.0f times (server included)", n)
	}
}

// A check that gets no answer fails when its wait is over, and one whose
// context ends fails at once with the context's error.
func TestPingWaitBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // a hung engine: accepts, reads, never answers
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, bufio.NewReader(conn)) }()
		}
	}()
	c, err := NewClient(ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.closePing()
	if _, err := c.ping(context.Background(), "/_ping", 50*time.Millisecond, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("unanswered check: %v, want a timeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := c.ping(ctx, "/_ping", time.Hour, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("check whose context ended: %v, want context.Canceled", err)
	}
}

// BenchmarkPing is one health check on a kept connection to an in-process
// server (whose costs are included: compare allocs/op with care).
func BenchmarkPing(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("OK")) }))
	defer srv.Close()
	c, err := NewClient(srv.URL, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.closePing()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		if status, err := c.ping(ctx, "/_ping", 5*time.Second, nil); status != 200 || err != nil {
			b.Fatalf("ping: %d %v", status, err)
		}
	}
}
