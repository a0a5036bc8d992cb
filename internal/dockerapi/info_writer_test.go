package dockerapi

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/containerd/errdefs"
)

// writingSystem writes its info itself (as the manager does, InfoTo).
type writingSystem struct {
	fakeSystem
	err error
}

func (w writingSystem) InfoTo(context.Context) (io.WriterTo, error) {
	if w.err != nil {
		return nil, w.err
	}
	return bytes.NewBufferString(`{"Name":"written"}`), nil
}

// A System that writes its info out is asked for that rather than for
// the encoded answer, and its errors are answered as Info's are.
func TestInfoWrittenBySystem(t *testing.T) {
	s := NewServer(Backends{System: writingSystem{}}, "test", nil)
	rec := call(s, "GET", "/v1.47/info", "")
	if rec.Code != 200 || rec.Body.String() != `{"Name":"written"}`+"\n" || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("info: %d %q (%s)", rec.Code, rec.Body.String(), rec.Header().Get("Content-Type"))
	}
	s = NewServer(Backends{System: writingSystem{err: errdefs.ErrUnavailable.WithMessage("no engines")}}, "test", nil)
	wantError(t, call(s, "GET", "/info", ""), 503, "no engines")
}
