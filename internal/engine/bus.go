package engine

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
)

// DefaultSubscriberBuffer is how many events a bus subscriber may fall
// behind before it is cut off (Options.SubscriberBuffer overrides it).
const DefaultSubscriberBuffer = 1024

// Event is one change in the pool: either an engine's state change
// (IsState: Old and New set) or an event an engine sent on its stream
// (Message decoded, Raw exactly as the engine sent it, so no field is lost).
type Event struct {
	Engine *Engine
	Time   time.Time // when shoal saw it (history: when the engine recorded it)

	Old, New State // for a state change

	Message events.Message
	Raw     json.RawMessage

	memo *memo // shared by every subscriber's copy of a bus event
}

type memo struct {
	once sync.Once
	v    any
}

// Shared returns f's value, computed once for all the subscribers that
// receive this event (a thousand events a second to many `docker events`
// clients must not be re-encoded for each of them). f must not depend on
// the subscriber; the value is shared, so it must not be modified.
func (ev Event) Shared(f func() any) any {
	if ev.memo == nil {
		return f()
	}
	ev.memo.once.Do(func() { ev.memo.v = f() })
	return ev.memo.v
}

// IsState says whether the event is an engine state change rather than an
// engine's own event.
func (ev Event) IsState() bool { return ev.Raw == nil }

// Subscription is one consumer of the pool's events, in the order each
// engine produced them. Its channel closes when the subscription ends:
// Err then says why.
type Subscription struct {
	c    chan Event
	bus  *bus
	once sync.Once
	mu   sync.Mutex
	err  error
}

// C delivers the events; it is closed when the subscription ends.
func (s *Subscription) C() <-chan Event { return s.c }

// Err is nil while the subscription runs, then the context's error, or
// ErrSubscriberTooSlow if it fell a whole buffer behind.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// end closes the subscription once; bus.mu must be held.
func (s *Subscription) end(err error) {
	s.once.Do(func() {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		delete(s.bus.subs, s)
		close(s.c)
	})
}

// bus fans the pool's events out to subscribers. Publishing never blocks
// the engine loops: each subscriber has a bounded buffer, and one that
// falls a whole buffer behind is closed with ErrSubscriberTooSlow rather
// than silently skipping events (a `docker events` client then sees its
// stream end and can reconnect with since, instead of trusting a stream
// with holes in it).
type bus struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
	size int
}

func newBus(size int) *bus {
	if size <= 0 {
		size = DefaultSubscriberBuffer
	}
	return &bus{subs: map[*Subscription]struct{}{}, size: size}
}

func (b *bus) subscribe(ctx context.Context) *Subscription {
	s := &Subscription{c: make(chan Event, b.size), bus: b}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		s.end(ctx.Err())
	})
	return s
}

func (b *bus) publish(ev Event) { b.publishAll([]Event{ev}) }

// publishAll delivers a batch of one engine's events, in order, under
// one lock: no other engine's event comes between them.
func (b *bus) publishAll(evs []Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range evs {
		evs[i].memo = &memo{}
	}
	for s := range b.subs {
		for _, ev := range evs {
			select {
			case s.c <- ev:
				continue
			default:
				s.end(ErrSubscriberTooSlow)
			}
			break
		}
	}
}

// Subscribe follows the pool's changes until ctx ends: engine state
// changes and every event of every connected engine (after the cache
// applied it). All subscribers share the one event stream each engine's
// loop already reads.
func (p *Pool) Subscribe(ctx context.Context) *Subscription {
	return p.opts.bus.subscribe(ctx)
}
