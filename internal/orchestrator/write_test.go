package orchestrator

import (
	"context"
	"fmt"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// Writes of more than one chunk are all made: every put there, every
// delete gone, the rest untouched.
func TestApplyTasksInChunks(t *testing.T) {
	tasks := store.NewTasks(storetest.Open(t))
	ctx := context.Background()
	mk := func(from, to int, msg string) []store.Task {
		var out []store.Task
		for i := from; i < to; i++ {
			out = append(out, store.Task{Task: swarm.Task{ID: fmt.Sprintf("t%05d", i), ServiceID: "s", Slot: i + 1,
				Status: swarm.TaskStatus{State: swarm.TaskStateRunning, Message: msg}}})
		}
		return out
	}
	if err := applyTasks(ctx, tasks, mk(0, 450, "first"), nil); err != nil {
		t.Fatal(err)
	}
	var deletes []string
	for i := 300; i < 450; i++ {
		deletes = append(deletes, fmt.Sprintf("t%05d", i))
	}
	if err := applyTasks(ctx, tasks, mk(0, 250, "second"), deletes); err != nil {
		t.Fatal(err)
	}
	list, _, err := tasks.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, tk := range list {
		got[tk.ID] = tk.Status.Message
	}
	if len(got) != 300 {
		t.Errorf("%d tasks stored, want 300", len(got))
	}
	for i := range 300 {
		want := "second"
		if i >= 250 {
			want = "first"
		}
		if id := fmt.Sprintf("t%05d", i); got[id] != want {
			t.Errorf("task %s: %q, want %q", id, got[id], want)
		}
	}
}
