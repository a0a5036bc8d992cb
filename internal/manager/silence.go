package manager

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// A hung engine (a dockerd stopped with SIGSTOP, or wedged) neither answers
// nor refuses: its kernel accepts the connection and the request waits
// forever. Until the health checks mark it Unhealthy, every call that asks
// it would wait as long, and a call that asks every engine (a list, df, a
// prune, a lookup) would wait for the slowest. So a call waits for an
// engine only while the engine shows it is alive: after a moment without
// an answer shoal pings it, and an engine that does not answer /_ping
// either is left out (of a list, with a warning) or given up on (a
// create moves to another node). An engine that answers its pings is
// waited for, up to a limit for reads.

// errNoAnswer is the class of a call given up on because its engine went
// silent. Its outcome is unknown (the engine may still act on it when it
// resumes), so it is also engine.ErrUnreachable.
var errNoAnswer = fmt.Errorf("manager: node does not answer: %w", engine.ErrUnreachable)

// silentNode is errNoAnswer with what was waited for.
type silentNode struct {
	waited time.Duration
	ping   error // the failed /_ping, nil when the wait hit its limit
}

func (s *silentNode) Error() string {
	waited := s.waited.Round(100 * time.Millisecond)
	switch {
	case s.ping == nil:
		return fmt.Sprintf("no answer in %s", waited)
	case errors.Is(s.ping, context.DeadlineExceeded):
		return fmt.Sprintf("no answer in %s, nor to a ping", waited)
	}
	return fmt.Sprintf("no answer in %s, and a ping failed: %v", waited, s.ping)
}

func (s *silentNode) Unwrap() error { return errNoAnswer }

// patience is how a call waits for one engine.
type patience struct {
	probe time.Duration // without an answer this long, ping the engine (and again as long)
	limit time.Duration // give up after this long however alive the engine (0: never)
}

var (
	// readPatience is for lists, disk usage and lookups: what an engine
	// that answers its pings still has not said in 30 s is left out.
	readPatience = patience{probe: 2 * time.Second, limit: 30 * time.Second}
	// writePatience is for changes (create, prune, tag, rmi, pull...):
	// they take what they take while the engine is alive.
	writePatience = patience{probe: 2 * time.Second}
)

// ask runs call with e and returns its error; if e stops answering (see
// await), it cancels call, waits for it to return (so nothing it merges
// lands after the caller answered) and returns a silentNode error.
func (m *Manager) ask(ctx context.Context, e *engine.Engine, p patience, call func(context.Context) error) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = call(cctx)
	}()
	if werr := m.await(ctx, e, p, done); werr != nil {
		cancel()
		<-done // every engine call ends with its context
		return werr
	}
	return err
}

// live is ask for fanOut: f on each engine, given up on when it goes silent.
func (m *Manager) live(p patience, f func(context.Context, *engine.Engine) error) func(context.Context, *engine.Engine) error {
	return func(ctx context.Context, e *engine.Engine) error {
		return m.ask(ctx, e, p, func(ctx context.Context) error { return f(ctx, e) })
	}
}

// await waits until done is closed, ctx ends (its error) or e is found
// silent (a silentNode): after p.probe without an answer, and again after
// each probe the engine answered, e is pinged; an engine whose last health
// check failed is pinged at once. A ping that fails, or p.limit, ends the
// wait.
func (m *Manager) await(ctx context.Context, e *engine.Engine, p patience, done <-chan struct{}) error {
	start := time.Now()
	first := p.probe
	if e.Failing() || !e.Healthy() {
		first = 0
	}
	next := time.NewTimer(first)
	defer next.Stop()
	var limit <-chan time.Time
	if p.limit > 0 {
		t := time.NewTimer(p.limit)
		defer t.Stop()
		limit = t.C
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var probe chan error // a ping in flight
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-limit:
			return &silentNode{waited: time.Since(start)}
		case <-next.C:
			probe = make(chan error, 1)
			go func(c chan<- error) { c <- e.Ping(pctx) }(probe)
		case err := <-probe:
			probe = nil
			if err != nil {
				return &silentNode{waited: time.Since(start), ping: err}
			}
			next.Reset(p.probe)
		}
	}
}

