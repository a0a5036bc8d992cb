package manager_test

import (
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/manager"
)

// The manager serves every noun of the API; the check lives with the
// wiring side (tests, cli, run), since manager does not import dockerapi.
var _ dockerapi.Backend = (*manager.Manager)(nil)
