package ui

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
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

// stream makes a GET to the API in-process, as call does, and hands its
// body to read as the API writes it.
func (h *Handler) stream(r *http.Request, target string, read func(*json.Decoder) error) error {
	req, err := h.request(r.Context(), r, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	// Buffered: the API writes a list entry by entry, and each write to a
	// pipe waits for its reader.
	sw := &streamWriter{header: http.Header{}, bw: bufio.NewWriterSize(pw, 256<<10), started: make(chan struct{})}
	go func() {
		h.api.ServeHTTP(sw, req)
		sw.start(http.StatusOK)
		pw.CloseWithError(sw.bw.Flush())
	}()
	<-sw.started
	if sw.status/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(pr, 64<<10))
		pr.Close()
		return apiError(sw.status, body)
	}
	err = read(json.NewDecoder(pr))
	// Closing the pipe ends the API's writes if read stopped early.
	pr.Close()
	if err != nil {
		return fmt.Errorf("ui: reading %s: %w", target, err)
	}
	return nil
}

// streamWriter passes an in-process answer's body through a pipe; started
// is closed once its status is known.
type streamWriter struct {
	header  http.Header
	bw      *bufio.Writer
	status  int
	once    sync.Once
	started chan struct{}
}

func (w *streamWriter) Header() http.Header { return w.header }

func (w *streamWriter) start(code int) {
	w.once.Do(func() {
		w.status = code
		close(w.started)
	})
}

func (w *streamWriter) WriteHeader(code int) { w.start(code) }

func (w *streamWriter) Write(b []byte) (int, error) {
	w.start(http.StatusOK)
	return w.bw.Write(b)
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
