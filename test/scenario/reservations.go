package scenario

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// ParallelReservations sends many `docker run -d --memory M` at once (create
// and start, no name, as the CLI does) through a shoal started with
// --overcommit 0, where M is a twelfth of the smallest engine's memory: the
// cluster holds exactly as many as fit, every other create is refused
// with the scheduler's "lack" explanation (503), and no engine holds more
// reservations than its memory. It runs the given rounds, emptying the
// engines between them, since a hole in reserving shows only sometimes
// (cheap over simulated engines; on real ones one round showed the old
// overshoot every time). It needs engines holding no containers of other
// tests that reserve memory.
func ParallelReservations(t *testing.T, env Env, rounds int) {
	c := newClient(t, env.Shoal(t, "--overcommit", "0"))
	mem, capOf := int64(0), make([]int, len(env.Engines))
	for i, e := range env.Engines {
		total := memTotal(t, e)
		if i == 0 || total/12 < mem {
			mem = total / 12
		}
	}
	want := 0
	for i, e := range env.Engines {
		capOf[i] = int(memTotal(t, e) / mem)
		want += capOf[i]
	}
	const parallel = 100
	for round := 1; round <= rounds; round++ {
		ids, refused := runParallel(t, c, env, mem, parallel)
		per := make([]int, len(env.Engines))
		for i, e := range env.Engines {
			per[i] = reservedOn(t, e, mem)
		}
		t.Logf("round %d: %d parallel runs of %d MiB: %d started, %d refused; per node %v (capacity %v)",
			round, parallel, mem>>20, len(ids), refused, per, capOf)
		if len(ids) != want || refused != parallel-want {
			t.Errorf("round %d: %d started and %d refused, want %d started (the capacity) and %d refused",
				round, len(ids), refused, want, parallel-want)
		}
		for i := range per {
			if per[i] > capOf[i] {
				t.Errorf("round %d: node %s holds %d containers of %d MiB, capacity %d", round, env.Nodes[i], per[i], mem>>20, capOf[i])
			}
		}
		removeAll(t, c, ids)
		if t.Failed() {
			return
		}
	}
}

// runParallel runs n containers reserving mem at once and returns the IDs
// of those created and how many were refused as not fitting. Any other
// answer fails the test.
func runParallel(t *testing.T, c *client, env Env, mem int64, n int) (ids []string, refused int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			s := env.spec()
			s.HostConfig.Memory = mem
			st, id, msg := c.create("", s)
			if st == http.StatusCreated {
				if st, b := c.do(http.MethodPost, "/containers/"+id+"/start", nil); st != http.StatusNoContent {
					t.Errorf("start %s: %d %s", id, st, b)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case st == http.StatusCreated:
				ids = append(ids, id)
			case st == http.StatusServiceUnavailable && strings.Contains(msg, "lack"):
				refused++
			default:
				t.Errorf("a parallel run: %d %q, want 201 or 503 (lack of memory)", st, msg)
			}
		})
	}
	wg.Wait()
	return ids, refused
}

// removeAll force-removes the containers, in parallel.
func removeAll(t *testing.T, c *client, ids []string) {
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			if st, b := c.do(http.MethodDelete, "/containers/"+id+"?force=1", nil); st != http.StatusNoContent && st != http.StatusNotFound {
				t.Errorf("remove %s: %d %s", id, st, b)
			}
		})
	}
	wg.Wait()
}

// memTotal is an engine's memory, asked directly.
func memTotal(t *testing.T, engine string) int64 {
	t.Helper()
	st, b := newClient(t, engine).do(http.MethodGet, "/info", nil)
	var info struct{ MemTotal int64 }
	if err := json.Unmarshal(b, &info); st != http.StatusOK || err != nil || info.MemTotal <= 0 {
		t.Fatalf("engine %s: info: %d %v %.200s", engine, st, err, b)
	}
	return info.MemTotal
}

// reservedOn counts the containers of an engine (asked directly) that are
// not stopped and reserve exactly mem bytes.
func reservedOn(t *testing.T, engine string, mem int64) int {
	t.Helper()
	ec := newClient(t, engine)
	st, b := ec.do(http.MethodGet, "/containers/json?all=1", nil)
	var cs []struct {
		ID    string `json:"Id"`
		State string
	}
	if err := json.Unmarshal(b, &cs); st != http.StatusOK || err != nil {
		t.Fatalf("engine %s: list: %d %v", engine, st, err)
	}
	n := 0
	for _, ct := range cs {
		if ct.State == "exited" || ct.State == "dead" {
			continue
		}
		st, b := ec.do(http.MethodGet, "/containers/"+ct.ID+"/json", nil)
		var in struct{ HostConfig struct{ Memory int64 } }
		if err := json.Unmarshal(b, &in); st != http.StatusOK || err != nil {
			t.Fatalf("engine %s: inspect %s: %d %v", engine, ct.ID, st, err)
		}
		if in.HostConfig.Memory == mem {
			n++
		}
	}
	return n
}
