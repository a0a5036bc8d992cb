package conformance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

// stream is one long-lived client connection through shoal.
type stream struct {
	kind, target string
	cancel       context.CancelFunc
	bytes        atomic.Int64
	done         chan struct{}
	err          error // io.EOF when the server ended it cleanly, io.ErrUnexpectedEOF when it cut it
	closedByUs   atomic.Bool
}

func (s *stream) read(r io.Reader) {
	defer close(s.done)
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		s.bytes.Add(int64(n))
		if err != nil {
			s.err = err
			return
		}
	}
}

var reGoroutines = regexp.MustCompile(`goroutine profile: total (\d+)`)

func goroutines(t *testing.T, addr string) int {
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatalf("pprof: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := reGoroutines.FindSubmatch(b)
	if m == nil {
		t.Fatalf("pprof: no goroutine total in %d bytes (status %s); is --debug on?", len(b), resp.Status)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestStreams opens a few hundred concurrent streams through shoal (logs -f,
// events, attach, stats), closes half from the client side, kills one
// engine, and checks that shoal ends the streams of that engine as the engine
// would (cut, not as a clean end), stays responsive and releases its
// goroutines. It runs last: it stops and restarts node3.
func TestStreams(t *testing.T) {
	ctx := ctxT(t, 4*time.Minute)
	s := shoaltest.Manage(t, poolNodes(), append([]string{"--debug"}, shoaltest.FastFlags...)...)
	t.Cleanup(func() {
		// Bring node3 back for anything that runs after.
		c, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if err := bed.Start(c, 2); err != nil {
			t.Logf("restart node3: %v", err)
		}
	})
	loop := "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.2; done"
	for _, c := range []struct{ name, node string }{{"st-a", "node2"}, {"st-b", "node3"}, {"st-c", "node3"}} {
		s.Docker(ctx, "rm", "-f", c.name)
		if _, e, err := s.Docker(ctx, "run", "-d", "--name", c.name, "-e", "constraint:node=="+c.node, "busybox", "sh", "-c", loop); err != nil {
			t.Fatalf("run %s: %v %s", c.name, err, e)
		}
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s.Docker(c, "rm", "-f", "st-a", "st-b", "st-c")
	})
	time.Sleep(500 * time.Millisecond)
	base := goroutines(t, s.Addr)
	t.Logf("goroutines before the streams: %d", base)

	tr := &http.Transport{MaxIdleConnsPerHost: -1, DisableKeepAlives: true}
	hc := &http.Client{Transport: tr}
	var streams []*stream
	var mu sync.Mutex
	open := func(kind, target, path string) {
		sctx, cancel := context.WithCancel(ctx)
		st := &stream{kind: kind, target: target, cancel: cancel, done: make(chan struct{})}
		mu.Lock()
		streams = append(streams, st)
		mu.Unlock()
		req, _ := http.NewRequestWithContext(sctx, "GET", "http://"+s.Addr+path, nil)
		resp, err := hc.Do(req)
		if err != nil {
			st.err = err
			close(st.done)
			return
		}
		if resp.StatusCode != 200 {
			st.err = fmt.Errorf("status %s", resp.Status)
			resp.Body.Close()
			close(st.done)
			return
		}
		go func() { st.read(resp.Body); resp.Body.Close() }()
	}
	openAttach := func(target string) {
		sctx, cancel := context.WithCancel(ctx)
		st := &stream{kind: "attach", target: target, cancel: cancel, done: make(chan struct{})}
		mu.Lock()
		streams = append(streams, st)
		mu.Unlock()
		conn, err := net.Dial("tcp", s.Addr)
		if err != nil {
			st.err = err
			close(st.done)
			return
		}
		go func() { <-sctx.Done(); conn.Close() }()
		fmt.Fprintf(conn, "POST /containers/%s/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: shoal\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n", target)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			st.err = fmt.Errorf("attach: %v %v", err, resp)
			close(st.done)
			return
		}
		go st.read(br)
	}

	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	add := func(f func()) {
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer wg.Done(); defer func() { <-sem }(); f() }()
	}
	for i := 0; i < 200; i++ {
		target := []string{"st-a", "st-b"}[i%2]
		add(func() { open("logs", target, "/containers/"+target+"/logs?follow=1&stdout=1&stderr=1&tail=1") })
	}
	for i := 0; i < 100; i++ {
		add(func() { open("events", "", "/events") })
	}
	for i := 0; i < 4; i++ {
		add(func() { openAttach("st-c") })
	}
	for i := 0; i < 10; i++ {
		target := []string{"st-a", "st-b"}[i%2]
		add(func() { open("stats", target, "/containers/"+target+"/stats?stream=1") })
	}
	wg.Wait()
	t.Logf("opened %d streams; goroutines now %d", len(streams), goroutines(t, s.Addr))
	// Events need something to happen.
	go func() {
		for i := 0; i < 3; i++ {
			s.Docker(ctx, "run", "--rm", "busybox", "true")
		}
	}()

	// Every stream gets data.
	deadline := time.Now().Add(20 * time.Second)
	for {
		silent := map[string]int{}
		failed := 0
		for _, st := range streams {
			select {
			case <-st.done:
				failed++
				silent[st.kind+" ended: "+fmt.Sprint(st.err)]++
				continue
			default:
			}
			if st.bytes.Load() == 0 {
				silent[st.kind]++
			}
		}
		if len(silent) == 0 {
			break
		}
		if time.Now().After(deadline) || failed > 0 {
			t.Errorf("streams without data after 20 s (or ended early): %v", silent)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	note("streams", "concurrency", fmt.Sprintf("%d streams receive data", len(streams)), status(!t.Failed()), "")

	// Close half from the client side.
	for i, st := range streams {
		if i%2 == 0 {
			st.closedByUs.Store(true)
			st.cancel()
		}
	}
	// Kill node3: the streams of st-b and st-c must end as from the dying
	// engine: an HTTP answer cut (unexpected EOF), not ended cleanly (a
	// client would take it for the container's end); a hijacked attach
	// as the engine's socket ends (EOF, or a reset).
	t0 := time.Now()
	if err := bed.Kill(2); err != nil {
		t.Fatalf("kill node3: %v", err)
	}
	onNode3 := func(st *stream) bool { return st.target == "st-b" || st.target == "st-c" }
	deadline = time.Now().Add(30 * time.Second)
	var pending []string
	for {
		pending = pending[:0]
		for _, st := range streams {
			if st.closedByUs.Load() || !onNode3(st) {
				continue
			}
			select {
			case <-st.done:
			default:
				pending = append(pending, st.kind+" "+st.target)
			}
		}
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(pending) > 0 {
		t.Errorf("BUG: %d streams of the killed engine still open after 30 s: %v", len(pending), counts(pending))
	} else {
		t.Logf("streams of the killed engine all ended within %v", time.Since(t0).Round(time.Millisecond))
	}
	unclean := map[string]int{}
	for _, st := range streams {
		if st.closedByUs.Load() || !onNode3(st) {
			continue
		}
		select {
		case <-st.done:
			cut := errors.Is(st.err, io.ErrUnexpectedEOF)
			if st.kind == "attach" {
				cut = errors.Is(st.err, io.EOF) || errors.Is(st.err, syscall.ECONNRESET)
			}
			if !cut {
				unclean[st.kind+": "+fmt.Sprint(st.err)]++
			}
		default:
		}
	}
	if len(unclean) > 0 {
		t.Errorf("BUG: streams of the killed engine did not end as cut (unexpected EOF): %v", unclean)
	}
	note("streams", "engine killed", "streams of the dead engine end cut, as the engine's", status(len(pending) == 0 && len(unclean) == 0), fmt.Sprintf("pending %v unclean %v", counts(pending), unclean))

	// The others (node2's logs/stats, events) stay open and keep flowing.
	time.Sleep(time.Second)
	var stuck, ended []string
	before := map[*stream]int64{}
	for _, st := range streams {
		if !st.closedByUs.Load() && !onNode3(st) {
			before[st] = st.bytes.Load()
		}
	}
	go func() {
		for i := 0; i < 3; i++ {
			s.Docker(ctx, "run", "--rm", "-e", "constraint:node==node2", "busybox", "true")
		}
	}()
	time.Sleep(4 * time.Second)
	for st, b := range before {
		select {
		case <-st.done:
			ended = append(ended, st.kind+": "+fmt.Sprint(st.err))
			continue
		default:
		}
		if st.bytes.Load() == b {
			stuck = append(stuck, st.kind)
		}
	}
	if len(ended) > 0 || len(stuck) > 0 {
		t.Errorf("streams of the live engine: ended %v, no new data %v", counts(ended), counts(stuck))
	}
	note("streams", "engine killed", "streams of the live engine keep flowing", status(len(ended)+len(stuck) == 0), fmt.Sprintf("ended %v stuck %v", counts(ended), counts(stuck)))

	// Still responsive.
	for _, p := range []string{"/_ping", "/containers/json", "/info"} {
		t1 := time.Now()
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + s.Addr + p)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("GET %s while streaming: %v %v", p, err, resp)
		} else {
			resp.Body.Close()
			t.Logf("GET %s while streaming: %v", p, time.Since(t1).Round(time.Millisecond))
		}
	}

	// Close everything; goroutines return near the baseline.
	for _, st := range streams {
		st.cancel()
	}
	var n int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if n = goroutines(t, s.Addr); n <= base+20 {
			break
		}
	}
	if n > base+20 {
		resp, _ := http.Get("http://" + s.Addr + "/debug/pprof/goroutine?debug=1")
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Errorf("BUG: goroutines %d after all streams closed, baseline %d; profile:\n%s", n, base, short2(string(b), 4000))
	} else {
		t.Logf("goroutines back to %d (baseline %d)", n, base)
	}
	note("streams", "cleanup", "goroutines back near the baseline", status(n <= base+20), fmt.Sprintf("baseline %d, after %d", base, n))
}

func status(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}

func counts(xs []string) map[string]int {
	m := map[string]int{}
	for _, x := range xs {
		m[x]++
	}
	return m
}

func short2(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return strings.TrimSpace(s)
}
