package discovery

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

// TestJoinListTTL: entries that `shoal join` registers show in `shoal
// list`; a join that dies (SIGKILL) leaves its entry to expire after --ttl;
// one that is stopped removes its entry at once.
func TestJoinListTTL(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			s := startStore(t, kind)
			if got := list(t, s.uri); len(got) != 0 {
				t.Fatalf("empty store: list = %v", got)
			}
			a := join(t, s.uri, "10.99.0.1:2375")
			b := join(t, s.uri, "10.99.0.2:2375")
			shoaltest.Eventually(t, 10*time.Second, "both entries listed", func() error {
				if got := list(t, s.uri); !slices.Equal(got, []string{"10.99.0.1:2375", "10.99.0.2:2375"}) {
					return fmt.Errorf("list = %v", got)
				}
				return nil
			})
			// Heartbeats keep the entries past the TTL.
			time.Sleep(3 * time.Second)
			if got := list(t, s.uri); len(got) != 2 {
				t.Fatalf("after 3s of heartbeats: list = %v", got)
			}
			a.Kill()
			t0 := time.Now()
			shoaltest.Eventually(t, 15*time.Second, "killed join's entry expires", func() error {
				if got := list(t, s.uri); !slices.Equal(got, []string{"10.99.0.2:2375"}) {
					return fmt.Errorf("list = %v", got)
				}
				return nil
			})
			expiry := time.Since(t0)
			t.Logf("%s: entry of a killed join (ttl 2s) gone after %s", kind, expiry.Round(10*time.Millisecond))
			if expiry < time.Second {
				t.Errorf("entry went after %s, before its TTL could run out", expiry)
			}
			b.Stop()
			t0 = time.Now()
			shoaltest.Eventually(t, 5*time.Second, "stopped join's entry removed", func() error {
				if got := list(t, s.uri); len(got) != 0 {
					return fmt.Errorf("list = %v", got)
				}
				return nil
			})
			t.Logf("%s: entry of a stopped join gone after %s", kind, time.Since(t0).Round(10*time.Millisecond))
		})
	}
}

// TestPoolFollowsStore: a manager's pool is what the store holds; engines
// join and leave without a restart.
func TestPoolFollowsStore(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			s := startStore(t, kind)
			m := startManager(t, "manager", s.uri)
			wantPool(t, m, 5*time.Second)
			j0 := join(t, s.uri, engineAddr(0))
			wantPool(t, m, 15*time.Second, 0)
			j1 := join(t, s.uri, engineAddr(1))
			t0 := time.Now()
			wantPool(t, m, 15*time.Second, 0, 1)
			t.Logf("%s: joined engine in the pool after %s", kind, time.Since(t0).Round(10*time.Millisecond))
			if out, err := m.docker(t, "", "run", "--rm", "busybox", "echo", "hi"); err != nil || strings.TrimSpace(out) != "hi" {
				t.Fatalf("docker run: %q %v", out, err)
			}
			j1.Kill()
			t0 = time.Now()
			wantPool(t, m, 15*time.Second, 0)
			t.Logf("%s: engine of a killed join (ttl 2s) left the pool after %s", kind, time.Since(t0).Round(10*time.Millisecond))
			j0.Stop()
			wantPool(t, m, 15*time.Second)
		})
	}
}

// TestStoreOutage: while the store is down the manager keeps its engines
// and serves; when the store is back it catches up with what changed.
func TestStoreOutage(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			s := startStore(t, kind)
			m := startManager(t, "manager", s.uri)
			join(t, s.uri, engineAddr(0))
			j1 := join(t, s.uri, engineAddr(1))
			wantPool(t, m, 15*time.Second, 0, 1)
			s.crash()
			// Longer than the joins' TTL, the manager's session TTL and
			// several resync rounds of the watch.
			deadline := time.Now().Add(6 * time.Second)
			for time.Now().Before(deadline) {
				got, err := m.nodes()
				if err != nil || len(got) != 2 {
					t.Fatalf("store down: pool = %v, %v; want the 2 engines kept", got, err)
				}
				time.Sleep(500 * time.Millisecond)
			}
			if out, err := m.docker(t, "", "ps", "-a"); err != nil {
				t.Fatalf("store down: docker ps: %v: %s", err, out)
			}
			// A change while the store is away: engine 1's join dies.
			j1.Kill()
			s.restart(t)
			t0 := time.Now()
			wantPool(t, m, 30*time.Second, 0)
			t.Logf("%s: after the store came back, the pool caught up in %s", kind, time.Since(t0).Round(10*time.Millisecond))
			if got := list(t, s.uri); !slices.Equal(got, []string{engineAddr(0)}) {
				t.Errorf("list after outage = %v", got)
			}
		})
	}
}
