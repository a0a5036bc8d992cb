package e2e

import (
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/scenario"
)

// realEnv is the shared Bed and the shared shoal as a test/scenario
// environment (shoals with other flags are started per scenario).
func realEnv() scenario.Env {
	env := scenario.Env{Image: "busybox", Cmd: []string{"sleep", "300"}}
	for _, e := range bed.Engines {
		env.Engines = append(env.Engines, e.TCPAddr)
		env.Nodes = append(env.Nodes, e.Hostname)
	}
	env.Shoal = func(tb testing.TB, flags ...string) string {
		if len(flags) == 0 {
			return sh.Host
		}
		tb.Helper()
		s := startShoalT(tb, "nodes://"+bed.Engines[0].TCPAddr+","+bed.Engines[1].TCPAddr+","+bed.Engines[2].TCPAddr, flags...)
		if err := s.WaitNodes(ctxT(tb, time.Minute), len(bed.Engines), 30*time.Second); err != nil {
			tb.Fatal(err)
		}
		return s.Host
	}
	return env
}

func TestScenarioNameRaces(t *testing.T) { scenario.NameRaces(t, realEnv()) }

func TestScenarioLookups(t *testing.T) { scenario.Lookups(t, realEnv()) }
