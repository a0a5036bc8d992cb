package ui

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// execIDRe is an exec instance's ID as dockerd makes them.
var execIDRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

// upgrader accepts a browser's WebSocket only from the console's own
// pages, so another site's page cannot open a terminal with the user's
// client certificate.
var upgrader = websocket.Upgrader{ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10, CheckOrigin: sameOrigin}

// sameOrigin says the request's Origin (if any: a browser always sends
// one) names the host it was sent to.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// serveExec is GET /ui/api/exec/{id}: a WebSocket carrying a TTY exec
// instance's stream both ways. The browser creates the exec (POST
// /containers/{id}/exec with Tty) and resizes it (POST /exec/{id}/resize)
// through the API itself; only the hijacked start, which a browser cannot
// make, is bridged here: an in-process POST /exec/{id}/start, so the API
// checks the caller's role (operator) and scope as for `docker exec`.
func (h *Handler) serveExec(w http.ResponseWriter, r *http.Request, id string) {
	if !execIDRe.MatchString(id) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("No such exec instance: %s", id))
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		writeError(w, http.StatusBadRequest, "a WebSocket upgrade is required")
		return
	}
	if !sameOrigin(r) {
		// Checked before the exec starts, not only at the upgrade.
		writeError(w, http.StatusForbidden, "the console's terminal opens only from its own pages")
		return
	}
	stream, err := h.startExec(r, id)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			writeError(w, ae.Status, ae.Message)
			return
		}
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		stream.Close()
		return // the upgrader answered the client
	}
	bridge(ws, stream)
}

// startExec starts exec id in-process with a hijackable writer and
// returns the raw stream once the API has answered 101 or 200.
func (h *Handler) startExec(r *http.Request, id string) (io.ReadWriteCloser, error) {
	req, err := h.request(r.Context(), r, http.MethodPost, "/exec/"+id+"/start", []byte(`{"Detach":false,"Tty":true}`))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "tcp")
	ours, theirs := net.Pipe()
	hw := &hijackWriter{recorder: recorder{header: http.Header{}}, conn: theirs}
	served := make(chan struct{})
	go func() {
		defer close(served)
		h.api.ServeHTTP(hw, req)
		if !hw.hijacked() {
			// Answered without a stream (an error): what it wrote is the answer.
			theirs.Close()
		}
	}()
	br := bufio.NewReader(ours)
	resp, err := readAnswer(br, served, hw)
	if err != nil {
		ours.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols && resp.StatusCode != http.StatusOK {
		ours.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, apiError(resp.StatusCode, body)
	}
	return &bufferedConn{Reader: br, Conn: ours}, nil
}

// readAnswer reads the API's answer: the status line and headers the
// hijack wrote on the pipe, or, if the API answered without hijacking
// (an error: no such exec, denied), what it wrote to the recorder.
func readAnswer(br *bufio.Reader, served <-chan struct{}, hw *hijackWriter) (*http.Response, error) {
	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.ReadResponse(br, nil)
		got <- result{resp, err}
	}()
	select {
	case res := <-got:
		if res.err == nil {
			return res.resp, nil
		}
		<-served
		if !hw.hijacked() && hw.status != 0 {
			return nil, apiError(hw.status, hw.body.Bytes())
		}
		return nil, fmt.Errorf("ui: exec start: %w", res.err)
	case <-time.After(30 * time.Second):
		return nil, errors.New("ui: exec start: no answer in 30 s")
	}
}

// bridge copies browser → exec (every message's bytes) and exec →
// browser (binary messages) until either side ends.
func bridge(ws *websocket.Conn, stream io.ReadWriteCloser) {
	var once sync.Once
	end := func() {
		stream.Close()
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		ws.Close()
	}
	go func() {
		defer once.Do(end)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if _, err := stream.Write(data); err != nil {
				return
			}
		}
	}()
	defer once.Do(end)
	buf := make([]byte, 32<<10)
	for {
		n, err := stream.Read(buf)
		if n > 0 {
			if werr := ws.WriteMessage(websocket.BinaryMessage, buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hijackWriter is an in-process ResponseWriter the API can hijack: the
// connection it gets is one end of a pipe whose other end is ours.
type hijackWriter struct {
	recorder
	conn net.Conn
	mu   sync.Mutex
	took bool
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.took = true
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}

func (w *hijackWriter) hijacked() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.took
}

// bufferedConn reads through the reader that read the answer's headers
// (it may hold the stream's first bytes) and writes to the pipe.
type bufferedConn struct {
	*bufio.Reader
	net.Conn
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.Reader.Read(p) }
