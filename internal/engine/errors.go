package engine

import (
	"net/http"

	"github.com/containerd/errdefs"
)

// Sentinel errors of engine operations. Each is also of a containerd/errdefs
// class, so the API edge's one error→status table maps it to dockerd's
// status; the errors returned carry the engine's own words (what the CLI
// prints) and match these sentinels with errors.Is.
var (
	ErrNotFound    = errdefs.ErrNotFound.WithMessage("engine: not found")
	ErrConflict    = errdefs.ErrConflict.WithMessage("engine: conflict")
	ErrInvalid     = errdefs.ErrInvalidArgument.WithMessage("engine: invalid request")
	ErrUnavailable = errdefs.ErrUnavailable.WithMessage("engine: unavailable")
	// ErrSubscriberTooSlow ends a bus subscription that fell a whole
	// buffer behind: it is closed rather than allowed to stall the engines
	// or silently miss events.
	ErrSubscriberTooSlow = errdefs.ErrUnavailable.WithMessage("engine: event subscriber too slow, events lost")
)

// engineError is an engine's answer: its message, of a sentinel's class.
type engineError struct {
	kind error
	msg  string
}

func (e *engineError) Error() string { return e.msg }
func (e *engineError) Unwrap() error { return e.kind }

// StatusError maps an HTTP status to the errdefs class with message msg;
// 400, 404, 409 and 503 are also the engine's sentinels.
func StatusError(status int, msg string) error {
	switch status {
	case http.StatusBadRequest:
		return &engineError{ErrInvalid, msg}
	case http.StatusUnauthorized:
		return errdefs.ErrUnauthenticated.WithMessage(msg)
	case http.StatusForbidden:
		return errdefs.ErrPermissionDenied.WithMessage(msg)
	case http.StatusNotFound:
		return &engineError{ErrNotFound, msg}
	case http.StatusNotModified:
		return errdefs.ErrNotModified.WithMessage(msg)
	case http.StatusConflict:
		return &engineError{ErrConflict, msg}
	case http.StatusNotImplemented:
		return errdefs.ErrNotImplemented.WithMessage(msg)
	case http.StatusServiceUnavailable:
		return &engineError{ErrUnavailable, msg}
	}
	return errdefs.ErrUnknown.WithMessage(msg)
}

// unavailable wraps a failure to reach the engine at all.
func unavailable(err error) error {
	return &engineError{ErrUnavailable, err.Error()}
}
