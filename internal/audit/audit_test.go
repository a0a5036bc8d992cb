package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// buffer is an io.WriteCloser safe for the writer goroutine and the test.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) Close() error { return nil }

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testLog is a log into a buffer, closed at the end of the test.
func testLog(t *testing.T, c Config) (*Log, *buffer) {
	t.Helper()
	out := &buffer{}
	l := newLog(c, out, nil)
	t.Cleanup(func() { l.Close() })
	return l, out
}

// entries closes l and decodes the lines it wrote.
func entries(t *testing.T, l *Log, out *buffer) []Entry {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var es []Entry
	for line := range strings.Lines(out.String()) {
		var e Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		es = append(es, e)
	}
	return es
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		method, url string
		want        call
	}{
		{"POST", "/v1.41/containers/create?name=web", call{path: "/containers/create", action: "container.create", target: "web", creates: true}},
		{"POST", "/containers/create", call{path: "/containers/create", action: "container.create", creates: true}},
		{"POST", "/v1.50/containers/node1/web/start", call{path: "/containers/node1/web/start", action: "container.start", target: "node1/web"}},
		{"DELETE", "/containers/node1/web?force=1", call{path: "/containers/node1/web", action: "container.remove", target: "node1/web"}},
		{"POST", "/containers/abc/exec", call{path: "/containers/abc/exec", action: "container.exec.create", target: "abc", creates: true}},
		{"POST", "/exec/e1/start", call{path: "/exec/e1/start", action: "container.exec.start", target: "e1", stream: true}},
		{"POST", "/containers/abc/attach?stream=1&stdin=1", call{path: "/containers/abc/attach", action: "container.attach", target: "abc", stream: true}},
		{"GET", "/containers/abc/attach/ws", call{path: "/containers/abc/attach/ws", action: "container.attach.ws", target: "abc", sensitive: true, stream: true}},
		{"GET", "/containers/abc/archive?path=/etc", call{path: "/containers/abc/archive", action: "container.archive.get", target: "abc", sensitive: true, stream: true}},
		{"HEAD", "/containers/abc/archive?path=/etc", call{path: "/containers/abc/archive", action: "container.archive.stat", target: "abc"}},
		{"GET", "/containers/abc/export", call{path: "/containers/abc/export", action: "container.export", target: "abc", sensitive: true, stream: true}},
		{"GET", "/containers/abc/logs?follow=1", call{path: "/containers/abc/logs", action: "container.logs", target: "abc", stream: true}},
		{"GET", "/containers/abc/logs", call{path: "/containers/abc/logs", action: "container.logs", target: "abc"}},
		{"GET", "/containers/abc/stats", call{path: "/containers/abc/stats", action: "container.stats", target: "abc", stream: true}},
		{"GET", "/containers/abc/stats?stream=0", call{path: "/containers/abc/stats", action: "container.stats", target: "abc"}},
		{"GET", "/containers/json?all=1", call{path: "/containers/json", action: "container.list"}},
		{"POST", "/images/create?fromImage=registry:5000/team/app&tag=1.2", call{path: "/images/create", action: "image.create", target: "registry:5000/team/app:1.2", stream: true}},
		{"POST", "/images/create?fromSrc=-&repo=imported", call{path: "/images/create", action: "image.create", target: "imported", stream: true}},
		{"DELETE", "/v1.41/images/registry:5000/team/app:1.2", call{path: "/images/registry:5000/team/app:1.2", action: "image.remove", target: "registry:5000/team/app:1.2"}},
		{"POST", "/images/team/app/tag?repo=x&tag=y", call{path: "/images/team/app/tag", action: "image.tag", target: "team/app"}},
		{"GET", "/images/get?names=a&names=b:1", call{path: "/images/get", action: "image.save", target: "a,b:1", sensitive: true, stream: true}},
		{"GET", "/images/json", call{path: "/images/json", action: "image.list"}},
		{"POST", "/build?t=app:1&buildargs=%7B%22TOKEN%22%3A%22s3cret%22%7D", call{path: "/build", action: "image.build", target: "app:1", stream: true}},
		{"POST", "/commit?container=web&repo=snap", call{path: "/commit", action: "container.commit", target: "web"}},
		{"POST", "/networks/create", call{path: "/networks/create", action: "network.create", creates: true}},
		{"POST", "/networks/front/connect", call{path: "/networks/front/connect", action: "network.connect", target: "front"}},
		{"DELETE", "/volumes/data", call{path: "/volumes/data", action: "volume.remove", target: "data"}},
		{"GET", "/swarm", call{path: "/swarm", action: "swarm.inspect", sensitive: true}},
		{"POST", "/nodes/n1/update?version=3", call{path: "/nodes/n1/update", action: "node.update", target: "n1"}},
		{"GET", "/v1.41/events", call{path: "/events", action: "system.events", stream: true}},
		{"GET", "/v1.41", call{path: "/", action: "other"}},
		{"POST", "/plugins/pull", call{path: "/plugins/pull", action: "other"}},
		{"POST", "/containers//start", call{path: "/containers//start", action: "other"}},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := classify(tc.method, u); got != tc.want {
			t.Errorf("%s %s:\n got %+v\nwant %+v", tc.method, tc.url, got, tc.want)
		}
	}
}

