package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/moby/moby/api/types/swarm"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Task is a task record: swarm mode's Task as the API shows it, and what
// only the orchestrator reads. The orchestrator (on the leader) is the only
// writer of tasks; the API reads them.
type Task struct {
	swarm.Task
	// SpecVersion is the service version whose spec this task runs (the
	// "_up-to-date" task filter compares it with the service's version).
	SpecVersion uint64 `json:",omitempty"`
	// Private is the orchestrator's own bookkeeping (restart counts,
	// backoff, why a task is pending), never shown by the API.
	Private json.RawMessage `json:",omitempty"`
}

// Tasks is the tasks collection: one record per task, keyed by task ID.
type Tasks struct{ c Collection[Task] }

// NewTasks is the tasks collection of s.
func NewTasks(s *Store) Tasks { return Tasks{c: NewCollection[Task](s, PrefixTasks)} }

// Get returns a task, or ErrNotFound; its Version is the record's revision.
func (r Tasks) Get(ctx context.Context, id string, opts ...ReadOption) (Task, error) {
	it, err := r.c.Get(ctx, id, opts...)
	if err != nil {
		return Task{}, err
	}
	return taskOf(it), nil
}

// List returns every task sorted by ID and the revision the list reflects
// (watch from it + 1).
func (r Tasks) List(ctx context.Context, opts ...ReadOption) ([]Task, int64, error) {
	items, rev, err := r.c.List(ctx, opts...)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Task, len(items))
	for i, it := range items {
		out[i] = taskOf(it)
	}
	return out, rev, nil
}

// Put writes one task as is (the orchestrator is its only writer).
func (r Tasks) Put(ctx context.Context, t Task) error { return r.c.Put(ctx, t.ID, t) }

// Delete removes a task, or returns ErrNotFound.
func (r Tasks) Delete(ctx context.Context, id string) error { return r.c.Delete(ctx, id) }

// maxOpsPerTxn stays under etcd's default --max-txn-ops (128).
const maxOpsPerTxn = 100

// Apply writes puts and deletes in transactions of up to 100 operations,
// so a reconcile pass that touches thousands of tasks costs tens of round
// trips, not thousands. Each transaction is atomic; the batch as a whole
// is not (a failure leaves the earlier transactions applied, and the
// orchestrator's next pass sees and finishes the rest).
func (r Tasks) Apply(ctx context.Context, puts []Task, deletes []string) error {
	ops := make([]clientv3.Op, 0, len(puts)+len(deletes))
	for _, t := range puts {
		b, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("store: encode task %s: %w", t.ID, err)
		}
		key := r.c.Key(t.ID)
		stored, err := r.c.s.encrypt(key, b)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(key, stored))
	}
	for _, id := range deletes {
		ops = append(ops, clientv3.OpDelete(r.c.Key(id)))
	}
	for len(ops) > 0 {
		n := min(len(ops), maxOpsPerTxn)
		batch := ops[:n]
		ops = ops[n:]
		err := r.c.s.write(ctx, fmt.Sprintf("apply %d task changes", n), func(ctx context.Context) error {
			_, err := r.c.s.client.Txn(ctx).Then(batch...).Commit()
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Watch streams the tasks' changes from fromRev (0: from now).
func (r Tasks) Watch(ctx context.Context, fromRev int64) <-chan Change[Task] {
	in := r.c.Watch(ctx, fromRev)
	out := make(chan Change[Task], cap(in))
	go func() {
		defer close(out)
		for ch := range in {
			if ch.Err == nil {
				ch.Item.Value = taskOf(ch.Item)
			}
			if !sendChange(ctx, out, ch) {
				return
			}
		}
	}()
	return out
}

func taskOf(it Item[Task]) Task {
	t := it.Value
	t.ID = it.ID
	t.Version.Index = uint64(it.Revision)
	return t
}
