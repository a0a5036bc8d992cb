package run

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// fakeLeadership is leadership a test switches.
type fakeLeadership struct{ on atomic.Bool }

func (f *fakeLeadership) Leading() bool { return f.on.Load() }

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestLeaderOnlyFollowsLeadership(t *testing.T) {
	lead := &fakeLeadership{}
	b := &blocker{}
	g := NewGroup(context.Background(), nil)
	g.Go("rescheduler", &LeaderOnly{Name: "rescheduler", Leadership: lead, Component: b, Poll: 5 * time.Millisecond})

	time.Sleep(50 * time.Millisecond)
	if b.started.Load() != 0 {
		t.Fatal("started while not leading")
	}
	lead.on.Store(true)
	eventually(t, "start on gaining leadership", func() bool { return b.started.Load() == 1 })
	lead.on.Store(false)
	eventually(t, "stop on losing leadership", func() bool { return b.stopped.Load() == 1 })
	time.Sleep(30 * time.Millisecond)
	if b.started.Load() != 1 {
		t.Fatal("started again while not leading")
	}
	lead.on.Store(true)
	eventually(t, "start again on regaining leadership", func() bool { return b.started.Load() == 2 })

	g.Stop()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if b.stopped.Load() != 2 {
		t.Error("shutdown did not wait for the leader-only component")
	}
}

func TestLeaderOnlyStopsPromptly(t *testing.T) {
	lead := &fakeLeadership{}
	lead.on.Store(true)
	b := &blocker{}
	g := NewGroup(context.Background(), nil)
	g.Go("leader-only", &LeaderOnly{Name: "leader-only", Leadership: lead, Component: b}) // default poll
	eventually(t, "start", func() bool { return b.started.Load() == 1 })
	lost := time.Now()
	lead.on.Store(false)
	eventually(t, "stop", func() bool { return b.stopped.Load() == 1 })
	if took := time.Since(lost); took > time.Second {
		t.Errorf("stopped %v after leadership was lost, want within 1s", took)
	}
	g.Stop()
	_ = g.Wait()
}

func TestLeaderOnlyFailureFailsGroup(t *testing.T) {
	lead := &fakeLeadership{}
	lead.on.Store(true)
	g := NewGroup(context.Background(), nil)
	other := &blocker{}
	g.Go("other", other)
	g.Go("leader-only", &LeaderOnly{Name: "leader-only", Leadership: lead, Poll: 5 * time.Millisecond,
		Component: Func(func(context.Context) error { return errBoom })})
	if err := g.Wait(); !errors.Is(err, errBoom) {
		t.Fatalf("Wait = %v, want the leader-only component's error", err)
	}
	if other.stopped.Load() != 1 {
		t.Error("the other component was not stopped")
	}
}

func TestLeaderOnlyEarlyReturnWaitsForNextTerm(t *testing.T) {
	lead := &fakeLeadership{}
	lead.on.Store(true)
	var runs atomic.Int32
	g := NewGroup(context.Background(), nil)
	g.Go("once", &LeaderOnly{Name: "once", Leadership: lead, Poll: 5 * time.Millisecond,
		Component: Func(func(context.Context) error { runs.Add(1); return nil })})
	eventually(t, "first run", func() bool { return runs.Load() == 1 })
	time.Sleep(30 * time.Millisecond)
	if runs.Load() != 1 {
		t.Fatalf("ran %d times in one term of leadership", runs.Load())
	}
	lead.on.Store(false)
	time.Sleep(30 * time.Millisecond)
	lead.on.Store(true)
	eventually(t, "run in the next term", func() bool { return runs.Load() == 2 })
	g.Stop()
	_ = g.Wait()
}

type fakeStore struct{ leader bool }

func (f fakeStore) IsLeader() bool { return f.leader }

type fakeReplica struct{ self bool }

func (f fakeReplica) Primary() (string, bool) { return "10.0.0.1:2375", f.self }

func TestLeaderships(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    Leadership
		want bool
	}{
		{"single", Single{}, true},
		{"store leader", StoreElection{Store: fakeStore{true}}, true},
		{"store follower", StoreElection{Store: fakeStore{false}}, false},
		{"primary", Replication{Handler: fakeReplica{true}}, true},
		{"replica", Replication{Handler: fakeReplica{false}}, false},
	} {
		if got := tc.l.Leading(); got != tc.want {
			t.Errorf("%s: Leading = %v, want %v", tc.name, got, tc.want)
		}
	}
}
