package federation

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A member lost (its shoal process killed, as a WAN partition would cut
// it off): the top serves the rest, warns in info, shows the member's
// containers Host Down, and replaces a service's task there on the other
// member; the member's engine keeps running its containers. The member
// back, everything reconciles: its container is up again above and the
// service runs its replicas once, not twice.
func TestMemberLoss(t *testing.T) {
	removeAt(t, "fdown")
	t.Cleanup(func() { run(context.Background(), top.Host, nil, "service", "rm", "floss") })
	dk(t, top.Host, "run", "-d", "--name", "fdown", "-e", "constraint:region==us", "busybox", "sleep", "1d")
	dk(t, top.Host, "service", "create", "-d", "--name", "floss", "--replicas", "2", "--stop-signal", "SIGKILL", "--no-resolve-image", "busybox", "sleep", "1d")
	waitFor(t, 60*time.Second, "floss on both members", func() error {
		if got := runningOn(t, top.Host, "floss"); got != "siteA siteB" {
			return fmt.Errorf("running on %q", got)
		}
		return nil
	})

	siteB.Kill()
	t.Cleanup(func() {
		if !siteB.Alive() {
			_ = siteB.Restart()
		}
	})
	waitFor(t, 30*time.Second, "the top to warn of siteB and show fdown Host Down", func() error {
		var warned bool
		for _, w := range info(t.Context(), top.Host).Warnings {
			warned = warned || strings.Contains(w, "siteB")
		}
		if !warned {
			return fmt.Errorf("no warning naming siteB in the top's info")
		}
		if st := dk(t, top.Host, "ps", "-a", "--filter", "name=fdown", "--format", "{{.Status}}"); st != "Host Down" {
			return fmt.Errorf("fdown at the top: %q", st)
		}
		return nil
	})
	// The rest is served, from the top and from world.
	for _, host := range []string{top.Host, world.Host} {
		if out := dk(t, host, "run", "--rm", "busybox", "echo", "still-here"); out != "still-here" {
			t.Errorf("run at %s with siteB down: %q", host, out)
		}
	}
	// siteB's engine goes on without it.
	if st := dk(t, eng("e3"), "inspect", "-f", "{{.State.Status}}", "fdown"); st != "running" {
		t.Errorf("fdown on e3 while siteB is down: %s", st)
	}
	waitFor(t, 60*time.Second, "floss's siteB task replaced on siteA", func() error {
		if got := runningOn(t, top.Host, "floss"); got != "siteA siteA" {
			return fmt.Errorf("running on %q", got)
		}
		return nil
	})

	if err := siteB.Restart(); err != nil {
		t.Fatal(err)
	}
	// The service moves back toward an even spread (a new task started on
	// siteB before one on siteA stops: three run for a moment), and then
	// runs exactly its two replicas.
	waitFor(t, 60*time.Second, "siteB back and fdown up at the top, floss back on both members, twice exactly", func() error {
		if st := dk(t, top.Host, "ps", "-a", "--filter", "name=fdown", "--format", "{{.Status}}"); !strings.HasPrefix(st, "Up ") {
			return fmt.Errorf("fdown at the top: %q", st)
		}
		if w := info(t.Context(), top.Host).Warnings; len(w) != 0 {
			return fmt.Errorf("top warnings %q", w)
		}
		if got := runningOn(t, top.Host, "floss"); got != "siteA siteB" {
			return fmt.Errorf("floss running on %q", got)
		}
		return flossOnce(t)
	})
	// Settled: nothing is left running twice (the stale copy on e3 was
	// removed, the task moved back to siteB and the one it replaced stopped).
	time.Sleep(2 * time.Second)
	if err := flossOnce(t); err != nil {
		t.Error(err)
	}
}

// flossOnce checks that exactly two floss containers run on the engines
// and that the top shows two running tasks.
func flossOnce(t *testing.T) error {
	n := 0
	for _, e := range []string{"e1", "e2", "e3"} {
		n += len(names(t, eng(e), "--filter", "label=com.docker.swarm.service.name=floss", "--filter", "status=running"))
	}
	if n != 2 {
		return fmt.Errorf("%d floss containers run on the engines; want 2", n)
	}
	if got := runningOn(t, top.Host, "floss"); len(strings.Fields(got)) != 2 {
		return fmt.Errorf("floss tasks running on %q; want 2", got)
	}
	return nil
}