// nodeWarning is how a node left out of an answer is reported, as info
// reports a node that is not healthy: "WARNING: node <name> (<addr>) ...".
func nodeWarning(e *engine.Engine, what string) string {
	return fmt.Sprintf("WARNING: node %s (%s) %s", e.Name(), e.Addr, what)
}

// downWarnings are the warnings for the engines a cluster-wide answer did
// not ask because they are not healthy, as info words them.
func (m *Manager) downWarnings() []string {
	var out []string
	for _, e := range m.pool.Engines() {
		if st, lastErr := e.State(); st != engine.Healthy {
			msg := "is " + strings.ToLower(st.String())
			if lastErr != "" {
				msg += ": " + lastErr
			}
			out = append(out, nodeWarning(e, msg))
		}
	}
	return out
}

// abandonedCreateWait is how long a create given up on (its engine went
// silent, or its client left) is still waited for in the background, so
// that the container it makes when the engine resumes can be removed. The
// request stays open that long: a hung engine resumed later still makes
// the container, and then nobody removes it.
const abandonedCreateWait = 24 * time.Hour

// createOn creates the container on e, waiting while e is alive (await).
// A create given up on is not cancelled: cancelling would not stop an
// engine that already read it from acting on it when it resumes, and it
// would lose the one thing that identifies what it made (the ID in its
// answer). It goes on in the background and what it made is removed.
func (m *Manager) createOn(ctx context.Context, e *engine.Engine, spec engine.CreateSpec) (engine.Created, error) {
	var cr engine.Created
	var err error
	done := make(chan struct{})
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), abandonedCreateWait)
	go func() {
		defer close(done)
		defer cancel()
		cr, err = e.Create(bg, spec)
	}()
	if werr := m.await(ctx, e, writePatience, done); werr != nil {
		go func() {
			<-done
			m.reapAbandoned(e, spec.Name, cr, err)
		}()
		return engine.Created{}, werr
	}
	return cr, err
}

// reapAbandoned removes the container an abandoned create made, by the ID
// in its answer. An answer lost on the way (the engine died, or the wait
// ran out) is only logged: removing by name so long after could remove a
// container made since under that name, and an engine that died while
// hung most likely never made it.
func (m *Manager) reapAbandoned(e *engine.Engine, name string, cr engine.Created, err error) {
	switch {
	case err == nil:
		m.log.Warn("removing a container whose create was given up on", "node", e.Name(), "id", cr.ID, "name", name)
		m.removeQuietly(e, cr.ID)
	case errors.Is(err, engine.ErrUnreachable):
		m.log.Warn("a create given up on ended without an answer: if the node made the container, it is still there", "node", e.Name(), "name", name, "error", err)
	}
}

// avoiding is req with node e ruled out.
func avoiding(req *scheduler.Request, e *engine.Engine) *scheduler.Request {
	if e.Member() != nil {
		req = avoidingID(req, e.ID+"/*") // a member's leaves
	}
	return avoidingID(req, e.ID)
}

// avoidingID is req with one more constraint: not on the node with that ID.
func avoidingID(req *scheduler.Request, id string) *scheduler.Request {
	x, err := scheduler.ParseExpr("constraint", "node!="+id)
	if err != nil {
		return req
	}
	cp := *req
	rules := scheduler.Rules{}
	if req.Rules != nil {
		rules = *req.Rules
	}
	rules.Constraints = append(append([]scheduler.Expr(nil), rules.Constraints...), x)
	cp.Rules = &rules
	return &cp
}

// anyAnswering is a healthy engine for a call any engine answers alike,
// one whose last health check passed if there is one: a hung engine not
// yet marked Unhealthy would hold the call forever. Nil if none is healthy.
func (m *Manager) anyAnswering() *engine.Engine {
	h := m.pool.Healthy()
	for _, e := range h {
		if !e.Failing() {
			return e
		}
	}
	if len(h) > 0 {
		return h[0]
	}
	return nil
}
