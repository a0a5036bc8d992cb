package services

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/store"
)

// Logs of services and tasks: each task's container logs are read from
// its node, with the engine's timestamps and details, and written to the
// client as swarm mode writes them: one message per line, the details
// holding the task's context (node, service and task IDs) that the docker
// CLI builds its "name.slot.id@node |" prefix from. A node that cannot be
// read is reported in the stream and the other tasks' logs go on (swarm
// mode ends the whole stream: moby#37336).

// The context details swarm mode adds to every line.
const (
	detailNode    = "com.docker.swarm.node.id"
	detailService = "com.docker.swarm.service.id"
	detailTask    = "com.docker.swarm.task.id"
)

// The stream types of a multiplexed stream (stdcopy's).
const (
	streamStdout = 1
	streamStderr = 2
)

// timestampFormat is the engines' fixed-width RFC 3339 (as dockerd's).
const timestampFormat = "2006-01-02T15:04:05.000000000Z07:00"

// Logs resolves ref, a service (task false) or a task, and returns
// whether its logs are a TTY's (raw, not multiplexed) and the function
// that writes them to w until they end (or, following, until ctx ends).
func (b *Backend) Logs(ctx context.Context, ref string, task bool, opts backend.ServiceLogsOptions) (bool, func(w io.Writer) error, error) {
	if err := checkTail(opts.Tail); err != nil {
		return false, nil, err
	}
	sel := &logSelection{b: b, opts: opts}
	if task {
		t, err := b.lookupTask(ctx, ref)
		if err != nil {
			return false, nil, err
		}
		sel.task = &t
		sel.tty = t.Spec.ContainerSpec != nil && t.Spec.ContainerSpec.TTY
	} else {
		s, err := b.lookupService(ctx, ref)
		if err != nil {
			return false, nil, err
		}
		sel.serviceID = s.ID
		sel.tty = s.Spec.TaskTemplate.ContainerSpec != nil && s.Spec.TaskTemplate.ContainerSpec.TTY
	}
	return sel.tty, func(w io.Writer) error { return sel.run(ctx, w) }, nil
}

func checkTail(tail string) error {
	if tail == "" || tail == "all" {
		return nil
	}
	n, err := strconv.Atoi(tail)
	if err != nil {
		return errdefs.ErrInvalidArgument.WithMessage(`tail value must be a positive integer or "all"`)
	}
	if n < 0 {
		return errdefs.ErrInvalidArgument.WithMessage("negative tail values not supported")
	}
	return nil
}

// logSelection is one logs call: what it reads and how it writes.
type logSelection struct {
	b         *Backend
	opts      backend.ServiceLogsOptions
	tty       bool
	serviceID string      // a service's logs, or
	task      *store.Task // one task's

	mu      sync.Mutex // the writer, and started
	w       io.Writer
	started map[string]bool
	wg      sync.WaitGroup
}

// run streams the selection's logs to w.
func (s *logSelection) run(ctx context.Context, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.w, s.started = w, map[string]bool{}
	if s.task != nil {
		s.start(ctx, *s.task)
		s.wg.Wait()
		return nil
	}
	tasks, rev, err := s.b.tasks.List(ctx)
	if err != nil {
		return fmt.Errorf("services: list tasks: %w", err)
	}
	for _, t := range tasks {
		if t.ServiceID == s.serviceID {
			s.start(ctx, t)
		}
	}
	if !s.opts.Follow {
		s.wg.Wait()
		return nil
	}
	// Following a service follows its new tasks too, as swarm mode does.
	for ch := range s.b.tasks.Watch(ctx, rev+1) {
		if ch.Err != nil {
			s.b.log.Warn("service logs: task watch failed", "service", s.serviceID, "error", ch.Err)
			break
		}
		if t := ch.Item.Value; t.ServiceID == s.serviceID {
			s.start(ctx, t)
		}
	}
	<-ctx.Done()
	s.wg.Wait()
	return nil
}

// start reads t's container logs, once, if it has a container.
func (s *logSelection) start(ctx context.Context, t store.Task) {
	cs := t.Status.ContainerStatus
	if cs == nil || cs.ContainerID == "" || t.NodeID == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started[t.ID] {
		return
	}
	s.started[t.ID] = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.read(ctx, t, cs.ContainerID)
	}()
}

// read copies one task container's logs. Following, a node that goes
// down is waited for: the client is told once, and when the node answers
// again the task's logs go on from the last line it got.
func (s *logSelection) read(ctx context.Context, t store.Task, containerID string) {
	if s.b.engines == nil {
		return
	}
	q := s.engineQuery()
	down := false
	for {
		opened, last, err := s.copyOnce(ctx, t, containerID, q, down)
		if err == nil || errors.Is(err, io.EOF) || ctx.Err() != nil {
			return
		}
		if !down || opened {
			s.warn(ctx, t, err)
		}
		if !s.opts.Follow || (!opened && !errdefs.IsUnavailable(err)) {
			return
		}
		down = true
		if last != "" {
			if ts, perr := time.Parse(time.RFC3339Nano, last); perr == nil {
				q.Set("since", unixSince(ts.Add(time.Nanosecond)))
				q.Del("tail")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.b.logRetry):
		}
	}
}

