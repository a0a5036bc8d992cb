package dockerapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// streamContainers resolves every container to one fake engine.
type streamContainers struct {
	Containers
	t Target
}

func (f streamContainers) ResolveContainer(_ context.Context, ref string) (Target, string, string, error) {
	if ref == "gone" {
		return nil, "", "", errdefs.ErrNotFound.WithMessage("No such container: " + ref)
	}
	return f.t, "abc", ref, nil
}

// syncBuf is a log sink the server's goroutines write to.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cutConn ends an engine's connection the way a killed process's ends
// when data is still unread: a reset.
func cutConn(t *testing.T, w http.ResponseWriter) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

// streamServer is shoal over one fake engine whose handler is h; logs
// collects both shoal's log and net/http's.
func streamServer(t *testing.T, h http.HandlerFunc) (shoal *httptest.Server, logs *syncBuf) {
	engine := httptest.NewServer(h)
	t.Cleanup(engine.Close)
	logs = &syncBuf{}
	s := NewServer(Backends{Containers: streamContainers{t: fakeTarget{engine}}}, "test", slog.New(slog.NewTextHandler(logs, nil)))
	shoal = httptest.NewUnstartedServer(s)
	shoal.Config.ErrorLog = log.New(logs, "", 0)
	shoal.Start()
	t.Cleanup(shoal.Close)
	return shoal, logs
}

// A forwarded stream the engine cuts (logs -f, wait, stats, build) ends
// for the client without its last chunk, so it reads "unexpected EOF" as
// it would from the engine; a clean end stays clean; neither is logged
// as a crash.
func TestForwardedStreamCutAborts(t *testing.T) {
	shoal, logs := streamServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
		io.WriteString(w, "tick\n")
		w.(http.Flusher).Flush()
		if strings.Contains(r.URL.Path, "/cut/") {
			time.Sleep(50 * time.Millisecond)
			cutConn(t, w)
		}
	})
	for _, tc := range []struct {
		ref     string
		wantErr error
	}{{"clean", nil}, {"cut", io.ErrUnexpectedEOF}} {
		resp, err := http.Get(shoal.URL + "/containers/" + tc.ref + "/logs?follow=1")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "tick\n" || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
			t.Errorf("%s: read %q, error %v; want error %v", tc.ref, b, err, tc.wantErr)
		}
	}
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("an aborted stream is logged as a crash:\n%s", logs)
	}
}

// A hijacked stream (attach, exec start) the engine resets is reset for
// the client too; one the engine ends cleanly ends cleanly.
func TestHijackedStreamCutResets(t *testing.T) {
	shoal, logs := streamServer(t, func(w http.ResponseWriter, r *http.Request) {
		c, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		buf.WriteString("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nout\n")
		buf.Flush()
		time.Sleep(50 * time.Millisecond)
		if strings.Contains(r.URL.Path, "/cut/") {
			c.(*net.TCPConn).SetLinger(0)
		}
		c.Close()
	})
	for _, tc := range []struct {
		ref     string
		wantErr error
	}{{"clean", nil}, {"cut", syscall.ECONNRESET}} {
		c, err := net.Dial("tcp", shoal.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "POST /containers/"+tc.ref+"/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("%s: %v %v", tc.ref, resp, err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(br)
		c.Close()
		if string(b) != "out\n" || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
			t.Errorf("%s: read %q, error %v; want error %v", tc.ref, b, err, tc.wantErr)
		}
	}
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("a cut hijacked stream is logged as a crash:\n%s", logs)
	}
}
