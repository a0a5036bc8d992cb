package manager_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/enginesim"
)

// ListContainersTo writes the very bytes of ListContainers' entries as
// one JSON array, for every kind of list (filtered, limited, all, none).
func TestListContainersToSameBytes(t *testing.T) {
	env := newTaskEnvWith(t, 3, nil, func(i int, o *enginesim.Options) { o.Containers, o.Stopped = 250, 100 })
	waitFor(t, "every container is cached", func() bool {
		n := 0
		for _, e := range env.pool.Engines() {
			n += len(e.Containers())
		}
		return n == 3*350
	})
	ctx := context.Background()
	listed := func(o backend.ContainerListOptions) []byte {
		t.Helper()
		l, err := env.m.ListContainers(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		b := []byte{'['}
		for i, ent := range l {
			if i > 0 {
				b = append(b, ',')
			}
			b = ent.Entry.AppendJSON(b, ent.Status)
		}
		return append(b, ']', '\n')
	}
	written := func(o backend.ContainerListOptions) []byte {
		t.Helper()
		write, err := env.m.ListContainersTo(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := write(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	for _, o := range []backend.ContainerListOptions{
		{All: true}, {}, {All: true, Limit: 7}, {Filters: backend.Filters{"status": {"exited"}}},
		{All: true, Filters: backend.Filters{"name": {"nothing-is-named-so"}}},
	} {
		// Statuses age by the second: compare when two lists around the
		// written one agree.
		same := false
		for try := 0; try < 10 && !same; try++ {
			a, w, b := listed(o), written(o), listed(o)
			if !bytes.Equal(a, b) {
				continue
			}
			same = true
			if !bytes.Equal(a, w) {
				t.Fatalf("%+v: written %d bytes differ from the listed %d", o, len(w), len(a))
			}
			if len(a) < 3 && o.Filters == nil {
				t.Fatalf("%+v: empty list", o)
			}
		}
		if !same {
			t.Fatalf("%+v: the list changed every time", o)
		}
	}
	// An error of the options comes before anything is written.
	if _, err := env.m.ListContainersTo(ctx, backend.ContainerListOptions{Filters: backend.Filters{"name": {"("}}}); err == nil {
		t.Error("a bad name filter gave no error")
	}
	// A write error ends the answer and comes back.
	write, err := env.m.ListContainersTo(ctx, backend.ContainerListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := write(failWriter{}); !errors.Is(err, errGone) {
		t.Errorf("write to a client gone: %v", err)
	}
}

var errGone = errors.New("client gone")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errGone }
