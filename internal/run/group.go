// Package run starts shoal's long-running components (pool, manager, API,
// discovery, replication, the built-in cluster) as one group, and runs the
// leader-only ones (the rescheduler) only while this manager leads.
package run

import (
	"context"
	"sync"
)

// Component is anything with shoal's component life: it runs until ctx
// ends and returns nil then, or fails with an error.
type Component interface {
	Run(ctx context.Context) error
}

// Func makes a function a Component.
type Func func(ctx context.Context) error

// Run calls f.
func (f Func) Run(ctx context.Context) error { return f(ctx) }

// Failure is the first error of a group: which component failed and how.
type Failure struct {
	Component string
	Err       error
}

func (f *Failure) Error() string { return f.Component + ": " + f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// Group runs components together, errgroup-style: the first one to fail
// cancels the others, and Wait returns once every one has returned.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// onFail, if set, is told of the first failure as it happens, before
	// the others are cancelled (Wait returns only after they stopped).
	onFail func(*Failure)

	once sync.Once
	err  *Failure
}

// NewGroup returns a group whose components run under ctx. onFail may be nil.
func NewGroup(ctx context.Context, onFail func(*Failure)) *Group {
	ctx, cancel := context.WithCancel(ctx)
	return &Group{ctx: ctx, cancel: cancel, onFail: onFail}
}

// Context is the group's context: it ends when a component fails, when
// Stop is called or when the parent ends.
func (g *Group) Context() context.Context { return g.ctx }

// Go starts c under the name it is logged and reported by.
func (g *Group) Go(name string, c Component) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := c.Run(g.ctx)
		if err == nil || g.ctx.Err() != nil {
			return // stopping: what a component says on the way out is no failure
		}
		g.fail(&Failure{Component: name, Err: err})
	}()
}

func (g *Group) fail(f *Failure) {
	g.once.Do(func() {
		g.err = f
		if g.onFail != nil {
			g.onFail(f)
		}
		g.cancel()
	})
}

// Stop cancels every component; Wait still waits for them.
func (g *Group) Stop() { g.cancel() }

// Wait waits for every component to return and gives the first failure
// (a *Failure), or nil when they stopped because the group was stopped.
func (g *Group) Wait() error {
	g.wg.Wait()
	g.cancel()
	if g.err == nil {
		return nil
	}
	return g.err
}
