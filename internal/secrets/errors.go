package secrets

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/containerd/errdefs"
)

// Swarm mode's manager answers the daemon over gRPC, and dockerd passes
// its errors on as they print: "rpc error: code = X desc = ...". Clients
// and scripts see those words, so the errors swarmkit makes carry them;
// the daemon's own (lookups by name or prefix) have none.

// Limits of swarm mode's manager (swarmkit's MaxSecretSize and
// MaxConfigSize): the data must be shorter than these.
const (
	MaxSecretSize = 500 * 1024
	MaxConfigSize = 1000 * 1024
)

func rpcError(code, msg string) string { return "rpc error: code = " + code + " desc = " + msg }

func invalidArg(format string, a ...any) error {
	return errdefs.ErrInvalidArgument.WithMessage(rpcError("InvalidArgument", fmt.Sprintf(format, a...)))
}

func errNotFound(kind, ref string) error {
	return errdefs.ErrNotFound.WithMessage(kind + " " + ref + " not found")
}

func errAmbiguous(kind, ref string, n int) error {
	return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("%s %s is ambiguous (%d matches found)", kind, ref, n))
}

func errExists(kind, name string) error {
	return errdefs.ErrConflict.WithMessage(rpcError("AlreadyExists", kind+" "+name+" already exists"))
}

// errInUse is swarm mode's refusal to remove what a service references
// (InvalidArgument: dockerd answers 400).
func errInUse(kind, name string, services []string) error {
	what := "services"
	if len(services) == 1 {
		what = "service"
	}
	return invalidArg("%s '%s' is in use by the following %s: %s", kind, name, what, strings.Join(services, ", "))
}

// errDriver refuses a secret driver: shoal keeps every secret in its own
// store (swarm mode asks the plugin, which shoal has none of).
func errDriver(name string) error {
	if name == "" {
		return invalidArg("secret driver must have a name")
	}
	return invalidArg("secret driver %s is not supported: shoal has no secret drivers (plugins); "+
		"create the secret with its data instead", name)
}

// ErrOutOfSequence is an update based on a version the object has moved
// past (dockerd: 500 "update out of sequence"; the client inspects again
// and retries).
var ErrOutOfSequence = &statusError{status: http.StatusInternalServerError, msg: rpcError("Unknown", "update out of sequence")}

// ErrNoDelivery refuses a service that references secrets where no node
// can receive them from memory.
var ErrNoDelivery = errdefs.ErrNotImplemented.WithMessage("secrets are delivered to tasks only on the built-in cluster " +
	"(shoal init / shoal join), whose nodes' agents keep them in memory: shoal manage's nodes run no agent; " +
	"configs work on both")

// statusError is an error with the HTTP status dockerd gives it where no
// errdefs class has that status.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string   { return e.msg }
func (e *statusError) HTTPStatus() int { return e.status }
