package store

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// EventType says whether a key was written or deleted.
type EventType int

// Event types.
const (
	EventPut EventType = iota + 1
	EventDelete
)

// Event is one change under a watched prefix. A final event with Err set
// ends a watch that cannot continue (e.g. its start revision was
// compacted); the consumer lists again and watches from the new revision.
type Event struct {
	Type EventType
	KV   KV
	Err  error
}

// Watch streams changes under prefix from revision fromRev (0: from now)
// until ctx ends, then closes the channel.
func (s *Store) Watch(ctx context.Context, prefix string, fromRev int64) <-chan Event {
	out := make(chan Event, 64)
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV()}
	if fromRev > 0 {
		opts = append(opts, clientv3.WithRev(fromRev))
	}
	wch := s.client.Watch(clientv3.WithRequireLeader(ctx), prefix, opts...)
	go func() {
		defer close(out)
		for resp := range wch {
			if err := resp.Err(); err != nil {
				send(ctx, out, Event{Err: fmt.Errorf("store: watch %s: %w", prefix, mapErr(err))})
				return
			}
			for _, ev := range resp.Events {
				e := s.toEvent(ev)
				if !send(ctx, out, e) || e.Err != nil {
					return
				}
			}
		}
	}()
	return out
}

// toEvent is an etcd event decrypted; a value that does not decrypt ends
// the watch with an error event.
func (s *Store) toEvent(ev *clientv3.Event) Event {
	e := Event{Type: EventPut}
	value := ev.Kv.Value
	if ev.Type == clientv3.EventTypeDelete {
		e.Type = EventDelete
		value = nil
		if ev.PrevKv != nil {
			value = ev.PrevKv.Value
		}
	}
	kv, err := s.kvOf(ev.Kv.Key, value, ev.Kv.ModRevision)
	if err != nil {
		return Event{Err: err}
	}
	e.KV = kv
	return e
}

func send(ctx context.Context, out chan<- Event, e Event) bool {
	select {
	case out <- e:
		return true
	case <-ctx.Done():
		return false
	}
}
