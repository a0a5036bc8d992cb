package dockerapi

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/containerd/errdefs"
)

// The store's no-quorum error is of errdefs' unavailable class; the edge
// must answer 503 for it, wrapped or not, without importing the store.
func TestUnavailableClassIs503(t *testing.T) {
	noQuorum := errdefs.ErrUnavailable.WithMessage("store: no quorum")
	for _, err := range []error{noQuorum, fmt.Errorf("update node: %w", noQuorum)} {
		if got := statusOf(err); got != http.StatusServiceUnavailable {
			t.Errorf("%v: status %d, want 503", err, got)
		}
	}
}
