package cluster

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/cluster/nodeapi"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
)

// TestNodeContactingIsUnknown: a node whose tunnel is up but whose engine
// the pool has not reached yet (just joined, or not in the pool yet)
// takes no task, so node ls shows it "unknown", as `shoal manage` shows an
// engine being contacted; Ready once the engine answered. CI saw a service
// created right after `node ls` showed two Ready nodes put both tasks on
// one: the other's engine was still being contacted.
func TestNodeContactingIsUnknown(t *testing.T) {
	sim, err := enginesim.Start(enginesim.Options{Name: "host1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	answer := make(chan struct{})
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		select {
		case <-answer:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return (&net.Dialer{}).DialContext(ctx, "tcp", sim.Addr())
	}
	pool := engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond, FailureRetry: 1, Timeout: 5 * time.Second}, nil)
	pool.RegisterScheme("tunnel", dial)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = pool.Run(ctx) }()

	c := &Cluster{cfg: Config{Pool: pool, DownAfter: time.Minute}, lastSeen: map[string]time.Time{}, names: map[string]string{}}
	r := nodeapi.Node{ID: "node1id", Hostname: "host1", Role: nodeapi.RoleWorker, Addr: "10.0.0.2"}
	state := func() swarm.NodeState {
		v := observation{now: time.Now(), connected: map[string]bool{r.ID: true}, engines: c.enginesByNode()}
		return c.swarmNode(r, v).Status.State
	}
	if s := state(); s != swarm.NodeStateUnknown {
		t.Errorf("up, not in the pool yet: %s, want unknown", s)
	}
	pool.Update([]string{"tunnel://" + r.ID})
	if s := state(); s != swarm.NodeStateUnknown {
		t.Errorf("up, its engine being contacted: %s, want unknown", s)
	}
	close(answer)
	deadline := time.Now().Add(10 * time.Second)
	for len(pool.Healthy()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s := state(); s != swarm.NodeStateReady {
		t.Errorf("up, its engine answered: %s, want ready", s)
	}
	v := observation{now: time.Now(), connected: map[string]bool{}, engines: c.enginesByNode()}
	if s := c.swarmNode(r, v).Status.State; s != swarm.NodeStateDown {
		t.Errorf("its tunnel down, never seen: %s, want down", s)
	}
	nopool := &Cluster{lastSeen: map[string]time.Time{}, names: map[string]string{}}
	if s := nopool.swarmNode(r, observation{now: time.Now(), connected: map[string]bool{r.ID: true}}).Status.State; s != swarm.NodeStateReady {
		t.Errorf("a cluster without a pool: %s, want ready", s)
	}
}
