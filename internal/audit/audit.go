// Package audit keeps the API's audit trail: one JSON line per call that
// changes something or reaches into a container or a secret (and per read
// when asked), saying who did what to which object, when, and how it went.
// Lines go to a size-rotated file or to stderr through one writer
// goroutine, so an API call never waits on the disk.
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultMaxSizeMB = 100
	DefaultMaxFiles  = 5
	// DefaultQueue entries wait for the writer at most: a burst of a few
	// thousand calls while the disk stalls for a moment.
	DefaultQueue = 8192
	// DefaultWait is how long a call waits for room in a full queue
	// before its entry is dropped (and counted): an API call must not
	// hang on a stuck disk, and a short stall should lose nothing.
	DefaultWait = 100 * time.Millisecond
)

// Stderr is the Path that writes the log to standard error.
const Stderr = "-"

// Config says where the audit log goes and what it holds. The zero value
// (no Path) is no audit log.
type Config struct {
	// Path is the log file, or Stderr; empty: no audit log.
	Path string
	// MaxSizeMB rotates the file before it grows past this many MiB;
	// 0 never rotates.
	MaxSizeMB int
	// MaxFiles rotated files are kept: Path.1 (the newest) to Path.N.
	MaxFiles int
	// Reads audits every call, not only those that change something or
	// reach into a container or a secret.
	Reads bool
	// Who names the caller of r and its role; nil is DefaultWho. It is
	// called with the request as the audit handler receives it.
	Who func(r *http.Request) (name, role string)
	// Queue and Wait bound the entries waiting for the writer and how
	// long a call waits when the queue is full (0: the defaults).
	Queue int
	Wait  time.Duration
}

// Who is the caller of an audited call.
type Who struct {
	Name string `json:"name"`
	Role string `json:"role,omitempty"`
}

// Entry is one line of the audit log. Nothing from a request's body,
// query values other than names, or headers (registry credentials travel
// in X-Registry-Auth) ever goes into it.
type Entry struct {
	// Time is when the line was written (UTC, RFC 3339 with nanoseconds):
	// a call's end, or a stream's start being served and its end.
	Time   string `json:"time"`
	Who    Who    `json:"who"`
	Remote string `json:"remote,omitempty"`
	Method string `json:"method"`
	// Path is the URL path without the /vX.Y prefix and without the query.
	Path string `json:"path"`
	// Action names the call, as "container.create" or
	// "container.exec.start"; "other" for a path shoal does not route.
	Action string `json:"action"`
	// Target is the object the call is about: the container, image,
	// network, volume, node or exec instance in the path, or the name a
	// create asks for.
	Target string `json:"target,omitempty"`
	// Created is the ID (a volume's name) of the object a create made.
	Created string `json:"created,omitempty"`
	// Stream is "start" when a long-lived call (attach, exec start, logs
	// -f, events, build...) starts being served and "end" when it ends.
	Stream string `json:"stream,omitempty"`
	Status int    `json:"status"`
	// Error is the message of an answer with status 400 or above.
	Error string `json:"error,omitempty"`
	// DurationMS is the time since the call was received.
	DurationMS float64 `json:"duration_ms"`
	RequestID  string  `json:"request_id"`
}

// Log writes audit entries. A nil *Log audits nothing.
type Log struct {
	cfg   Config
	out   io.WriteCloser
	log   *slog.Logger
	lines chan []byte
	done  chan struct{}

	mu      sync.RWMutex // closed, against sends on a closed queue
	closed  bool
	dropped atomic.Int64 // entries not queued since the writer last said so

	warn rateWarn
}

// Open starts the audit log of c; it is nil, without error, when c has
// no Path. log receives the log's own troubles (full queue, write errors).
func Open(c Config, log *slog.Logger) (*Log, error) {
	if c.Path == "" {
		return nil, nil
	}
	if c.MaxSizeMB < 0 || c.MaxFiles < 0 {
		return nil, fmt.Errorf("%w: max size %d MiB, max files %d", ErrNegative, c.MaxSizeMB, c.MaxFiles)
	}
	var out io.WriteCloser
	if c.Path == Stderr {
		out = nopCloser{os.Stderr}
	} else {
		f, err := openRotating(c.Path, int64(c.MaxSizeMB)<<20, c.MaxFiles)
		if err != nil {
			return nil, err
		}
		out = f
	}
	return newLog(c, out, log), nil
}

// Errors of Add.
var (
	ErrClosed  = errors.New("audit: log closed")
	ErrDropped = errors.New("audit: entry dropped: the queue stayed full")
	// ErrNegative is a Config with a negative size or file count.
	ErrNegative = errors.New("audit: the rotation size and file count cannot be negative")
)

func newLog(c Config, out io.WriteCloser, log *slog.Logger) *Log {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.Who == nil {
		c.Who = DefaultWho
	}
	if c.Queue <= 0 {
		c.Queue = DefaultQueue
	}
	if c.Wait <= 0 {
		c.Wait = DefaultWait
	}
	l := &Log{cfg: c, out: out, log: log, lines: make(chan []byte, c.Queue), done: make(chan struct{}),
		warn: rateWarn{every: 10 * time.Second}}
	go l.write()
	return l
}

// Add queues e for writing. When the queue stays full for the configured
// wait the entry is dropped: the writer then writes an "audit.dropped"
// entry with the count, so that the gap shows in the trail, and warns.
func (l *Log) Add(e *Entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	line = append(line, '\n')
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	select {
	case l.lines <- line:
		return nil
	default:
	}
	t := time.NewTimer(l.cfg.Wait)
	defer t.Stop()
	select {
	case l.lines <- line:
		return nil
	case <-t.C:
		n := l.dropped.Add(1)
		if l.warn.due(time.Now()) {
			l.log.Warn("audit log entries dropped: the writer is behind (slow or failing disk?)", "dropped", n, "path", l.cfg.Path)
		}
		return ErrDropped
	}
}

// maxBatch bounds one write of queued lines.
const maxBatch = 256 << 10

// write is the one goroutine writing to out: it takes every line queued
// at once into one write.
func (l *Log) write() {
	defer close(l.done)
	var buf []byte
	for line := range l.lines {
		buf = append(buf[:0], line...)
		buf = l.more(buf)
		if n := l.dropped.Swap(0); n > 0 {
			buf = append(buf, droppedLine(n)...)
		}
		if _, err := l.out.Write(buf); err != nil && l.warn.due(time.Now()) {
			l.log.Warn("audit log write failed", "path", l.cfg.Path, "error", err)
		}
	}
}

// more appends the lines already queued to buf, up to maxBatch.
func (l *Log) more(buf []byte) []byte {
	for len(buf) < maxBatch {
		select {
		case line, ok := <-l.lines:
			if !ok {
				return buf
			}
			buf = append(buf, line...)
		default:
			return buf
		}
	}
	return buf
}

// droppedLine is the entry that records n entries lost.
func droppedLine(n int64) []byte {
	b, _ := json.Marshal(struct {
		Time    string `json:"time"`
		Action  string `json:"action"`
		Dropped int64  `json:"dropped"`
	}{now(), "audit.dropped", n})
	return append(b, '\n')
}

// Close writes what is queued and closes the file. Entries added after
// Close are refused with ErrClosed.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.lines)
	l.mu.Unlock()
	<-l.done
	return l.out.Close()
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// rateWarn lets a warning through at most once per every.
type rateWarn struct {
	every time.Duration
	mu    sync.Mutex
	last  time.Time
}

func (w *rateWarn) due(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t.Sub(w.last) < w.every {
		return false
	}
	w.last = t
	return true
}
