package run

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

var errBoom = errors.New("boom")

// blocker runs until its ctx ends, then takes linger to return.
type blocker struct {
	started, stopped atomic.Int32
	linger           time.Duration
}

func (b *blocker) Run(ctx context.Context) error {
	b.started.Add(1)
	<-ctx.Done()
	time.Sleep(b.linger)
	b.stopped.Add(1)
	return nil
}

func TestGroupFailureCancelsOthers(t *testing.T) {
	var told []*Failure
	g := NewGroup(context.Background(), func(f *Failure) { told = append(told, f) })
	b := &blocker{}
	g.Go("blocker", b)
	g.Go("failing", Func(func(context.Context) error { return errBoom }))
	err := g.Wait()
	var f *Failure
	if !errors.As(err, &f) || f.Component != "failing" || !errors.Is(err, errBoom) {
		t.Fatalf("Wait = %v, want the failing component's error", err)
	}
	if b.stopped.Load() != 1 {
		t.Error("the other component was not cancelled and waited for")
	}
	if len(told) != 1 || told[0] != f {
		t.Errorf("onFail told %v, want the one failure", told)
	}
}

func TestGroupStopWaitsForAll(t *testing.T) {
	g := NewGroup(context.Background(), nil)
	slow := &blocker{linger: 100 * time.Millisecond}
	g.Go("slow", slow)
	g.Go("quick", &blocker{})
	time.Sleep(10 * time.Millisecond)
	g.Stop()
	if err := g.Wait(); err != nil {
		t.Fatalf("Wait after Stop = %v, want nil", err)
	}
	if slow.stopped.Load() != 1 {
		t.Error("Wait returned before the slow component stopped")
	}
}

func TestGroupParentEndIsNoFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g := NewGroup(ctx, func(f *Failure) { t.Errorf("onFail(%v) on a normal stop", f) })
	g.Go("errs-on-stop", Func(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }))
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatalf("Wait = %v, want nil", err)
	}
}

func TestGroupNilReturnLeavesOthersRunning(t *testing.T) {
	g := NewGroup(context.Background(), nil)
	g.Go("done-at-once", Func(func(context.Context) error { return nil }))
	b := &blocker{}
	g.Go("blocker", b)
	time.Sleep(20 * time.Millisecond)
	if g.Context().Err() != nil {
		t.Fatal("a component that returned nil cancelled the group")
	}
	g.Stop()
	_ = g.Wait()
}
