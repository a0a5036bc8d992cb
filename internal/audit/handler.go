package audit

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Handler wraps next so that its audited calls are logged: every call
// but GET and HEAD, the sensitive reads (attach, archive and export
// downloads, image saves, join tokens, the unlock key), and with
// Config.Reads every call. Other calls go to next untouched. A nil log
// returns next.
func (l *Log) Handler(next http.Handler) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := classify(r.Method, r.URL)
		if !l.cfg.Reads && !c.sensitive && !mutates(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		l.serve(next, w, r, c)
	})
}

// serve runs next for an audited call and logs it when it ends, and
// for a long-lived call also when it starts being served.
func (l *Log) serve(next http.Handler, w http.ResponseWriter, r *http.Request, c call) {
	name, role := l.cfg.Who(r)
	e := Entry{Who: Who{Name: name, Role: role}, Remote: r.RemoteAddr, Method: r.Method, Path: c.path,
		Action: c.action, Target: c.target, RequestID: newRequestID()}
	start := time.Now()
	rec := &recorder{ResponseWriter: w, keepBody: c.creates}
	if c.stream {
		rec.served = func(status int) { l.add(e, c, rec, start, status, "start") }
	}
	defer func() {
		p := recover()
		status, started := rec.result()
		if p != nil && status == 0 {
			status = http.StatusInternalServerError // the server answers so (or drops the connection)
		}
		stream := ""
		if started {
			stream = "end"
		}
		l.add(e, c, rec, start, status, stream)
		if p != nil {
			panic(p)
		}
	}()
	next.ServeHTTP(rec, r)
}

// add completes e with what rec saw and queues it.
func (l *Log) add(e Entry, c call, rec *recorder, start time.Time, status int, stream string) {
	e.Time = now()
	e.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	if status == 0 {
		status = http.StatusOK // a handler that wrote nothing
	}
	e.Status, e.Stream = status, stream
	if status >= 400 {
		e.Error = errorMessage(rec.body.Bytes())
	} else if c.creates && status/100 == 2 {
		e.Created = createdID(rec.body.Bytes())
	}
	_ = l.Add(&e) // a drop is counted and warned about by Add
}

// maxMessage bounds the error message kept from an answer.
const maxMessage = 512

// errorMessage is the message of a Docker JSON error, or the answer's
// first line when it is not one.
func errorMessage(body []byte) string {
	var m struct {
		Message string `json:"message"`
	}
	msg := ""
	if json.Unmarshal(body, &m) == nil {
		msg = m.Message
	} else {
		msg, _, _ = strings.Cut(strings.TrimSpace(string(body)), "\n")
	}
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + "..."
	}
	return msg
}

// createdID is the ID a create answered with (a volume's is its name).
func createdID(body []byte) string {
	var m struct {
		ID   string `json:"Id"` // matches "ID" too
		Name string `json:"Name"`
	}
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	if m.ID != "" {
		return m.ID
	}
	return m.Name
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// maxKept bounds the answer kept to read an error message or a new ID.
const maxKept = 16 << 10

// recorder sees an audited call's status and the start of its answer,
// and tells served when a long-lived call starts being served: its
// status written, or its connection hijacked and the status line sent.
type recorder struct {
	http.ResponseWriter
	keepBody bool
	served   func(status int) // nil: not a long-lived call

	mu      sync.Mutex // status, started: a hijacked stream writes from another goroutine
	status  int
	started bool
	body    bytes.Buffer
}

func (w *recorder) WriteHeader(code int) {
	w.setStatus(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	w.setStatus(http.StatusOK)
	w.mu.Lock()
	if (w.status >= 400 || w.keepBody) && w.body.Len() < maxKept {
		w.body.Write(p[:min(len(p), maxKept-w.body.Len())])
	}
	w.mu.Unlock()
	return w.ResponseWriter.Write(p)
}

// setStatus records the first final status; a long-lived call that
// succeeds is then being served.
func (w *recorder) setStatus(code int) {
	w.mu.Lock()
	if w.status != 0 || code < 200 && code != http.StatusSwitchingProtocols {
		w.mu.Unlock()
		return
	}
	w.status = code
	start := w.served != nil && code < 400
	w.started = w.started || start
	w.mu.Unlock()
	if start {
		w.served(code)
	}
}

// result is the status seen and whether the call started being served.
func (w *recorder) result() (status int, started bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status, w.started
}

// FlushError is what http.NewResponseController(w).Flush calls.
func (w *recorder) FlushError() error {
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush is FlushError for code that asserts http.Flusher.
func (w *recorder) Flush() { _ = w.FlushError() }

// Hijack hands out the connection with its writes watched for the status
// line that the handler writes itself.
func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	hc := &hijacked{Conn: conn, status: w.setStatus}
	return hc, bufio.NewReadWriter(brw.Reader, bufio.NewWriter(hc)), nil
}

// Unwrap lets http.ResponseController reach the other methods
// (deadlines, full duplex).
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// hijacked is a hijacked connection whose first line written, the
// status line, is read for the status.
type hijacked struct {
	net.Conn
	status func(int)

	mu   sync.Mutex
	line []byte
	done bool
}

func (c *hijacked) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.done {
		c.line = append(c.line, p[:min(len(p), 64)]...)
		if i := bytes.IndexByte(c.line, '\n'); i >= 0 || len(c.line) >= 64 {
			c.done = true
			c.status(statusOfLine(c.line))
		}
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// statusOfLine reads the code of "HTTP/1.1 101 UPGRADED"; 0 if none.
func statusOfLine(line []byte) int {
	f := strings.Fields(string(line))
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
		return 0
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return 0
	}
	return code
}

// CloseWrite half-closes the connection where it can, as the handler's
// splice of an attach expects.
func (c *hijacked) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// NetConn is the connection below, for what needs the TCP connection.
func (c *hijacked) NetConn() net.Conn { return c.Conn }
