package dockerapi

import (
	"context"
	"io"
	"net/http"
	"reflect"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/shoal-dev/shoal/internal/backend"
)

// listWriter is a Containers backend that writes its list itself.
type listWriter struct {
	fakeContainers
	got  backend.ContainerListOptions
	fail bool
}

func (l *listWriter) ListContainersTo(_ context.Context, o backend.ContainerListOptions) (func(io.Writer) error, error) {
	l.got = o
	if l.fail {
		return nil, errdefs.ErrInvalidArgument.WithMessage("invalid filter 'name=(': bad")
	}
	return func(w io.Writer) error {
		_, err := io.WriteString(w, `[{"Status":"Up","Id":"a"}]`+"\n")
		return err
	}, nil
}

// A backend that writes its list answer gets the options and writes the
// body after a 200; its errors come before, as Docker JSON errors; the
// list is never built.
func TestContainerListWriter(t *testing.T) {
	l := &listWriter{}
	l.list = backend.ContainerList{{Status: "Built", Entry: rawEntry(`"Id":"built"`)}}
	s := NewServer(Backends{Containers: l}, "test", nil)
	rec := call(s, "GET", `/v1.41/containers/json?all=1&limit=2&filters={"name":["web"]}`, "")
	if rec.Code != http.StatusOK || rec.Body.String() != `[{"Status":"Up","Id":"a"}]`+"\n" || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("list: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
	want := backend.ContainerListOptions{All: true, Limit: 2, Filters: backend.Filters{"name": {"web"}}}
	if !reflect.DeepEqual(l.got, want) || l.gotList.Filters != nil {
		t.Errorf("options %+v (want %+v); ListContainers given %+v", l.got, want, l.gotList)
	}
	l.fail = true
	wantError(t, call(s, "GET", `/containers/json?filters={"name":["("]}`, ""), 400, "invalid filter 'name=(': bad")
}
