package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/containerd/errdefs"
)

// statusOf is the one table that turns errors into HTTP statuses.
func statusOf(err error) int {
	switch {
	case errdefs.IsInvalidArgument(err):
		return http.StatusBadRequest
	case errdefs.IsNotFound(err):
		return http.StatusNotFound
	case errdefs.IsConflict(err), errdefs.IsAlreadyExists(err):
		return http.StatusConflict
	case errdefs.IsUnauthorized(err):
		return http.StatusUnauthorized
	case errdefs.IsPermissionDenied(err):
		return http.StatusForbidden
	case errdefs.IsNotModified(err):
		return http.StatusNotModified
	case errdefs.IsNotImplemented(err):
		return http.StatusNotImplemented
	case errdefs.IsUnavailable(err), errdefs.IsResourceExhausted(err), errdefs.IsFailedPrecondition(err):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	var se interface{ HTTPStatus() int }
	if errors.As(err, &se) {
		return se.HTTPStatus()
	}
	return http.StatusInternalServerError
}

// writeError writes err as Docker's {"message": ...}.
func writeError(w http.ResponseWriter, err error) {
	status := statusOf(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status == http.StatusNotModified {
		return
	}
	_ = newEncoder(w).Encode(struct {
		Message string `json:"message"`
	}{err.Error()})
}

// writeJSON writes v as dockerd does: without Go's HTML escapes (an "&"
// in a command stays "&", not "\u0026").
func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return newEncoder(w).Encode(v)
}

func newEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

func badRequest(msg string) error { return errdefs.ErrInvalidArgument.WithMessage(msg) }
