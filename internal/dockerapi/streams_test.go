package dockerapi

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// holdingEngine is an engine whose attach and followed logs last until
// the client goes away; other calls answer at once.
func holdingEngine(t *testing.T) *httptest.Server {
	t.Helper()
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/attach"):
			c, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			buf.WriteString("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
			buf.Flush()
			io.Copy(io.Discard, buf) // until the client's side closes
		case strings.HasSuffix(r.URL.Path, "/logs") && r.URL.Query().Get("follow") == "1":
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
		default:
			io.WriteString(w, "done\n")
		}
	}))
	t.Cleanup(engine.Close)
	return engine
}

// streamLimited is shoal over a holding engine with the stream caps of l.
func streamLimited(t *testing.T, l Limits, log *slog.Logger) string {
	t.Helper()
	s := NewServer(Backends{Containers: streamContainers{t: fakeTarget{holdingEngine(t)}}}, "test", nil)
	s.Streams = NewStreamLimiter(l, log)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// stream sends the request line req (with Host and an upgrade for an
// attach) on a new connection from src and returns the answer's status
// and, for an error, its message; the connection stays open.
func stream(t *testing.T, src, addr, req string) (net.Conn, int, string) {
	t.Helper()
	c := dialFrom(t, src, addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	hdr := "Host: shoal\r\n"
	if strings.HasPrefix(req, "POST") {
		hdr += "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n"
	}
	io.WriteString(c, req+" HTTP/1.1\r\n"+hdr+"\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s from %s: %v", req, src, err)
	}
	c.SetDeadline(time.Time{})
	if resp.StatusCode < 400 {
		return c, resp.StatusCode, ""
	}
	var m struct{ Message string }
	json.NewDecoder(resp.Body).Decode(&m)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: error as %q, want Docker's JSON", req, ct)
	}
	return c, resp.StatusCode, m.Message
}

const (
	attach = "POST /v1.41/containers/web/attach?stream=1&stdin=1&stdout=1"
	follow = "GET /v1.41/containers/web/logs?follow=1&stdout=1"
)

// A client holding its cap of streams gets dockerd's 503 with the reason
// on the next, before anything is hijacked; short calls, other clients
// and, once a stream ends, the same client are served.
func TestStreamLimitPerClient(t *testing.T) {
	logs := &syncBuf{}
	addr := streamLimited(t, Limits{MaxStreamsPerClient: 2}, slog.New(slog.NewTextHandler(logs, nil)))
	first, st, _ := stream(t, "127.0.0.1", addr, attach)
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("first attach: %d", st)
	}
	if _, st, _ := stream(t, "127.0.0.1", addr, follow); st != 200 {
		t.Fatalf("logs -f within the cap: %d", st)
	}
	for _, req := range []string{attach, follow, "GET /containers/web/stats"} {
		if _, st, msg := stream(t, "127.0.0.1", addr, req); st != 503 || msg != "too many simultaneous streams from 127.0.0.1: limit is 2 (--max-streams-per-client)" {
			t.Errorf("%s over the cap: %d %q", req, st, msg)
		}
	}
	for _, req := range []string{"GET /containers/web/logs", "GET /containers/web/stats?stream=0"} {
		if _, st, msg := stream(t, "127.0.0.1", addr, req); st != 200 {
			t.Errorf("%s (not a stream) at the cap: %d %s", req, st, msg)
		}
	}
	if _, st, _ := stream(t, "127.0.0.2", addr, attach); st != http.StatusSwitchingProtocols {
		t.Errorf("another client's attach: %d", st)
	}
	if n := strings.Count(logs.String(), "API stream refused"); n != 1 {
		t.Errorf("%d warnings for 3 refused streams, want 1 (rate-limited):\n%s", n, logs)
	}

	first.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, st, _ := stream(t, "127.0.0.1", addr, attach)
		c.Close()
		if st == http.StatusSwitchingProtocols {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an ended stream did not give its place back: %d", st)
		}
	}
}

// An exec create, which announces an exec start, is refused with the
// same message when the client has no room for that stream (the docker
// CLI shows a refused create's message, not a refused hijack's), and
// keeps no place when it is let through.
func TestExecCreateAtStreamCap(t *testing.T) {
	s := NewServer(Backends{Containers: streamContainers{t: fakeTarget{holdingEngine(t)}}}, "test", nil)
	s.Streams = NewStreamLimiter(Limits{MaxStreamsPerClient: 1}, nil)
	held := httptest.NewRequest("GET", "/events", nil) // from 192.0.2.1, as call's requests
	release, err := s.Streams.acquire(held)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, call(s, "POST", "/containers/web/exec", `{"Cmd":["true"]}`), 503,
		"too many simultaneous streams from 192.0.2.1: limit is 1 (--max-streams-per-client)")
	release()
	if rec := call(s, "POST", "/containers/web/exec", `{"Cmd":["true"]}`); rec.Code != 200 {
		t.Errorf("exec create with room: %d %s", rec.Code, rec.Body)
	}
	if _, err := s.Streams.acquire(held); err != nil {
		t.Errorf("the exec create kept its place: %v", err)
	}
}

func TestStreamLimitTotal(t *testing.T) {
	addr := streamLimited(t, Limits{MaxStreamsPerClient: 5, MaxStreams: 2}, nil)
	stream(t, "127.0.0.1", addr, attach)
	stream(t, "127.0.0.2", addr, follow)
	if _, st, msg := stream(t, "127.0.0.3", addr, attach); st != 503 || msg != "too many simultaneous streams: limit is 2 (--max-streams)" {
		t.Errorf("a stream over the total cap: %d %q", st, msg)
	}
}

// Every long-lived route named for the caps is a route the server has.
func TestLongCallsAreRoutes(t *testing.T) {
	s := NewServer(Backends{}, "test", nil)
	have := map[string]bool{}
	for _, r := range s.rt.routes {
		have[r.key] = true
	}
	for k := range longCalls {
		if !have[k] {
			t.Errorf("longCalls names %q, which is no route", k)
		}
	}
	for k := range beforeStream {
		if !have[k] {
			t.Errorf("beforeStream names %q, which is no route", k)
		}
	}
}

func TestStreamLimiterUncapped(t *testing.T) {
	l := NewStreamLimiter(Limits{}, nil)
	r := httptest.NewRequest("GET", "/events", nil)
	for range 10_000 {
		if _, err := l.acquire(r); err != nil {
			t.Fatalf("no caps, refused: %v", err)
		}
	}
	unix := httptest.NewRequest("GET", "/events", nil)
	unix.RemoteAddr = "@"
	l = NewStreamLimiter(Limits{MaxStreamsPerClient: 1, MaxStreams: 2}, nil)
	rel1, err1 := l.acquire(unix)
	_, err2 := l.acquire(unix)
	if err1 != nil || err2 != nil {
		t.Errorf("unix socket clients count in the total only: %v %v", err1, err2)
	}
	if _, err := l.acquire(unix); err == nil || statusOf(err) != 503 {
		t.Errorf("third over a total of 2: %v", err)
	}
	rel1()
	rel1() // once only
	if _, err := l.acquire(r); err != nil {
		t.Errorf("after a release: %v", err)
	}
	if _, err := l.acquire(unix); err == nil {
		t.Error("a double release gave two places back")
	}
}