// okHandler answers 200 "OK" to anything.
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "OK") })

func TestAuditedCalls(t *testing.T) {
	calls := []struct {
		method, path string
		always       bool // audited without Reads
	}{
		{"POST", "/containers/create", true},
		{"DELETE", "/containers/web", true},
		{"PUT", "/containers/web/archive", true},
		{"POST", "/containers/web/wait", true},
		{"POST", "/exec/e1/start", true},
		{"POST", "/plugins/pull", true}, // unknown to shoal, but a write
		{"GET", "/containers/web/attach/ws", true},
		{"GET", "/containers/web/archive", true},
		{"GET", "/containers/web/export", true},
		{"GET", "/images/app/get", true},
		{"GET", "/swarm", true},
		{"GET", "/containers/json", false},
		{"GET", "/containers/web/json", false},
		{"GET", "/containers/web/logs", false},
		{"HEAD", "/containers/web/archive", false},
		{"HEAD", "/_ping", false},
		{"GET", "/events", false},
		{"GET", "/debug/pprof/", false},
	}
	for _, reads := range []bool{false, true} {
		l, out := testLog(t, Config{Reads: reads})
		h := l.Handler(okHandler)
		var want []string
		for _, c := range calls {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(c.method, c.path, nil))
			if c.always || reads {
				want = append(want, c.method+" "+c.path)
			}
		}
		var got []string
		for _, e := range entries(t, l, out) {
			got = append(got, e.Method+" "+e.Path)
		}
		got = slices.Compact(got) // a stream's start and end
		if !reflect.DeepEqual(got, want) {
			t.Errorf("reads=%v: audited\n%v\nwant\n%v", reads, got, want)
		}
	}
}

