package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// call makes one request to the Docker API in-process: the caller's
// context carries its identity, so the API authorizes the call exactly
// as if the browser had made it, and its address counts in the same
// per-client limits. A status other than 2xx is returned as an *APIError.
func (h *Handler) call(r *http.Request, method, target string, body []byte) ([]byte, error) {
	req, err := h.request(r.Context(), r, method, target, body)
	if err != nil {
		return nil, err
	}
	rec := &recorder{header: http.Header{}}
	h.api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status/100 != 2 {
		return nil, apiError(rec.status, rec.body.Bytes())
	}
	return rec.body.Bytes(), nil
}

// request builds an in-process request made on behalf of r.
func (h *Handler) request(ctx context.Context, r *http.Request, method, target string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("ui: request %s %s: %w", method, target, err)
	}
	req.RemoteAddr, req.TLS, req.Host = r.RemoteAddr, r.TLS, r.Host
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// APIError is an answer of the Docker API other than 2xx, kept with its
// status so that the console answers the browser with the same.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("ui: API answered %d: %s", e.Status, e.Message) }

func apiError(status int, body []byte) *APIError {
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &m) != nil || m.Message == "" {
		m.Message = http.StatusText(status)
	}
	return &APIError{Status: status, Message: m.Message}
}

// recorder keeps an in-process answer in memory.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }
