package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

// TestRejoinLeaveRemove: a worker restarted with `shoal join` and no token
// resumes its membership (issue 10 #6); a worker leaves with shoal leave
// and shows Down, a manager leaves only with --force (#1); a removed
// worker is told so, says it once and stops, and the manager logs the
// refusal (E).
func TestRejoinLeaveRemove(t *testing.T) {
	top := t // processes started in subtests outlive them
	base := t.TempDir()
	mgr, api := initManager(t, base)
	token, err := shoalCmd(t, "join-token", "-H", api, "-q", "worker")
	if err != nil {
		t.Fatal(err)
	}
	joinAddr := bed.Engines[0].IP + ":2377"
	workers := map[int]*host{}
	for _, i := range []int{1, 2} {
		w := &host{i: i, dir: filepath.Join(base, fmt.Sprintf("w%d", i))}
		w.args = append(append([]string{"join", "--token", token}, nodeArgs(i, w.dir)...), joinAddr)
		w.p = startShoal(t, i, fmt.Sprintf("worker%d", i), w.args...)
		workers[i] = w
	}
	waitReady := func(t *testing.T, n int) {
		t.Helper()
		shoaltest.Eventually(t, 40*time.Second, fmt.Sprintf("%d Ready nodes", n), func() error {
			if got, out := readyNodes(t, api); got != n {
				return fmt.Errorf("%d ready:\n%s", got, out)
			}
			return nil
		})
	}
	waitReady(t, 3)

	t.Run("rejoin without a token", func(t *testing.T) {
		w := workers[1]
		id := strings.TrimSpace(docker(t, api, "node", "inspect", "node2", "--format", "{{.ID}}"))
		for _, args := range [][]string{
			append(append([]string{"join"}, nodeArgs(1, w.dir)...), joinAddr), // the manager address, no token
			append([]string{"join"}, nodeArgs(1, w.dir)...),                   // nothing but the data dir
		} {
			w.p.Kill()
			w.p = startShoal(top, 1, "worker1-resumed", args...)
			shoaltest.Eventually(t, 20*time.Second, "tunnel up", func() error {
				if !strings.Contains(w.p.Output(), "tunnel up") {
					return fmt.Errorf("not yet:\n%s", w.p.LogTail(5))
				}
				return nil
			})
			waitReady(t, 3)
			if got := strings.TrimSpace(docker(t, api, "node", "inspect", "node2", "--format", "{{.ID}}")); got != id {
				t.Fatalf("shoal join %v came back as node %s, want %s", args[len(args)-1], got, id)
			}
			if out := w.p.Output(); strings.Contains(out, "--advertise is required") || !strings.Contains(out, "cluster node restarted") {
				t.Fatalf("shoal join %v was taken for a key-value join:\n%s", args, w.p.LogTail(5))
			}
		}
		if out, err := shoalCmd(t, append([]string{"join"}, nodeArgs(3, filepath.Join(base, "empty"))...)...); err == nil || !strings.Contains(out+err.Error(), "holds no cluster membership") {
			t.Errorf("shoal join without token on an empty data dir: %v %s", err, out)
		}
	})

	t.Run("removed worker stops", func(t *testing.T) {
		w := workers[1]
		docker(t, api, "node", "rm", "--force", "node2")
		exited, code := w.p.Wait(20 * time.Second)
		if !exited || code == 0 {
			t.Fatalf("the removed worker: exited %v code %d\n%s", exited, code, w.p.LogTail(10))
		}
		out := w.p.Output()
		if n := strings.Count(out, "level=ERROR msg=\"stopping: this node was removed from the cluster\""); n != 1 {
			t.Errorf("the removed worker said it %d times, want once:\n%s", n, w.p.LogTail(10))
		}
		shoaltest.Eventually(t, 10*time.Second, "the manager logs the refusal", func() error {
			if n := strings.Count(mgr.p.Output(), "refused a node removed from the cluster"); n != 1 {
				return fmt.Errorf("logged %d times", n)
			}
			return nil
		})
		// Restarted (as a supervisor would), it stops again with the same reason.
		w.p = startShoal(top, 1, "worker1-removed", append([]string{"join"}, nodeArgs(1, w.dir)...)...)
		if exited, code := w.p.Wait(20 * time.Second); !exited || code == 0 || !strings.Contains(w.p.Output(), "removed from the cluster") {
			t.Fatalf("the removed worker restarted: exited %v code %d\n%s", exited, code, w.p.LogTail(10))
		}
		if n := strings.Count(mgr.p.Output(), "refused a node removed from the cluster"); n != 1 {
			t.Errorf("the manager logged the refusal %d times within a minute, want once (rate-limited)", n)
		}
	})

	t.Run("worker leaves", func(t *testing.T) {
		w := workers[2]
		out, err := shoalCmd(t, "leave", "--data-dir", w.dir)
		if err != nil || !strings.Contains(out, "Node left the swarm.") {
			t.Fatalf("shoal leave: %q %v", out, err)
		}
		if exited, code := w.p.Wait(15 * time.Second); !exited || code != 0 {
			t.Fatalf("the worker that left: exited %v code %d\n%s", exited, code, w.p.LogTail(10))
		}
		if _, err := os.Stat(filepath.Join(w.dir, "state.json")); !os.IsNotExist(err) {
			t.Errorf("the membership is still in the data dir: %v", err)
		}
		if st := strings.TrimSpace(docker(t, api, "node", "inspect", "node3", "--format", "{{.Status.State}}")); st != "down" {
			t.Errorf("the worker that left is %q, want down", st)
		}
		docker(t, api, "node", "rm", "node3") // Down: no --force needed
	})

	t.Run("manager leaves only with --force", func(t *testing.T) {
		out, err := dockerErr(api, "swarm", "leave")
		if err == nil || !strings.Contains(out, "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.") {
			t.Fatalf("docker swarm leave on the last manager: %v %s", err, out)
		}
		out, err = dockerErr(api, "swarm", "leave", "--force")
		if err != nil || !strings.Contains(out, "Node left the swarm.") {
			t.Fatalf("docker swarm leave --force: %v %s", err, out)
		}
		if exited, code := mgr.p.Wait(15 * time.Second); !exited || code != 0 {
			t.Fatalf("the manager that left: exited %v code %d\n%s", exited, code, mgr.p.LogTail(10))
		}
		if _, err := os.Stat(filepath.Join(mgr.dir, "state.json")); !os.IsNotExist(err) {
			t.Errorf("the membership is still in the data dir: %v", err)
		}
	})
}