// The JSON line has exactly the documented fields, in UTC RFC 3339
// with nanoseconds.
func TestEntryShape(t *testing.T) {
	l, out := testLog(t, Config{Who: func(*http.Request) (string, string) { return "alice", "operator" }})
	h := l.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"Id":"4f3e2d","Warnings":[]}`)
	}))
	r := httptest.NewRequest("POST", "/v1.41/containers/create?name=web", strings.NewReader(`{"Image":"busybox"}`))
	r.RemoteAddr = "10.0.0.5:51234"
	h.ServeHTTP(httptest.NewRecorder(), r)
	l.Close()

	var m map[string]any
	if err := json.Unmarshal([]byte(out.String()), &m); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
	if want := []string{"action", "created", "duration_ms", "method", "path", "remote", "request_id", "status", "target", "time", "who"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("fields %v, want %v", keys, want)
	}
	want := map[string]any{"action": "container.create", "created": "4f3e2d", "method": "POST", "path": "/containers/create",
		"remote": "10.0.0.5:51234", "status": float64(201), "target": "web", "who": map[string]any{"name": "alice", "role": "operator"}}
	for k, v := range want {
		if !reflect.DeepEqual(m[k], v) {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	ts, _ := m["time"].(string)
	if tm, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") || time.Since(tm) > time.Minute {
		t.Errorf("time %q (%v): want a recent RFC 3339 UTC time", ts, err)
	}
	if d, _ := m["duration_ms"].(float64); d < 2 || d > 10_000 {
		t.Errorf("duration_ms %v, want at least the 2 ms the call took", m["duration_ms"])
	}
	if id, _ := m["request_id"].(string); len(id) != 24 {
		t.Errorf("request_id %q", id)
	}
}

func TestFailedCallLogsMessage(t *testing.T) {
	l, out := testLog(t, Config{})
	h := l.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"No such container: nope"}`+"\n")
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/containers/nope/start", nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/containers/nope/stop", nil))
	es := entries(t, l, out)
	if len(es) != 2 || es[0].Status != 404 || es[0].Error != "No such container: nope" || es[0].Action != "container.start" || es[0].Target != "nope" {
		t.Errorf("entries %+v", es)
	}
	if es[0].RequestID == es[1].RequestID {
		t.Error("two calls share a request_id")
	}
}

