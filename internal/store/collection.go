package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Key prefixes of shoal's state. Every key lives under Root so the store
// can share an etcd with nothing else by accident.
const (
	Root           = "/shoal/"
	PrefixNodes    = Root + "nodes/"
	PrefixTokens   = Root + "tokens/"
	PrefixCA       = Root + "ca/"
	PrefixServices = Root + "services/"
	PrefixTasks    = Root + "tasks/"
)

// Collection is a typed view of the keys under one prefix, each holding a
// JSON-encoded T named by an ID.
type Collection[T any] struct {
	s      *Store
	prefix string
}

// NewCollection returns the collection of T under prefix (ending in "/").
func NewCollection[T any](s *Store, prefix string) Collection[T] {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return Collection[T]{s: s, prefix: prefix}
}

// Item is one element of a collection.
type Item[T any] struct {
	ID       string
	Value    T
	Revision int64
}

// Key is the store key of id.
func (c Collection[T]) Key(id string) string { return c.prefix + id }

// Put stores v as id.
func (c Collection[T]) Put(ctx context.Context, id string, v T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %s: %w", c.Key(id), err)
	}
	return c.s.Put(ctx, c.Key(id), b)
}

// Create stores v as id unless id exists (ErrExists); it returns the
// item's revision.
func (c Collection[T]) Create(ctx context.Context, id string, v T) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("store: encode %s: %w", c.Key(id), err)
	}
	return c.s.Create(ctx, c.Key(id), b)
}

// Get returns id, or ErrNotFound.
func (c Collection[T]) Get(ctx context.Context, id string, opts ...ReadOption) (Item[T], error) {
	kv, err := c.s.Get(ctx, c.Key(id), opts...)
	if err != nil {
		return Item[T]{}, err
	}
	return c.decode(kv)
}

// List returns every item sorted by ID and the revision the list reflects.
func (c Collection[T]) List(ctx context.Context, opts ...ReadOption) ([]Item[T], int64, error) {
	kvs, rev, err := c.s.List(ctx, c.prefix, opts...)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Item[T], 0, len(kvs))
	for _, kv := range kvs {
		it, err := c.decode(kv)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, it)
	}
	return out, rev, nil
}

// Delete removes id, or returns ErrNotFound.
func (c Collection[T]) Delete(ctx context.Context, id string) error {
	return c.s.Delete(ctx, c.Key(id))
}

// Update stores v as id if id is still at revision rev (the Revision of
// the Item it was read as): ErrConflict if someone changed it since,
// ErrNotFound if it is gone. It returns the new revision.
func (c Collection[T]) Update(ctx context.Context, id string, rev int64, v T) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("store: encode %s: %w", c.Key(id), err)
	}
	return c.s.Replace(ctx, c.Key(id), rev, b)
}

// Modify applies fn to the current value of id (zero T and false when
// absent) and stores the result if nobody changed id meanwhile, calling fn
// again with the fresh value otherwise; see Store.Update.
func (c Collection[T]) Modify(ctx context.Context, id string, fn func(cur T, exists bool) (T, error)) error {
	return c.s.Update(ctx, c.Key(id), func(raw []byte, exists bool) ([]byte, error) {
		var cur T
		if exists {
			if err := json.Unmarshal(raw, &cur); err != nil {
				return nil, fmt.Errorf("store: decode %s: %w", c.Key(id), err)
			}
		}
		next, err := fn(cur, exists)
		if err != nil {
			return nil, err
		}
		return json.Marshal(next)
	})
}

// Change is one change to a collection; Deleted changes carry the last value.
type Change[T any] struct {
	Item    Item[T]
	Deleted bool
	Err     error
}

// Watch streams the collection's changes from fromRev (0: from now); see Store.Watch.
func (c Collection[T]) Watch(ctx context.Context, fromRev int64) <-chan Change[T] {
	out := make(chan Change[T], 64)
	in := c.s.Watch(ctx, c.prefix, fromRev)
	go func() {
		defer close(out)
		for ev := range in {
			if !sendChange(ctx, out, c.change(ev)) {
				return
			}
		}
	}()
	return out
}

func (c Collection[T]) change(ev Event) Change[T] {
	if ev.Err != nil {
		return Change[T]{Err: ev.Err}
	}
	ch := Change[T]{Deleted: ev.Type == EventDelete}
	it, err := c.decode(ev.KV)
	if err != nil && !ch.Deleted {
		return Change[T]{Err: err}
	}
	it.ID = strings.TrimPrefix(ev.KV.Key, c.prefix)
	ch.Item = it
	return ch
}

func sendChange[T any](ctx context.Context, out chan<- Change[T], ch Change[T]) bool {
	select {
	case out <- ch:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c Collection[T]) decode(kv KV) (Item[T], error) {
	it := Item[T]{ID: strings.TrimPrefix(kv.Key, c.prefix), Revision: kv.Revision}
	if err := json.Unmarshal(kv.Value, &it.Value); err != nil {
		return Item[T]{}, fmt.Errorf("store: decode %s: %w", kv.Key, err)
	}
	return it, nil
}
