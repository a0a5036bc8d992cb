package manager

import (
	"errors"
	"testing"

	"github.com/shoal-dev/shoal/internal/engine"
)

// A refusal every engine gives is the client's error, in the engine's
// words; anything else leaves the answer to the engines that did answer.
func TestRefusedByAll(t *testing.T) {
	bad := func(node string) error {
		return nodeErr{node: node, err: engine.StatusError(500, "syntax error in pattern")}
	}
	if err := refusedByAll([]error{bad("a"), bad("b")}, 2); err == nil || err.Error() != "syntax error in pattern" {
		t.Fatalf("every engine refused alike: %v", err)
	}
	for name, tc := range map[string]struct {
		errs []error
		n    int
	}{
		"one engine answered": {[]error{bad("a")}, 2},
		"different refusals":  {[]error{bad("a"), nodeErr{node: "b", err: engine.StatusError(500, "disk full")}}, 2},
		"unreachable":         {[]error{nodeErr{node: "a", err: engine.ErrUnreachable}, nodeErr{node: "b", err: engine.ErrUnreachable}}, 2},
		"no engine":           {nil, 0},
		"not a node's error":  {[]error{errors.New("x")}, 1},
	} {
		if err := refusedByAll(tc.errs, tc.n); err != nil {
			t.Errorf("%s: %v, want nil", name, err)
		}
	}
}
