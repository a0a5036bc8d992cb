package e2e

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSlowClients opens 300 connections from one client address that send
// half a request and then nothing (slowloris) to a shoal that lets one
// client hold 100: the other 200 are closed at once, `docker ps` from
// another address still answers at once, the 100 held are cut after the
// 10 s header timeout, and a JSON body over the 16 MiB cap is refused
// with Docker's JSON error.
func TestSlowClients(t *testing.T) {
	e := bed.Engines
	s := startShoalT(t, "nodes://"+e[0].TCPAddr, "--max-conns-per-client", "100")
	ctx := ctxT(t, 2*time.Minute)
	if err := s.WaitNodes(ctx, 1, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	conns := slowClients(t, s.Addr, "127.0.0.2", 300)
	closedBy := readAll(conns, start.Add(3*time.Second))
	refused := 0
	for _, d := range closedBy {
		if d >= 0 {
			refused++
		}
	}
	if refused != 200 {
		t.Errorf("%d of 300 slow connections from one client closed at once, want the 200 over --max-conns-per-client", refused)
	}

	t1 := time.Now()
	if _, err := runDocker(ctx, dockerCmd{host: s.Host, args: []string{"ps", "-a"}}); err != nil {
		t.Errorf("docker ps while a client holds 100 slow connections: %v", err)
	}
	if took := time.Since(t1); took > 5*time.Second {
		t.Errorf("docker ps took %v while a client holds 100 slow connections", took)
	}

	// The held ones are cut by the header timeout (10 s), none much later.
	var held []net.Conn
	for i, d := range closedBy {
		if d < 0 {
			held = append(held, conns[i])
		}
	}
	for i, d := range readAll(held, start.Add(20*time.Second)) {
		if d < 0 {
			t.Errorf("held slow connection %d still open after 20 s", i)
			break
		}
	}

	big := append([]byte(`{"Image":"busybox","Env":["A=`), bytes.Repeat([]byte("x"), 17<<20)...)
	big = append(big, `"]}`...)
	st, _, body, err := s.Do(ctx, "POST", "/containers/create", big, map[string]string{"Content-Type": "application/json"})
	if err != nil || st != 400 || !strings.Contains(string(body), `"message":"request body too large: limit is 16777216 bytes"`) {
		t.Errorf("create with a 17 MiB body: %d %v %s", st, err, body)
	}
}

// slowClients opens n connections to addr from the loopback address src,
// each sending the first line of a request and no more.
func slowClients(t *testing.T, addr, src string, n int) []net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("slow connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		_, _ = io.WriteString(c, "GET /_ping HTTP/1.1\r\n") // a refused one may be closed already
		conns[i] = c
	}
	return conns
}

// readAll reads each connection until deadline and returns, for each, how
// long after the call the server closed it, or -1 if it stayed open.
func readAll(conns []net.Conn, deadline time.Time) []time.Duration {
	start := time.Now()
	out := make([]time.Duration, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(deadline)
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if err != nil && errors.As(err, &ne) && ne.Timeout() {
				out[i] = -1
				return
			}
			out[i] = time.Since(start)
		})
	}
	wg.Wait()
	return out
}
