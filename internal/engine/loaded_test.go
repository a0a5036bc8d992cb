package engine

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// Options.Loaded is called once, when every engine of the pool's first
// addresses has ended its first load (one that cannot be reached counts
// once its connect failed), with every container then cached, before
// the last engine is marked Healthy; an engine added later does not call
// it again.
func TestLoadedOnceAfterTheFirstLoads(t *testing.T) {
	const n, each = 4, 5
	f, err := enginesim.StartFleet(n+1, func(int) enginesim.Options { return enginesim.Options{Containers: each} })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String() // nothing answers there
	ln.Close()

	var p *Pool
	var calls, cachedThen, healthyThen atomic.Int32
	p = NewPool(Options{RefreshInterval: 50e6, Timeout: 2e9, FailureRetry: 1, Loaded: func() {
		calls.Add(1)
		cached := 0
		for _, e := range p.Engines() {
			cached += len(e.Containers())
		}
		cachedThen.Store(int32(cached))
		healthyThen.Store(int32(len(p.Healthy())))
	}}, nil)
	first := append(f.Addrs()[:n:n], gone)
	p.Update(first)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "engines healthy", func() bool { return len(p.Healthy()) == n })
	waitFor(t, "Loaded called", func() bool { return calls.Load() > 0 })
	if got := cachedThen.Load(); got != n*each {
		t.Errorf("Loaded saw %d containers cached, want all %d", got, n*each)
	}
	if got := healthyThen.Load(); got > n-1 {
		t.Errorf("Loaded saw %d engines healthy, want the last one not marked yet (at most %d)", got, n-1)
	}
	p.Add(f.Addrs()[n])
	waitFor(t, "the engine added later healthy", func() bool { return len(p.Healthy()) == n+1 })
	if c := calls.Load(); c != 1 {
		t.Errorf("Loaded called %d times, want once", c)
	}
}

// A first engine removed before its load ended counts as ended, once.
func TestLoadedRemovedBeforeLoading(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() }) // accepts, never answers: the connect waits
	var calls atomic.Int32
	p := NewPool(Options{Timeout: 30e9, Loaded: func() { calls.Add(1) }}, nil)
	p.Update([]string{ln.Addr().String()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the engine started", func() bool { return len(p.Engines()) == 1 })
	if c := calls.Load(); c != 0 {
		t.Fatalf("Loaded called %d times while the engine connects", c)
	}
	p.Update(nil) // removed while it connects
	waitFor(t, "Loaded called", func() bool { return calls.Load() == 1 })
	p.Update([]string{ln.Addr().String()})
	p.Update(nil)
	if c := calls.Load(); c != 1 {
		t.Errorf("Loaded called %d times, want once", c)
	}
}
