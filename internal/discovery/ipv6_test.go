package discovery_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/discovery"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
)

// TestIPv6AddressesReachTheirEngine: the IPv6 forms discovery now accepts
// are addresses the engine package dials, and the pool holds the engine at
// them with its IPv6 address as the node's IP.
func TestIPv6AddressesReachTheirEngine(t *testing.T) {
	sim, err := enginesim.Start(enginesim.Options{Addr: "[::1]:0", Containers: 2})
	if err != nil {
		t.Fatalf("an engine on [::1] (IPv6 loopback is needed): %v", err)
	}
	t.Cleanup(func() { sim.Close() })
	_, port, _ := net.SplitHostPort(sim.Addr())
	addrs, err := discovery.ParseList(strings.Split(fmt.Sprintf("tcp://[::1]:%s\n[0:0:0:0:0:0:0:1]:[%s:%s]", port, port, port), "\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		network, address, err := engine.ParseAddr(a)
		if err != nil || network != "tcp" || address != sim.Addr() && address != "[0:0:0:0:0:0:0:1]:"+port {
			t.Fatalf("ParseAddr(%q) = %q %q %v", a, network, address, err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond}, nil)
	pool.Update(addrs)
	done := make(chan struct{})
	go func() { defer close(done); pool.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for len(pool.Healthy()) != 2 {
		if time.Now().After(deadline) {
			for _, e := range pool.Engines() {
				s, msg := e.State()
				t.Logf("%s: %v %s", e.Addr, s, msg)
			}
			t.Fatalf("%d of the engines at %v healthy", len(pool.Healthy()), addrs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, e := range pool.Healthy() {
		if e.IP != "::1" || len(e.Containers()) != 2 {
			t.Errorf("engine %s: IP %q, %d containers; want ::1 and 2", e.Addr, e.IP, len(e.Containers()))
		}
	}
}
