package cluster

import (
	"context"
	"errors"
	"testing"

	"github.com/shoal-dev/shoal/internal/store"
)

// A join's node record create that timed out but was committed finds its
// own key on the retry: that is success, not a refused join. The first
// attempt finding the key is a real conflict.
func TestCreatedOnceRetry(t *testing.T) {
	attempts := []error{context.DeadlineExceeded, store.ErrExists}
	f := createdOnce(func(context.Context) error {
		err := attempts[0]
		attempts = attempts[1:]
		return err
	})
	if err := f(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first attempt: %v", err)
	}
	if err := f(context.Background()); err != nil {
		t.Errorf("retry that found its own record: %v, want success", err)
	}
	first := createdOnce(func(context.Context) error { return store.ErrExists })
	if err := first(context.Background()); !errors.Is(err, store.ErrExists) {
		t.Errorf("first attempt finding the key: %v, want ErrExists", err)
	}
}
