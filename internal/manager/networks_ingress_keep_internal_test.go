package manager

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// TestKeepIngressReachesLateNodes: a node that joins after the ingress
// network was made gets its share of it (and its engine network) from the
// leader's loop, without a publishing task starting.
func TestKeepIngressReachesLateNodes(t *testing.T) {
	defer func(d time.Duration) { ingressKeepEvery = d }(ingressKeepEvery)
	ingressKeepEvery = 20 * time.Millisecond
	var sims []*enginesim.Engine
	for _, name := range []string{"early", "late"} {
		s, err := enginesim.Start(enginesim.Options{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		sims = append(sims, s)
	}
	pool := engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond, FailureRetry: 1, Timeout: 2 * time.Second}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = pool.Run(ctx) }()
	pool.Update([]string{sims[0].Addr()})
	st := storetest.Open(t)
	m := New(Config{Cluster: storeCluster{st: st}, Pool: pool, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	hasIngress := func(s *enginesim.Engine) bool {
		resp, err := http.Get("http://" + s.Addr() + "/networks")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var list []struct{ Name string }
		_ = json.NewDecoder(resp.Body).Decode(&list)
		return slices.ContainsFunc(list, func(n struct{ Name string }) bool { return n.Name == "ingress" })
	}
	waitUntil(t, "the first engine is healthy", func() bool { return len(pool.Healthy()) == 1 })
	done := make(chan error, 1)
	go func() { done <- m.KeepIngress(ctx) }()
	time.Sleep(3 * ingressKeepEvery)
	if hasIngress(sims[0]) {
		t.Fatal("an ingress engine network was made while the cluster has no ingress network")
	}
	in, err := m.ensureIngress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the first node has ingress", func() bool { return hasIngress(sims[0]) })
	pool.Update([]string{sims[0].Addr(), sims[1].Addr()})
	waitUntil(t, "the node that joined later has ingress", func() bool { return hasIngress(sims[1]) })
	nw, err := store.NewNetworks(st).Get(ctx, in.ID)
	if err != nil || len(nw.Slots) != 2 {
		t.Errorf("ingress shares %v %v, want one per node", nw.Slots, err)
	}
	vals := []int{}
	for _, s := range nw.Slots {
		vals = append(vals, s)
	}
	slices.Sort(vals)
	if len(vals) == 2 && vals[0] == vals[1] {
		t.Errorf("two nodes share one slot: %v", nw.Slots)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("KeepIngress: %v", err)
	}
}

// TestKeepIngressUnderManage: without cluster networks it returns at once.
func TestKeepIngressUnderManage(t *testing.T) {
	m := New(Config{Pool: engine.NewPool(engine.Options{}, nil)})
	if err := m.KeepIngress(t.Context()); err != nil {
		t.Errorf("KeepIngress under manage: %v", err)
	}
}
