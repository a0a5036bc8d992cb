package engine

import (
	"errors"
	"log/slog"
	"testing"
	"time"
)

// A health check waits the refresh interval (at least a second, at most
// Timeout): a check that has not answered when the next is due failed.
func TestPingTimeout(t *testing.T) {
	for _, tc := range []struct{ refresh, timeout, want time.Duration }{
		{2 * time.Second, 5 * time.Second, 2 * time.Second},
		{100 * time.Millisecond, 5 * time.Second, time.Second},
		{10 * time.Second, 5 * time.Second, 5 * time.Second},
		{500 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond},
	} {
		o := Options{RefreshInterval: tc.refresh, Timeout: tc.timeout}
		if got := o.PingTimeout(); got != tc.want {
			t.Errorf("refresh %s, timeout %s: ping timeout %s, want %s", tc.refresh, tc.timeout, got, tc.want)
		}
	}
	var o Options
	o.defaults()
	if o.RefreshInterval != 2*time.Second || o.PingTimeout() != 2*time.Second || o.FailureRetry != 3 {
		t.Errorf("defaults: refresh %s, ping timeout %s, retry %d", o.RefreshInterval, o.PingTimeout(), o.FailureRetry)
	}
}

// An engine that stops answering (its kernel still accepts connections)
// is Unhealthy after FailureRetry checks that each waited PingTimeout, not
// the longer Timeout, and Healthy again once it answers.
func TestHungEngineIsUnhealthySoon(t *testing.T) {
	p, sims := simPool(t, 1, Options{RefreshInterval: 200 * time.Millisecond, Timeout: 5 * time.Second, FailureRetry: 3})
	e := p.Engines()[0]
	t.Cleanup(sims[0].Resume)
	t0 := time.Now()
	sims[0].Hang()
	for e.Healthy() {
		if time.Since(t0) > 12*time.Second {
			t.Fatalf("a hung engine is still Healthy after %s (3 checks waiting Timeout would take 15 s)", time.Since(t0))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("hung engine Unhealthy after %s", time.Since(t0).Round(time.Millisecond))
	if d := time.Since(t0); d < 2*time.Second {
		t.Errorf("Unhealthy after %s: three checks of a second each cannot fail that fast", d)
	}
	if st, _ := e.State(); st != Unhealthy {
		t.Errorf("state %s, want Unhealthy", st)
	}
	sims[0].Resume()
	waitFor(t, "the resumed engine healthy", e.Healthy)
}

// TestDownSince: an engine marked down after failures in a row reports
// the first of them; a healthy one reports none.
func TestDownSince(t *testing.T) {
	e := &Engine{opts: &Options{FailureRetry: 3, Logger: slog.New(slog.DiscardHandler)}}
	e.setState(Healthy, "")
	if !e.DownSince().IsZero() {
		t.Fatalf("healthy engine down since %v", e.DownSince())
	}
	first := time.Now()
	e.fail(errors.New("one"))
	time.Sleep(5 * time.Millisecond)
	e.fail(errors.New("two"))
	if !e.DownSince().IsZero() {
		t.Errorf("an engine still Healthy (2 of 3 failures) reports down since %v", e.DownSince())
	}
	e.fail(errors.New("three"))
	if got := e.DownSince(); got.Before(first) || got.After(first.Add(4*time.Millisecond)) {
		t.Errorf("down since %v, want the first failure (~%v)", got, first)
	}
	e.setState(Healthy, "")
	if !e.DownSince().IsZero() {
		t.Errorf("down since %v after recovery", e.DownSince())
	}
	e.setState(Unhealthy, "tunnel gone") // marked down without counted failures
	if got := e.DownSince(); got.IsZero() || got != e.StateSince() {
		t.Errorf("down since %v, want the change of state %v", got, e.StateSince())
	}
}

// A health check that finds a healthy engine healthy leaves the cache's
// generation alone (info and the scheduler rebuild what changed by it);
// a change of state, an error or a recovery from failures bumps it.
func TestHealthyCheckKeepsGeneration(t *testing.T) {
	e := &Engine{opts: &Options{FailureRetry: 3, Logger: slog.New(slog.DiscardHandler)}}
	e.setState(Healthy, "")
	g := e.Gen()
	e.setState(Healthy, "")
	if e.Gen() != g {
		t.Errorf("a healthy check moved the generation %d -> %d", g, e.Gen())
	}
	e.fail(errors.New("timeout"))
	e.setState(Healthy, "")
	if e.Gen() == g {
		t.Error("recovering from a failed check left the generation")
	}
	g = e.Gen()
	e.setState(Unhealthy, "down")
	if e.Gen() == g {
		t.Error("a change of state left the generation")
	}
}

// A failed check that does not yet make the engine Unhealthy still
// changes its last error, which summaries cached by generation show: a
// new error bumps the generation; the same error again does not.
func TestFailedCheckBumpsGeneration(t *testing.T) {
	e := &Engine{opts: &Options{FailureRetry: 3, Logger: slog.New(slog.DiscardHandler)}}
	e.setState(Pending, "")
	g := e.Gen()
	if st := e.fail(errors.New("connection refused")); st != Pending {
		t.Fatalf("state %s after one failure, want Pending", st)
	}
	if _, msg := e.State(); msg != "connection refused" {
		t.Fatalf("last error %q", msg)
	}
	if e.Gen() == g {
		t.Error("a failed check changed the last error but left the generation")
	}
	g = e.Gen()
	e.fail(errors.New("connection refused"))
	if e.Gen() != g {
		t.Errorf("the same error again moved the generation %d -> %d", g, e.Gen())
	}
	e.fail(errors.New("timeout"))
	if e.Gen() == g {
		t.Error("a different error left the generation")
	}
}
