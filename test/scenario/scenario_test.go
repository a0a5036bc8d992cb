package scenario_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/test/scenario"
	"github.com/shoal-dev/shoal/test/shoaltest"
)

// simEnv is three simulated engines, node1..node3, and shoal in-process.
func simEnv(t *testing.T) scenario.Env {
	t.Helper()
	fleet, err := enginesim.StartFleet(3, func(i int) enginesim.Options {
		return enginesim.Options{Name: fmt.Sprintf("node%d", i+1)}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })
	env := scenario.Env{Image: "busybox", Cmd: []string{"sleep", "300"}}
	// A closed simulated engine refuses connections, as a crashed host's dockerd.
	env.Kill = func(tb testing.TB, i int) { fleet.Engines[i].Close() }
	for _, e := range fleet.Engines {
		env.Engines = append(env.Engines, "tcp://"+e.Addr())
		env.Nodes = append(env.Nodes, e.Name())
	}
	env.Shoal = func(tb testing.TB, flags ...string) string {
		tb.Helper()
		args := append(append([]string{"manage", "--log-level", "error"}, flags...), fleet.NodesURI())
		s := shoaltest.Start(tb, shoaltest.Options{Args: args, InProcess: true})
		if err := s.WaitNodes(context.Background(), len(fleet.Engines), 10*time.Second); err != nil {
			tb.Fatal(err)
		}
		return s.Host
	}
	return env
}

func TestPlacement(t *testing.T) { scenario.Placement(t, simEnv(t)) }

func TestNameRaces(t *testing.T) { scenario.NameRaces(t, simEnv(t)) }

func TestLookups(t *testing.T) { scenario.Lookups(t, simEnv(t)) }

func TestRescheduling(t *testing.T) {
	if name, node := scenario.Rescheduling(t, simEnv(t)); name == "" || node == "node1" {
		t.Fatalf("Rescheduling returned %q on %q", name, node)
	}
}

func TestParallelReservations(t *testing.T) { scenario.ParallelReservations(t, simEnv(t), 3) }

func TestLinksApart(t *testing.T) { scenario.LinksApart(t, simEnv(t)) }
