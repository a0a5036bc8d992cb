package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// startCluster creates m0 and joins m1..m(n-1) one after the other.
func startCluster(t *testing.T, c *testCA, n int) ([]*Store, []Config) {
	t.Helper()
	cfgs := []Config{c.config(t, "m0")}
	stores := []*Store{mustOpen(t, cfgs[0])}
	for i := 1; i < n; i++ {
		cfg := c.config(t, fmt.Sprintf("m%d", i), cfgs[0].ClientURL)
		start := time.Now()
		stores = append(stores, mustOpen(t, cfg))
		t.Logf("m%d joined (learner → voter) in %s", i, time.Since(start).Round(time.Millisecond))
		cfgs = append(cfgs, cfg)
	}
	return stores, cfgs
}

func leaderIndex(t *testing.T, stores []*Store) int {
	t.Helper()
	idx := -1
	eventually(t, 5*time.Second, "find leader", func() error {
		for i, s := range stores {
			if s != nil && s.IsLeader() {
				idx = i
				return nil
			}
		}
		return errors.New("no leader")
	})
	return idx
}

func checkMembers(t *testing.T, s *Store, want map[string]bool) {
	t.Helper()
	eventually(t, 5*time.Second, "members", func() error {
		ms, err := s.Members(context.Background())
		if err != nil {
			return err
		}
		got := map[string]bool{}
		leaders := 0
		for _, m := range ms {
			if m.Learner {
				return fmt.Errorf("%s still a learner", m.Name)
			}
			got[m.Name] = m.Reachable
			if m.Leader {
				leaders++
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || leaders != 1 {
			return fmt.Errorf("members %v (%d leaders), want %v", got, leaders, want)
		}
		return nil
	})
}

// TestCluster walks a 3-member cluster through the events the built-in
// cluster must survive: a learner joining and leaving, the leader dying,
// a member restarting from its data, and the loss of quorum.
func TestCluster(t *testing.T) {
	c := newTestCA(t)
	stores, cfgs := startCluster(t, c, 3)
	ctx := ctxT(t, 90*time.Second)
	checkMembers(t, stores[0], map[string]bool{"m0": true, "m1": true, "m2": true})
	if err := stores[2].Put(ctx, "/shoal/k/a", []byte("1")); err != nil {
		t.Fatal(err)
	}

	t.Run("join and remove", func(t *testing.T) {
		extra := mustOpen(t, c.config(t, "m3", cfgs[1].ClientURL))
		checkMembers(t, stores[1], map[string]bool{"m0": true, "m1": true, "m2": true, "m3": true})
		if err := stores[0].RemoveMember(ctx, "m3"); err != nil {
			t.Fatal(err)
		}
		extra.Close()
		checkMembers(t, stores[1], map[string]bool{"m0": true, "m1": true, "m2": true})
		if err := stores[0].RemoveMember(ctx, "m3"); !errors.Is(err, ErrNoMember) {
			t.Fatalf("remove twice: %v", err)
		}
	})

	dead := leaderIndex(t, stores)
	outer := t // members opened in a subtest must outlive it
	t.Run("leader failover", func(t *testing.T) {
		survivor := stores[(dead+1)%3]
		start := time.Now()
		kill(stores[dead])
		stores[dead] = nil
		took := eventually(t, 10*time.Second, "write after leader loss", func() error {
			wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			return survivor.Put(wctx, "/shoal/k/b", []byte("2"))
		})
		took = time.Since(start)
		t.Logf("FIGURE leader failover: writes accepted again %s after the leader was killed (heartbeat %s, election %s)",
			took.Round(time.Millisecond), testHeartbeat, testElection)
		if took > 3*time.Second {
			t.Errorf("failover took %s, target ≤ 3s", took)
		}
		name, ok := survivor.Leader()
		if !ok || name == cfgs[dead].Name {
			t.Fatalf("leader after failover = %q %v", name, ok)
		}
		want := map[string]bool{"m0": true, "m1": true, "m2": true}
		want[cfgs[dead].Name] = false
		checkMembers(t, survivor, want)
	})

	t.Run("restart with data", func(t *testing.T) {
		start := time.Now()
		stores[dead] = mustOpen(outer, cfgs[dead])
		t.Logf("m%d restarted from its data in %s", dead, time.Since(start).Round(time.Millisecond))
		eventually(t, 5*time.Second, "restarted member catches up", func() error {
			kv, err := stores[dead].Get(ctx, "/shoal/k/b")
			if err == nil && string(kv.Value) != "2" {
				err = fmt.Errorf("value %q", kv.Value)
			}
			return err
		})
		if _, err := stores[dead].Get(ctx, "/shoal/k/a"); err != nil {
			t.Fatal(err)
		}
		checkMembers(t, stores[dead], map[string]bool{"m0": true, "m1": true, "m2": true})
		if err := stores[dead].Put(ctx, "/shoal/k/c", []byte("3")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("quorum loss", func(t *testing.T) {
		// Kill the leader and one follower, keeping the other follower: the
		// harder case, since it must notice the silence on its own.
		lead := leaderIndex(t, stores)
		keep := (lead + 1) % 3
		other := (lead + 2) % 3
		eventually(t, 5*time.Second, "last write replicated", func() error {
			_, err := stores[keep].Get(ctx, "/shoal/k/c")
			return err
		})
		killStart := time.Now()
		kill(stores[lead])
		kill(stores[other])
		// Closing two members takes a while (listeners drain); their Raft
		// stopped at the start of it, so both figures are logged.
		start := time.Now()
		t.Logf("killing 2 members took %s", start.Sub(killStart).Round(time.Millisecond))
		var err error
		for time.Since(start) < 15*time.Second {
			t0 := time.Now()
			err = stores[keep].Put(ctx, "/shoal/k/d", []byte("4"))
			t.Logf("write after %s: %v (took %s)", time.Since(start).Round(time.Millisecond), err, time.Since(t0).Round(time.Millisecond))
			if errors.Is(err, ErrNoQuorum) {
				break
			}
		}
		took := time.Since(start)
		t.Logf("FIGURE quorum loss: first write failed with %q %s after 2 of 3 members were dead (%s after their Raft stopped; write timeout %s)",
			err, took.Round(time.Millisecond), time.Since(killStart).Round(time.Millisecond), testWriteTimeout)
		if !errors.Is(err, ErrNoQuorum) {
			t.Fatalf("write without quorum: %v", err)
		}
		if bound := testWriteTimeout + 2*testElection + time.Second; took > bound {
			t.Errorf("quorum loss detected after %s, bound %s", took, bound)
		}
		start = time.Now()
		err = stores[keep].Put(ctx, "/shoal/k/d", []byte("4"))
		t.Logf("FIGURE quorum loss: a later write fails in %s", time.Since(start).Round(time.Millisecond))
		if !errors.Is(err, ErrNoQuorum) {
			t.Fatalf("second write without quorum: %v", err)
		}
		kv, err := stores[keep].Get(ctx, "/shoal/k/c")
		if err != nil || string(kv.Value) != "3" {
			t.Fatalf("serializable read without quorum: %q %v", kv.Value, err)
		}
		if _, err := stores[keep].Get(ctx, "/shoal/k/c", Linearizable()); !errors.Is(err, ErrNoQuorum) {
			t.Fatalf("linearizable read without quorum: %v", err)
		}
		ms, err := stores[keep].Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Reachable != (m.Name == cfgs[keep].Name) || m.Leader {
				t.Errorf("member %+v after quorum loss", m)
			}
		}
	})
}
