package manager_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// BenchmarkInfo is `docker info` over 1,000 simulated engines of 30
// containers and 10 images each (issue 16), as dockerapi writes it:
// "unchanged" with no engine changed between calls, "one changed" with
// one engine's generation bumped before each call (as a reload or an
// event does); "Info unchanged" copies the answer into one slice. SHOAL_INFO_ENGINES=10000 runs it at 10,000 engines (about
// 2 GiB and several minutes to load: run it under the bench lock).
//
//	go test -run '^$' -bench '^BenchmarkInfo$' -benchmem ./internal/manager/
func BenchmarkInfo(b *testing.B) {
	engines := 1000
	if n, err := strconv.Atoi(os.Getenv("SHOAL_INFO_ENGINES")); err == nil && n > 0 {
		engines = n
	}
	pool, addrs := pipeFleet(b, engines, enginesim.Options{Containers: 24, Stopped: 6, Images: 10})
	m := manager.New(manager.Config{Pool: pool, Placer: scheduler.New(nil, scheduler.Options{})})
	ctx := context.Background()
	first, err := m.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(first)), "bytes")
	// As dockerapi writes it: InfoTo, written out.
	call := func() {
		info, err := m.InfoTo(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := info.WriteTo(io.Discard); err != nil || n < int64(len(first))/2 {
			b.Fatal(n, err)
		}
	}
	b.Run("unchanged", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			call()
		}
	})
	b.Run("one changed", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			avail := "active" // each engine in turn, drained on every other pass
			if i/len(addrs)%2 == 0 {
				avail = "drain"
			}
			pool.SetAvailability(addrs[i%len(addrs)], avail)
			call()
		}
	})
	// Info: the answer copied into one slice, as other callers get it.
	b.Run("Info unchanged", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			info, err := m.Info(ctx)
			if err != nil || len(info) < len(first)/2 {
				b.Fatal(len(info), err)
			}
			_ = append(info, '\n') // as dockerapi wrote it
		}
	})
}

// pipeFleet starts n simulated engines reached over in-memory pipes
// ("sim://<name>"), so that 10,000 of them fit in one process's open-files
// limit, and a pool over them; it waits until every container is cached.
func pipeFleet(b *testing.B, n int, o enginesim.Options) (*engine.Pool, []string) {
	f, err := enginesim.StartFleet(n, func(int) enginesim.Options { return o })
	if err != nil {
		b.Fatal(err)
	}
	byName := make(map[string]*enginesim.Engine, n)
	addrs := make([]string, n)
	for i, e := range f.Engines {
		byName[e.Name()] = e
		addrs[i] = "sim://" + e.Name()
	}
	ln := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	type key struct{}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Context().Value(key{}).(*enginesim.Engine).ServeHTTP(w, r)
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, key{}, c.(*pipeConn).e)
		},
	}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { srv.Close(); f.Close() })

	pool := engine.NewPool(engine.Options{RefreshInterval: time.Minute, Timeout: 30 * time.Second}, nil)
	pool.RegisterScheme("sim", func(ctx context.Context, name string) (net.Conn, error) {
		e := byName[name]
		if e == nil {
			return nil, errors.New("no simulated engine " + name)
		}
		client, server := net.Pipe()
		select {
		case ln.conns <- &pipeConn{Conn: server, e: e}:
			return client, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pool.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	pool.Update(addrs)
	want := n * (o.Containers + o.Stopped)
	total := func() (c int) {
		for _, e := range pool.Healthy() {
			c += len(e.Containers())
		}
		return c
	}
	for deadline := time.Now().Add(10 * time.Minute); total() != want; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d containers cached", total(), want)
		}
	}
	for _, e := range pool.Engines() { // and every engine's images
		for deadline := time.Now().Add(time.Minute); len(e.Images()) != o.Images; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%s: %d images", e.Addr, len(e.Images()))
			}
		}
	}
	return pool, addrs
}

type pipeConn struct {
	net.Conn
	e *enginesim.Engine
}

type pipeListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