// Bodies, headers and query values other than names never reach the log.
func TestSecretsNeverLogged(t *testing.T) {
	l, out := testLog(t, Config{Reads: true})
	h := l.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"Id":"x","Env":["PASSWORD=s3cret-out"]}`)
	}))
	for _, r := range []*http.Request{
		httptest.NewRequest("POST", "/containers/create?name=db", strings.NewReader(`{"Env":["PASSWORD=s3cret-env"]}`)),
		httptest.NewRequest("POST", "/build?t=app&buildargs=%7B%22TOKEN%22%3A%22s3cret-arg%22%7D", strings.NewReader("s3cret-context")),
		httptest.NewRequest("POST", "/images/create?fromImage=private/app", nil),
		httptest.NewRequest("POST", "/auth", strings.NewReader(`{"username":"u","password":"s3cret-pw"}`)),
		httptest.NewRequest("GET", "/containers/json?filters=%7B%22label%22%3A%5B%22s3cret-label%22%5D%7D", nil),
	} {
		r.Header.Set("X-Registry-Auth", "s3cret-auth")
		r.Header.Set("Authorization", "Bearer s3cret-token")
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	l.Close()
	if strings.Contains(out.String(), "s3cret") {
		t.Errorf("a secret reached the audit log:\n%s", out.String())
	}
	if n := strings.Count(out.String(), "\n"); n != 7 { // build and pull are streams: start and end
		t.Errorf("%d lines, want 7", n)
	}
}

// A long-lived call is logged when it starts being served, before it
// ends, and again when it ends.
func TestStreamLoggedAtStartAndEnd(t *testing.T) {
	l, out := testLog(t, Config{Reads: true})
	release := make(chan struct{})
	h := l.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		<-release
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/containers/web/logs?follow=1", nil))
	}()
	waitFor(t, func() bool { return strings.Contains(out.String(), `"stream":"start"`) })
	close(release)
	<-done
	es := entries(t, l, out)
	if len(es) != 2 || es[0].Stream != "start" || es[1].Stream != "end" || es[0].Status != 200 || es[1].Status != 200 ||
		es[0].RequestID != es[1].RequestID || es[0].Action != "container.logs" {
		t.Errorf("entries %+v", es)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}

// A hijacked call (attach, exec start) is logged with the status line
// the handler writes on the hijacked connection, while the stream runs.
func TestHijackedCallStatus(t *testing.T) {
	l, out := testLog(t, Config{})
	h := l.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n') // the client's input, echoed
		conn.Write([]byte(line))
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1.41/exec/e1/start HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("%v %v", resp, err)
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), `"stream":"start"`) })
	io.WriteString(c, "hello\n")
	if got, _ := br.ReadString('\n'); got != "hello\n" {
		t.Errorf("stream through the audited hijack: %q", got)
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("after the half-close: %q", rest)
	}
	// The server does not track a hijacked connection: wait for the
	// handler's end.
	waitFor(t, func() bool { return strings.Contains(out.String(), `"stream":"end"`) })
	es := entries(t, l, out)
	if len(es) != 2 || es[0].Status != 101 || es[0].Stream != "start" || es[1].Status != 101 || es[1].Stream != "end" ||
		es[0].Action != "container.exec.start" || es[0].Target != "e1" {
		t.Errorf("entries %+v", es)
	}
}

// blockingWriter holds every write until released, saying when the
// first one has started.
type blockingWriter struct {
	buffer
	started chan struct{}
	once    sync.Once
	release chan struct{}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.started) })
	<-w.release
	return w.buffer.Write(p)
}

// With the writer stuck, calls wait at most Wait; the lost entries are
// counted in an audit.dropped line once the writer moves again.
func TestFullQueueDropsAndCounts(t *testing.T) {
	out := &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
	l := newLog(Config{Queue: 2, Wait: 10 * time.Millisecond}, out, nil)
	l.Add(&Entry{Action: "container.start"})
	<-out.started // the writer holds one line
	drops := 0
	start := time.Now()
	for range 9 {
		if err := l.Add(&Entry{Action: "container.start"}); err == ErrDropped {
			drops++
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("9 calls took %v with a stuck writer", took)
	}
	if drops != 7 { // the queue holds two
		t.Errorf("%d entries dropped, want 7", drops)
	}
	close(out.release)
	l.Close()
	var d struct {
		Action  string
		Dropped int
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &d); err != nil || d.Action != "audit.dropped" || d.Dropped != drops {
		t.Errorf("last line %q (%v): want an audit.dropped entry of %d", lines[len(lines)-1], err, drops)
	}
	if kept := strings.Count(out.String(), "container.start"); kept != 10-drops {
		t.Errorf("%d entries written, %d dropped, of 10", kept, drops)
	}
	if err := l.Add(&Entry{}); err != ErrClosed {
		t.Errorf("Add after Close: %v", err)
	}
}

func TestDefaultWho(t *testing.T) {
	r := httptest.NewRequest("POST", "/containers/create", nil)
	r.RemoteAddr = "10.0.0.5:4711"
	if name, role := DefaultWho(r); name != "10.0.0.5" || role != "" {
		t.Errorf("plain TCP: %q %q", name, role)
	}
	unix := r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.UnixAddr{Name: "/run/shoal.sock", Net: "unix"}))
	unix.RemoteAddr = "@"
	if name, _ := DefaultWho(unix); name != "unix" {
		t.Errorf("unix socket: %q", name)
	}
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"shoal-operator", "scope:team=web"}}}
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	if name, _ := DefaultWho(r); name != "10.0.0.5" {
		t.Errorf("an unverified certificate named the caller %q", name)
	}
	r.TLS.VerifiedChains = [][]*x509.Certificate{{cert}}
	if name, role := DefaultWho(r); name != "alice" || role != "shoal-operator" {
		t.Errorf("verified certificate: %q %q", name, role)
	}
}

func TestOpen(t *testing.T) {
	if l, err := Open(Config{}, nil); l != nil || err != nil {
		t.Errorf("no path: %v %v, want no log", l, err)
	}
	var nilLog *Log
	if h := nilLog.Handler(okHandler); reflect.ValueOf(h).Pointer() != reflect.ValueOf(http.Handler(okHandler)).Pointer() {
		t.Error("a nil log wraps the handler")
	}
	if _, err := Open(Config{Path: "x", MaxFiles: -1}, nil); !errors.Is(err, ErrNegative) {
		t.Errorf("negative max files: %v", err)
	}
	path := t.TempDir() + "/log/audit.log"
	l, err := Open(Config{Path: path, MaxSizeMB: 1, MaxFiles: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Handler(okHandler).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/containers/web/kill", nil))
	l.Close()
	if got := readFile(t, path); !strings.Contains(got, `"action":"container.kill"`) {
		t.Errorf("audit.log: %q", got)
	}
}
