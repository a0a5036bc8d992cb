package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chunked writes body in HTTP chunks of at most n bytes.
func chunked(body string, n int) string {
	var b strings.Builder
	for len(body) > 0 {
		k := min(n, len(body))
		fmt.Fprintf(&b, "%x\r\n%s\r\n", k, body[:k])
		body = body[k:]
	}
	return b.String()
}

// scanAll feeds wire to a scanner n bytes at a time and returns the events
// and the first error (nil if the wire ends without one).
func scanAll(wire string, n int, isChunked bool) ([]string, error) {
	sc := eventScanner{chunked: isChunked}
	for len(wire) > 0 {
		k := min(n, len(wire))
		err := sc.feed([]byte(wire[:k]))
		wire = wire[k:]
		if err != nil {
			return rawStrings(sc.events), err
		}
	}
	return rawStrings(sc.events), nil
}

func rawStrings(raws []json.RawMessage) []string {
	var out []string
	for _, r := range raws {
		out = append(out, string(r))
	}
	return out
}

// The event stream's values come out as the engine wrote them, however
// its chunks and its reads cut them.
func TestEventScannerFramesEvents(t *testing.T) {
	events := []string{
		`{"Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"name":"we}b\"{["}}}`,
		`{"a":"\\","b":["x",{"c":"]"}],"d":"\\\""}`,
		`[1,{"x":[]}]`,
		`{}`,
	}
	body := events[0] + "\n" + events[1] + "\r\n  " + events[2] + events[3] + "\n"
	for _, n := range []int{1, 2, 3, 7, 16, 100, len(body)} {
		for _, wire := range []string{chunked(body, n) + "0\r\n\r\n", chunked(body, n) + "0;ext=1\r\nTrailer: x\r\n\r\n"} {
			for _, read := range []int{1, 5, 64, len(wire)} {
				got, err := scanAll(wire, read, true)
				if err != io.EOF || !slices.Equal(got, events) {
					t.Fatalf("chunks of %d read %d at a time: %q, %v", n, read, got, err)
				}
			}
		}
	}
	for _, read := range []int{1, 5, len(body)} {
		if got, err := scanAll(body, read, false); err != nil || !slices.Equal(got, events) {
			t.Fatalf("not chunked, read %d at a time: %q, %v", read, got, err)
		}
	}
}

func TestEventScannerRefusesMalformed(t *testing.T) {
	for _, wire := range []string{
		"zz\r\n{}\r\n",                           // not a chunk size
		"2\r\n{}XX1\r\n{}\r\n",                   // no CRLF after a chunk
		chunked(`"text"`, 10),                    // not an object
		"1" + strings.Repeat(" ", 2000) + "\r\n", // a header without end
	} {
		if _, err := scanAll(wire, 3, true); err == nil || err == io.EOF {
			t.Errorf("%.40q: %v, want an error", wire, err)
		}
	}
	// A stream that ends within an event, or before its last chunk, ended
	// unexpectedly; one that is not chunked may end between events.
	for _, tc := range []struct {
		wire          string
		chunked, want bool
	}{{chunked(`{"a":1}`, 3), true, true}, {chunked(`{"a":1`, 3) + "0\r\n\r\n", true, true}, {`{"a":1}`, false, false}, {`{"a":1`, false, true}} {
		sc := eventScanner{chunked: tc.chunked}
		err := sc.feed([]byte(tc.wire))
		if err == nil {
			err = sc.end(io.EOF)
		}
		if got := errors.Is(err, io.ErrUnexpectedEOF); got != tc.want {
			t.Errorf("%q: %v", tc.wire, err)
		}
	}
}

// A stream whose answer is not chunked and has a length (a proxy's) is
// read through net/http.
func TestEventsOfAnswerWithLength(t *testing.T) {
	body := `{"Type":"container","Action":"die"}` + "\n"
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = io.WriteString(w, body)
	})
	evs, errc, err := e.openEvents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if raw := <-evs; string(raw) != strings.TrimSpace(body) {
		t.Errorf("event %s", raw)
	}
	if err := <-errc; err != io.EOF {
		t.Errorf("ended with %v, want EOF", err)
	}
}

// A goroutine reading an event stream waits on the stack goroutines start
// with: ten thousand engines each have one waiting.
// (Read through net/http's chunked reader and a JSON decoder it grew to
// 8 KiB and kept that.)
func TestEventReaderStackStaysSmall(t *testing.T) {
	// Other tests' goroutines still ending move the figures: a reader
	// that kept a grown stack shows in every attempt, a passing disturbance
	// in one.
	var reader, start int64
	for attempt := range 3 {
		if reader, start = readerStacks(t); raceEnabled || reader <= 2*start {
			break
		}
		t.Logf("attempt %d: each reader holds %d bytes of stack; goroutines start with %d", attempt+1, reader, start)
	}
	if raceEnabled {
		t.Logf("under -race: each reader holds %d bytes of stack, goroutines start with %d (not compared: the detector grows stacks)", reader, start)
		return
	}
	// (A few grow, when an allocation finds its span full: a reader that
	// kept a grown stack holds 4 KiB or more.)
	if reader > 2*start {
		t.Errorf("each reader holds %d bytes of stack; goroutines start with %d", reader, start)
	}
}

// readerStacks opens 200 event streams and says how much stack each
// reader holds once it waits for its next event, and how much a goroutine
// starts with.
func readerStacks(t *testing.T) (reader, start int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ev := `{"Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"image":"busybox","name":"web"}},"scope":"local","time":1,"timeNano":1}`
	answer := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(ev+"\n", 1000)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	go func() { // answers every stream at once, without a goroutine each
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			_, _ = io.WriteString(c, answer)
		}
	}()
	c, err := NewClient(ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// No collection from here on: it would change the starting size.
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	const n = 200
	block := make(chan struct{})
	defer close(block)
	s0 := stackInuse()
	for range n {
		go func() { <-block }()
	}
	s1 := stackInuse()
	var outs []chan json.RawMessage
	for range n {
		resp, err := c.openStream(ctx, "/events", 5e9)
		if err != nil {
			t.Fatal(err)
		}
		out := make(chan json.RawMessage, 16)
		go readEvents(ctx, resp, out, make(chan error, 1))
		outs = append(outs, out)
	}
	for _, out := range outs {
		if raw := <-out; string(raw) != ev {
			t.Fatalf("read %s", raw)
		}
	}
	// Each reader has read an event and waits for the next.
	return (stackInuse() - s1) / n, (s1 - s0) / n
}

func stackInuse() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.StackInuse)
}

// A reader keeps its connection, not the answer and its request: ten
// thousand streams held those for as long as they were open.
func TestEventReaderDropsAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+chunked("{}\n", 10))
		_, _ = io.Copy(io.Discard, c) // open until the reader closes it
	}()
	c, err := NewClient(ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := c.openStream(ctx, "/events", 5e9)
	if err != nil {
		t.Fatal(err)
	}
	dropped := make(chan struct{})
	runtime.AddCleanup(st.Response, func(ch chan struct{}) { close(ch) }, dropped)
	out := make(chan json.RawMessage, 16)
	go readEvents(ctx, st, out, make(chan error, 1))
	st = nil
	if raw := <-out; string(raw) != "{}" {
		t.Fatalf("read %s", raw)
	}
	for range 50 {
		runtime.GC()
		select {
		case <-dropped:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Error("the reader still holds the answer")
}
