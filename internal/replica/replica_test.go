package replica

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakePrimary answers ordinary requests with "primary <path> <forwarded-by>"
// and upgrades attach to a stream that echoes its input in upper case
// until the client half-closes.
func fakePrimary(t *testing.T) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/attach") {
			fmt.Fprintf(w, "primary %s %s", r.URL.Path, r.Header.Get(ForwardedHeader))
			return
		}
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		if r.Header.Get("Upgrade") != "" {
			buf.WriteString("HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n")
		} else {
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n")
		}
		buf.Flush()
		in, _ := io.ReadAll(buf.Reader) // until the client's half-close
		conn.Write(bytes.ToUpper(in))
		conn.(*net.TCPConn).CloseWrite()
	}))
}

func local() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/info") {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"Name":"shoal","SystemStatus":[["Nodes","2"]]}`)
			return
		}
		fmt.Fprintf(w, "local %s", r.URL.Path)
	})
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHandler(t *testing.T) {
	p := fakePrimary(t)
	defer p.Close()
	h := New(local(), "127.0.0.1:1", nil, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(h)
	defer srv.Close()

	if code, body := get(t, srv.URL+"/v1.41/containers/json"); code != 503 {
		t.Errorf("no primary: %d %s", code, body)
	}
	h.SetPrimary(strings.TrimPrefix(p.URL, "http://"))
	if _, body := get(t, srv.URL+"/v1.41/containers/json?all=1"); body != "primary /v1.41/containers/json 127.0.0.1:1" {
		t.Errorf("forwarded: %q", body)
	}
	if _, body := get(t, srv.URL+"/_ping"); body != "local /_ping" {
		t.Errorf("ping: %q", body)
	}
	_, body := get(t, srv.URL+"/v1.41/info")
	var info struct {
		Name         string
		SystemStatus [][2]string
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil || info.Name != "shoal" ||
		len(info.SystemStatus) != 3 || info.SystemStatus[1] != [2]string{"Role", "replica"} || info.SystemStatus[2][0] != "Primary" {
		t.Errorf("info: %q %v", body, err)
	}
	// Hijacked streams, with and without an Upgrade header, half-close
	// carried through.
	for _, upgrade := range []bool{true, false} {
		if out := attach(t, srv.URL, upgrade, "hello"); out != "HELLO" {
			t.Errorf("upgrade=%v: stream %q", upgrade, out)
		}
	}
	h.SetPrimary("127.0.0.1:1")
	if _, body := get(t, srv.URL+"/containers/json"); body != "local /containers/json" {
		t.Errorf("primary: %q", body)
	}
	if _, self := h.Primary(); !self {
		t.Error("Primary: not self")
	}
}

// startHandler serves a Handler over local on a test server of its own
// and returns both; self is the server's address.
func startHandler(t *testing.T, local http.Handler) (*Handler, *httptest.Server) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	h := New(local, srv.Listener.Addr().String(), nil, slog.New(slog.DiscardHandler))
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return h, srv
}

func do(t *testing.T, method, url string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// A client that sets the forwarding header itself must not make a replica
// serve it: the replica's view may be stale or partial.
func TestReplicaRefusesClientForwardedHeader(t *testing.T) {
	p := fakePrimary(t)
	defer p.Close()
	h, srv := startHandler(t, local())
	h.SetPrimary(strings.TrimPrefix(p.URL, "http://"))
	for _, path := range []string{"/v1.41/containers/json", "/containers/create", "/v1.41/containers/abc/attach"} {
		resp, body := do(t, "POST", srv.URL+path, http.Header{ForwardedHeader: {"evil"}})
		if strings.HasPrefix(body, "local") {
			t.Fatalf("%s: replica served a client's 'forwarded' request locally: %q", path, body)
		}
		var msg struct{ Message string }
		if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &msg) != nil || !strings.Contains(msg.Message, "not the primary") {
			t.Errorf("%s: %d %q, want a 503 Docker error saying this manager is not the primary", path, resp.StatusCode, body)
		}
	}
}

// Real forwarding between two Handlers: the replica forwards, the primary
// serves (the header no longer matters there), hijacked streams included.
func TestForwardReplicaToPrimary(t *testing.T) {
	primaryLocal := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/attach") {
			echoUpper(t, w, r)
			return
		}
		fmt.Fprintf(w, "primary %s %s", r.URL.Path, r.Header.Get(ForwardedHeader))
	})
	ph, psrv := startHandler(t, primaryLocal)
	rh, rsrv := startHandler(t, local())
	paddr := strings.TrimPrefix(psrv.URL, "http://")
	ph.SetPrimary(paddr)
	rh.SetPrimary(paddr)

	if _, body := get(t, rsrv.URL+"/v1.41/containers/json"); body != "primary /v1.41/containers/json "+rh.self {
		t.Errorf("forwarded: %q", body)
	}
	// On the primary a client's header is harmless: it serves everyone.
	if _, body := do(t, "GET", psrv.URL+"/containers/json", http.Header{ForwardedHeader: {"x"}}); body != "primary /containers/json x" {
		t.Errorf("primary with header: %q", body)
	}
	for _, upgrade := range []bool{true, false} {
		if out := attach(t, rsrv.URL, upgrade, "hello"); out != "HELLO" {
			t.Errorf("upgrade=%v: stream %q", upgrade, out)
		}
	}
}

// Two managers that disagree for a moment on who is primary each think
// the other is: a request goes over once and is refused, not bounced.
func TestNoForwardingLoop(t *testing.T) {
	a, asrv := startHandler(t, local())
	b, bsrv := startHandler(t, local())
	a.SetPrimary(b.self)
	b.SetPrimary(a.self)
	for _, u := range []string{asrv.URL, bsrv.URL} {
		resp, body := do(t, "GET", u+"/containers/json", nil)
		if resp.StatusCode != http.StatusServiceUnavailable || strings.HasPrefix(body, "local") {
			t.Errorf("%s: %d %q, want 503", u, resp.StatusCode, body)
		}
	}
}

// echoUpper upgrades (or, without an Upgrade header, answers 200 with a raw
// stream) and echoes its input in upper case until the client half-closes.
func echoUpper(t *testing.T, w http.ResponseWriter, r *http.Request) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close()
	if r.Header.Get("Upgrade") != "" {
		buf.WriteString("HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n")
	} else {
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n")
	}
	buf.Flush()
	in, _ := io.ReadAll(buf.Reader)
	conn.Write(bytes.ToUpper(in))
	conn.(*net.TCPConn).CloseWrite()
}

// attach sends in over an attach stream on base and returns what came back.
func attach(t *testing.T, base string, upgrade bool, in string) string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hdr := ""
	if upgrade {
		hdr = "Connection: Upgrade\r\nUpgrade: tcp\r\n"
	}
	fmt.Fprintf(c, "POST /v1.41/containers/abc/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: x\r\n%s\r\n", hdr)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]int{true: 101, false: 200}[upgrade]; resp.StatusCode != want {
		t.Errorf("upgrade=%v: status %d", upgrade, resp.StatusCode)
	}
	c.Write([]byte(in))
	c.(*net.TCPConn).CloseWrite()
	out, _ := io.ReadAll(br)
	return string(out)
}
