package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

// hungBound is how long a call through shoal may take while an engine is
// hung (SIGSTOP: its kernel accepts connections, nothing answers). Before
// shoal bounded its waits, these calls waited until the client gave up.
const hungBound = 20 * time.Second

// TestHungEngine stops one of two engines with SIGSTOP under two shoals:
// one with the default health figures, which must mark it Down within a
// few seconds, and one that never gives up on an engine
// (--engine-failure-retry 1000), where the engine stays Healthy and every
// call must still answer without it: lists with the other engine's
// objects (volume ls with a warning naming the node), a `docker run` that
// spread places on it moves to the other engine, one pinned to it fails
// with a 503 naming it, and once the engine resumes what the abandoned
// creates made there is removed, so the name is free again.
func TestHungEngine(t *testing.T) {
	tb := testbed.MustStart(t, testbed.Options{Engines: 2, Prefix: bedPrefix})
	ctx := ctxT(t, 5*time.Minute)
	if err := tb.LoadBusyboxAll(ctx); err != nil {
		t.Fatal(err)
	}
	disc := "nodes://" + tb.Engines[0].TCPAddr + "," + tb.Engines[1].TCPAddr
	patient := shoaltest.Start(t, shoaltest.Options{Name: "patient", Args: []string{"manage", "--engine-failure-retry", "1000", disc}})
	defaults := shoaltest.Start(t, shoaltest.Options{Name: "defaults", Args: []string{"manage", disc}})
	for _, s := range []*shoaltest.Shoal{patient, defaults} {
		if err := s.WaitNodes(ctx, 2, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	live, hung := tb.Engines[0].Hostname, tb.Engines[1].Hostname
	for _, h := range []string{live, hung} {
		dkOn(t, patient.Host, "volume", "create", h+"/hv-"+h)
		dkOn(t, patient.Host, "network", "create", h+"/hn-"+h)
	}

	// Time to Down under the default figures, measured in the background.
	downAfter := make(chan time.Duration, 1)
	t0 := time.Now()
	if err := tb.Pause(1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Resume(1) })
	go func() {
		for time.Since(t0) < time.Minute && ctx.Err() == nil {
			if ns, err := defaults.Nodes(ctx); err == nil {
				for _, n := range ns {
					if n.Description.Hostname == hung && strings.EqualFold(n.Status.State, "down") {
						downAfter <- time.Since(t0)
						return
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		close(downAfter)
	}()

	timed := func(s *shoaltest.Shoal, args ...string) (string, string, time.Duration, error) {
		cctx, cancel := context.WithTimeout(ctx, hungBound)
		defer cancel()
		t1 := time.Now()
		so, se, err := runDocker2(cctx, dockerCmd{host: s.Host, args: args})
		took := time.Since(t1)
		t.Logf("%s with a hung engine: %s (exit: %v)", strings.Join(args[:min(2, len(args))], " "), took.Round(time.Millisecond), err)
		if cctx.Err() != nil {
			t.Errorf("docker %s with a hung engine: no answer in %s", strings.Join(args, " "), hungBound)
		}
		return so, se, took, err
	}

	// A run spread places on the hung engine moves to the live one; try
	// twice so at least one is placed there whatever the first pick.
	var runs []string
	for i := range 2 {
		name := uniq("hung-run")
		runs = append(runs, name)
		if _, _, _, err := timed(patient, "run", "-d", "--name", name, "busybox", "sleep", "300"); err != nil {
			t.Errorf("run %d with a hung engine: %v", i, err)
		}
	}
	if !strings.Contains(patient.LogTail(400), "create moved off a node that does not answer") {
		t.Errorf("no create was moved off the hung engine:\n%s", patient.LogTail(60))
	}
	// A run that only the hung engine may take fails, naming it.
	pinned := uniq("hung-pin")
	_, se, _, err := timed(patient, "run", "-d", "--name", pinned, "-e", "constraint:node=="+hung, "busybox", "sleep", "300")
	if err == nil || !strings.Contains(se, "node "+hung) || !strings.Contains(se, "does not answer") {
		t.Errorf("run pinned to the hung engine: %v %q", err, se)
	}

	out, _, _, err := timed(patient, "images", "--format", "{{.Repository}}")
	if err != nil || !strings.Contains(out, "busybox") {
		t.Errorf("images with a hung engine: %v %q", err, out)
	}
	out, _, _, err = timed(patient, "network", "ls", "--format", "{{.Name}}")
	// Listed under the names given (one line each).
	if err != nil || !strings.Contains("\n"+out, "\nhn-"+live+"\n") {
		t.Errorf("network ls with a hung engine: %v %q", err, out)
	}
	out, _, _, err = timed(patient, "volume", "ls", "--format", "{{.Name}}")
	if err != nil || !strings.Contains("\n"+out, "\nhv-"+live+"\n") || strings.Contains("\n"+out, "\nhv-"+hung+"\n") {
		t.Errorf("volume ls with a hung engine: %v %q", err, out)
	}
	if _, _, _, err = timed(patient, "system", "df"); err != nil {
		t.Errorf("system df with a hung engine: %v", err)
	}
	// The volume list's reply carries the warning.
	cctx, cancel := context.WithTimeout(ctx, hungBound)
	st, _, body, err := patient.Do(cctx, "GET", "/v1.41/volumes", nil, nil)
	cancel()
	var vl struct{ Warnings []string }
	if err != nil || st != 200 || json.Unmarshal(body, &vl) != nil {
		t.Errorf("GET /volumes with a hung engine: %d %v %s", st, err, body)
	} else if w := strings.Join(vl.Warnings, "\n"); !strings.Contains(w, "WARNING: node "+hung) {
		t.Errorf("GET /volumes warnings %q: want one naming %s", vl.Warnings, hung)
	}

	if d, ok := <-downAfter; !ok {
		t.Errorf("the hung engine is not Down a minute after it stopped (default figures)")
	} else {
		t.Logf("hung engine Down after %s under the default figures", d.Round(time.Millisecond))
		if d > 12*time.Second {
			t.Errorf("the hung engine took %s to be Down (default figures: 6-8 s)", d)
		}
	}
	// Once Down, lists skip it at once.
	if _, _, took, err := timed(defaults, "volume", "ls"); err != nil || took > 5*time.Second {
		t.Errorf("volume ls with the hung engine Down: %v in %s", err, took)
	}

	if err := tb.Resume(1); err != nil {
		t.Fatal(err)
	}
	// What the abandoned creates made on the resumed engine is removed:
	// the pinned name becomes free there, and shoal shows each name once.
	var mu sync.Mutex
	var last error
	err = waitFor(ctx, 60*time.Second, func() error {
		_, se, err := runDocker2(ctx, dockerCmd{host: patient.Host, args: []string{"run", "-d", "--name", pinned, "-e", "constraint:node==" + hung, "busybox", "sleep", "300"}})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			last = errors.New(se)
		}
		return err
	})
	if err != nil {
		t.Fatalf("run --name %s on the resumed engine: %v (%v)\n%s", pinned, err, last, patient.LogTail(60))
	}
	err = waitFor(ctx, 30*time.Second, func() error {
		so, _, err := tb.Docker(ctx, tb.Engines[1].Host(), "ps", "-a", "--format", "{{.Names}}")
		if err != nil {
			return err
		}
		for _, n := range runs {
			if strings.Contains(so, n) {
				return errors.New("leftover " + n + " on the resumed engine: " + so)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	out = dkOn(t, patient.Host, "ps", "-a", "--format", "{{.Names}}")
	for _, n := range append(runs, pinned) {
		if c := strings.Count(out, "/"+n+"\n"); c != 1 {
			t.Errorf("ps -a shows %s %d times: %q", n, c, out)
		}
	}
	dkOn(t, patient.Host, "rm", "-f", runs[0], runs[1], pinned)
}