// engineQuery is what each engine is asked: always the timestamps and
// details (to rewrite each line as the client asked), the rest as the
// client asked.
func (s *logSelection) engineQuery() url.Values {
	q := url.Values{"timestamps": {"1"}, "details": {"1"}}
	for k, on := range map[string]bool{"stdout": s.opts.ShowStdout, "stderr": s.opts.ShowStderr, "follow": s.opts.Follow} {
		if on {
			q.Set(k, "1")
		}
	}
	if s.opts.Tail != "" {
		q.Set("tail", s.opts.Tail)
	}
	if s.opts.Since != "" {
		q.Set("since", s.opts.Since)
	}
	return q
}

// unixSince is t as the since parameter reads it (seconds.nanoseconds).
func unixSince(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

// copyOnce opens the container's logs once and copies them until they
// end: whether they opened, the timestamp of the last message copied,
// and why they ended. back says the node was down: its return is told.
func (s *logSelection) copyOnce(ctx context.Context, t store.Task, containerID string, q url.Values, back bool) (bool, string, error) {
	rc, err := s.b.engines.ContainerLogs(ctx, t.NodeID, containerID, q)
	if err != nil {
		return false, "", err
	}
	defer rc.Close()
	if back {
		s.b.log.Info("service logs: a task's node is back", "task", t.ID, "node", t.NodeID)
		s.note(t, fmt.Sprintf("shoal: node %s is back: the logs of task %s go on\n", t.NodeID, t.ID))
	}
	var last string
	copyMsg := func(stream byte, msg []byte) {
		if ts, _, ok := bytes.Cut(msg, []byte(" ")); ok {
			last = string(ts)
		}
		s.write(t, stream, msg)
	}
	if s.tty {
		err = readLines(rc, func(line []byte) { copyMsg(streamStdout, line) })
	} else {
		err = readFrames(rc, copyMsg)
	}
	return true, last, err
}

// warn tells the client, in the task's own stream, that its logs stopped.
func (s *logSelection) warn(ctx context.Context, t store.Task, err error) {
	if ctx.Err() != nil {
		return // the client left
	}
	s.b.log.Warn("service logs: a task's logs are unavailable", "task", t.ID, "node", t.NodeID, "error", err)
	s.note(t, fmt.Sprintf("shoal: the logs of task %s on node %s are unavailable (%v); the other tasks' logs go on\n", t.ID, t.NodeID, err))
}

// note writes one line of shoal's own in the task's stream (stderr), with
// the task's context, so the CLI prefixes it as the task's lines.
func (s *logSelection) note(t store.Task, msg string) {
	ts := s.b.now().UTC().Format(timestampFormat)
	s.write(t, streamStderr, []byte(ts+"  "+msg))
}

// write rewrites one engine message ("<timestamp> <details> <line>") as
// the client asked and writes it.
func (s *logSelection) write(t store.Task, stream byte, msg []byte) {
	out := s.format(t, msg)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tty {
		_, _ = s.w.Write(out)
	} else {
		var hdr [8]byte
		hdr[0] = stream
		binary.BigEndian.PutUint32(hdr[4:], uint32(len(out)))
		_, _ = s.w.Write(append(hdr[:], out...))
	}
	if f, ok := s.w.(interface{ Flush() }); ok {
		f.Flush()
	}
}

func (s *logSelection) format(t store.Task, msg []byte) []byte {
	ts, rest, _ := bytes.Cut(msg, []byte(" "))
	details, line, ok := bytes.Cut(rest, []byte(" "))
	if !ok {
		details, line = nil, rest
	}
	var out []byte
	if s.opts.Timestamps {
		out = append(append(out, ts...), ' ')
	}
	if s.opts.Details {
		out = append(append(out, contextDetails(string(details), t)...), ' ')
	}
	return append(out, line...)
}

// contextDetails is the container's own details (k=v,... URL-escaped)
// with the task's context set, sorted by key as dockerd writes them.
func contextDetails(raw string, t store.Task) string {
	attrs := map[string]string{}
	for _, kv := range strings.Split(raw, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		k, _ = url.QueryUnescape(k)
		v, _ = url.QueryUnescape(v)
		attrs[k] = v
	}
	attrs[detailNode], attrs[detailService], attrs[detailTask] = t.NodeID, t.ServiceID, t.ID
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = url.QueryEscape(k) + "=" + url.QueryEscape(attrs[k])
	}
	return strings.Join(parts, ",")
}

// readFrames reads a multiplexed stream, one message per frame.
func readFrames(r io.Reader, fn func(stream byte, msg []byte)) error {
	br := bufio.NewReaderSize(r, 32<<10)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("services: log stream cut short: %w", err)
			}
			return err
		}
		n := binary.BigEndian.Uint32(hdr[4:])
		msg := make([]byte, n)
		if _, err := io.ReadFull(br, msg); err != nil {
			return fmt.Errorf("services: log stream cut short: %w", err)
		}
		stream := hdr[0]
		if stream != streamStderr {
			stream = streamStdout
		}
		fn(stream, msg)
	}
}

// readLines reads a TTY's raw stream, one message per line.
func readLines(r io.Reader, fn func(line []byte)) error {
	br := bufio.NewReaderSize(r, 32<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			fn(line)
		}
		if err != nil {
			return err
		}
	}
}
