package dockerapi

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/authz"
)

type seenCall struct {
	method, route string
	status        int
}

type fakeObserver struct {
	mu    sync.Mutex
	calls []seenCall
}

func (o *fakeObserver) ObserveRequest(method, route string, status int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, seenCall{method, route, status})
}

// Each call is reported with its route's pattern (not its path), the
// status it was answered with, 403s and 404s included.
func TestObserverSeesRoutePatternsAndStatuses(t *testing.T) {
	s := NewServer(Backends{Containers: &fakeContainers{}, System: fakeSystem{}}, "test", nil)
	obs := &fakeObserver{}
	s.Observer = obs
	s.UI = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	callAs(s, admin, "GET", "/v1.45/containers/known/json", "")
	callAs(s, admin, "GET", "/containers/missing/json", "")
	callAs(s, viewer, "POST", "/containers/create", "{}")
	callAs(s, admin, "GET", "/no/such/path", "")
	callAs(s, admin, "GET", "/_ping", "")
	callAs(s, admin, "GET", "/ui/some/page", "")
	want := []seenCall{
		{"GET", "/containers/{id*}/json", 500}, // the fake has no inspect: its panic is answered 500
		{"GET", "/containers/{id*}/json", 404},
		{"POST", "/containers/create", 403},
		{"GET", "other", 404},
		{"GET", "/_ping", 200},
		{"GET", "/ui", 200},
	}
	if len(obs.calls) != len(want) {
		t.Fatalf("observed %v, want %v", obs.calls, want)
	}
	for i := range want {
		if obs.calls[i] != want[i] {
			t.Errorf("call %d: %v, want %v", i, obs.calls[i], want[i])
		}
	}
}

// /metrics is served from Server.Metrics to viewers and up, refused to a
// certificate without a role, and a 404 when no metrics are configured.
func TestMetricsRoute(t *testing.T) {
	s := NewServer(Backends{}, "test", nil)
	if rec := callAs(s, admin, "GET", "/metrics", ""); rec.Code != http.StatusNotFound {
		t.Errorf("no metrics: %d", rec.Code)
	}
	s.Metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("shoal_up 1\n")) })
	s.Authz = &authz.Policy{DefaultRole: authz.RoleNone}
	if rec := callAs(s, viewer, "GET", "/metrics", ""); rec.Code != http.StatusOK || rec.Body.String() != "shoal_up 1\n" {
		t.Errorf("viewer: %d %q", rec.Code, rec.Body)
	}
	if rec := callAs(s, verifiedAs("stranger", "eng"), "GET", "/metrics", ""); rec.Code != http.StatusForbidden {
		t.Errorf("no role: %d", rec.Code)
	}
}

// At debug level each call is logged once answered: method, route,
// status, duration and who called.
func TestDebugRequestLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := NewServer(Backends{Containers: &fakeContainers{}}, "test", log)
	callAs(s, operator, "GET", "/containers/missing/json", "")
	var line string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, `"msg":"api request"`) {
			line = l
		}
	}
	for _, want := range []string{`"method":"GET"`, `"route":"/containers/{id*}/json"`, `"status":404`, `"duration":`, `"client":"otto"`, `"role":"operator"`} {
		if !strings.Contains(line, want) {
			t.Errorf("request log %q lacks %s", line, want)
		}
	}
	buf.Reset()
	s = NewServer(Backends{Containers: &fakeContainers{}}, "test", slog.New(slog.NewJSONHandler(&buf, nil)))
	callAs(s, operator, "GET", "/containers/missing/json", "")
	if strings.Contains(buf.String(), "api request") {
		t.Errorf("request logged at info level: %s", buf.String())
	}
}

// Observed, a hijacked call keeps working and counts as 101, and a
// forwarded stream keeps being flushed as it comes.
func TestObservedStreamsStillStream(t *testing.T) {
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/logs") {
			io.WriteString(w, "tick\n")
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
			return
		}
		c, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		buf.WriteString("HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nout\n")
		buf.Flush()
		c.Close()
	}))
	t.Cleanup(engine.Close)
	s := NewServer(Backends{Containers: streamContainers{t: fakeTarget{engine}}}, "test", nil)
	obs := &fakeObserver{}
	s.Observer = obs
	shoal := httptest.NewServer(s)
	t.Cleanup(shoal.Close)

	c, err := net.Dial("tcp", shoal.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "POST /containers/web/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("attach: %v %v", resp, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(br); string(b) != "out\n" {
		t.Errorf("attach read %q", b)
	}
	c.Close()

	resp, err = http.Get(shoal.URL + "/containers/web/logs?follow=1")
	if err != nil {
		t.Fatal(err)
	}
	first, err := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if first != "tick\n" || err != nil {
		t.Errorf("logs: %q %v", first, err)
	}
	waitFor(t, func() bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		return len(obs.calls) == 2
	})
	// The attach ends (and is counted) when shoal sees its connections
	// close, which may be after the logs call.
	for _, want := range []seenCall{{"POST", "/containers/{id*}/attach", 101}, {"GET", "/containers/{id*}/logs", 200}} {
		if !slices.Contains(obs.calls, want) {
			t.Errorf("observed %v, want %v among them", obs.calls, want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
	}
}
