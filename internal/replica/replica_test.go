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
	// A request another manager forwarded is served here.
	req, _ := http.NewRequest("GET", srv.URL+"/containers/json", nil)
	req.Header.Set(ForwardedHeader, "x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "local /containers/json" {
		t.Errorf("forwarded request: %q", b)
	}
	// Hijacked streams, with and without an Upgrade header, half-close
	// carried through.
	for _, upgrade := range []bool{true, false} {
		c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
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
		c.Write([]byte("hello"))
		c.(*net.TCPConn).CloseWrite()
		out, _ := io.ReadAll(br)
		c.Close()
		if string(out) != "HELLO" {
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
