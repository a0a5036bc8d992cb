package services

import (
	"fmt"
	"net/http"

	"github.com/containerd/errdefs"
)

// Swarm mode's manager answers the daemon over gRPC, and dockerd passes
// its errors on as they print: "rpc error: code = X desc = ...". Clients
// and scripts see those words, so the errors swarmkit makes carry them.

// rpcError is an error worded as dockerd relays a swarmkit one.
func rpcError(code, msg string) string { return "rpc error: code = " + code + " desc = " + msg }

func invalidArg(format string, a ...any) error {
	return errdefs.ErrInvalidArgument.WithMessage(rpcError("InvalidArgument", fmt.Sprintf(format, a...)))
}

func unimplemented(msg string) error {
	return errdefs.ErrNotImplemented.WithMessage(rpcError("Unimplemented", msg))
}

// ErrOutOfSequence is an update based on a version the service has moved
// past (dockerd: 500 "update out of sequence"; the client inspects again
// and retries).
var ErrOutOfSequence = &statusError{status: http.StatusInternalServerError, msg: rpcError("Unknown", "update out of sequence")}

// statusError is an error with the HTTP status dockerd gives it where no
// errdefs class has that status.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string   { return e.msg }
func (e *statusError) HTTPStatus() int { return e.status }

// errNoPreviousSpecAuth is an update with registryAuthFrom=previous-spec
// of a service never updated: dockerd's own check, a plain error it
// answers 500.
var errNoPreviousSpecAuth = &statusError{status: http.StatusInternalServerError, msg: "service does not have a previous spec"}

// errNoPreviousSpec is a rollback of a service never updated (swarmkit's
// FailedPrecondition, which dockerd answers 400).
func errNoPreviousSpec(id string) error {
	return errdefs.ErrInvalidArgument.WithMessage(rpcError("FailedPrecondition", "service "+id+" does not have a previous spec"))
}

func errServiceNotFound(ref string) error {
	return errdefs.ErrNotFound.WithMessage("service " + ref + " not found")
}

func errTaskNotFound(ref string) error {
	return errdefs.ErrNotFound.WithMessage("task " + ref + " not found")
}

func errAmbiguous(kind, ref string, n int) error {
	return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("%s %s is ambiguous (%d matches found)", kind, ref, n))
}

func errNameTaken(name string) error {
	return errdefs.ErrConflict.WithMessage(rpcError("AlreadyExists", "name conflicts with an existing object: service "+name+" already exists"))
}
