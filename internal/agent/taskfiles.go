package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// A node's own endpoint: requests on the tunnel whose path starts with
// LocalPrefix are answered by the agent itself instead of its engine. Its
// one use is task files: the data of a task's secrets and configs, which
// the agent keeps in a tmpfs (memory) for the task's container to
// bind-mount read-only, as dockerd does for swarm mode's secrets, so that
// they are never written to a disk of the node. A manager reaches the
// endpoint through the engine's client like any engine call; requests
// forwarded for API clients always start with an API path, never this.
// A stream goes to the agent or to the engine by its first request, so a
// manager sends each local call on a fresh stream of its own (CallLocal),
// never on one a client pools for engine calls.

// LocalPrefix starts the paths the agent serves itself.
const LocalPrefix = "/_shoal/agent/"

// TaskFilesPath is where the files of a task are put (PUT, a
// TaskFilesRequest, answered with a TaskFilesAnswer) and removed (DELETE).
func TaskFilesPath(taskID string) string { return LocalPrefix + "v1/tasks/" + taskID + "/files" }

// TaskFile is one file of a task: Name is its name in the task's
// directory (letters and digits), the rest what it holds and how.
type TaskFile struct {
	Name     string
	Data     []byte
	UID, GID int
	Mode     os.FileMode
}

// TaskFilesRequest puts a task's files, replacing any it had.
type TaskFilesRequest struct{ Files []TaskFile }

// TaskFilesAnswer names the directory on the node holding the task's
// files (each at Dir/Name), for the container's bind mounts.
type TaskFilesAnswer struct{ Dir string }

// ErrNoTmpfs means the agent could not keep task files in memory.
var ErrNoTmpfs = errors.New("agent: no tmpfs for task files")

// TaskFilesConfig configures a node's task files.
type TaskFilesConfig struct {
	// Dir is where the agent mounts its tmpfs (made on first use).
	Dir string
	// DialEngine reaches the local engine, whose events say when a
	// task's container is gone.
	DialEngine func(ctx context.Context) (net.Conn, error)
	// Mount makes Dir a tmpfs unless it is one (default: mountTmpfs);
	// tests replace it.
	Mount  func(dir string) error
	Logger *slog.Logger
}

// TaskFiles keeps task files on a node; one serves every tunnel of the
// node (each to a manager).
type TaskFiles struct {
	cfg TaskFilesConfig
	log *slog.Logger
	hc  *http.Client
}

// NewTaskFiles returns the node's task files in cfg.Dir.
func NewTaskFiles(cfg TaskFilesConfig) *TaskFiles {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Mount == nil {
		cfg.Mount = mountTmpfs
	}
	f := &TaskFiles{cfg: cfg, log: cfg.Logger}
	if cfg.DialEngine != nil {
		f.hc = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return cfg.DialEngine(ctx)
		}}}
	}
	return f
}

var (
	taskFilesRoute = regexp.MustCompile(`^` + regexp.QuoteMeta(LocalPrefix) + `v1/tasks/([a-z0-9]+)/files$`)
	fileName       = regexp.MustCompile(`^[a-zA-Z0-9]+$`)
)

// ServeHTTP serves the node's endpoint.
func (f *TaskFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := taskFilesRoute.FindStringSubmatch(r.URL.Path)
	if m == nil {
		http.Error(w, "agent: no such endpoint", http.StatusNotFound)
		return
	}
	var err error
	switch r.Method {
	case http.MethodPut:
		err = f.put(w, r, m[1])
	case http.MethodDelete:
		err = f.remove(m[1])
	default:
		http.Error(w, "agent: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err != nil {
		f.log.Warn("agent: task files", "task", m[1], "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func (f *TaskFiles) put(w http.ResponseWriter, r *http.Request, taskID string) error {
	var req TaskFilesRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil {
		return fmt.Errorf("agent: task files of %s: %w", taskID, err)
	}
	dir, err := f.write(taskID, req.Files)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(TaskFilesAnswer{Dir: dir})
}

// write puts files in a fresh directory and moves it in place of the
// task's, so a task never sees half of them.
func (f *TaskFiles) write(taskID string, files []TaskFile) (string, error) {
	if err := f.cfg.Mount(f.cfg.Dir); err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrNoTmpfs, f.cfg.Dir, err)
	}
	tmp, err := os.MkdirTemp(f.cfg.Dir, ".new-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for _, file := range files {
		if !fileName.MatchString(file.Name) {
			return "", fmt.Errorf("agent: bad task file name %q", file.Name)
		}
		if err := writeFile(filepath.Join(tmp, file.Name), file); err != nil {
			return "", err
		}
	}
	dir := filepath.Join(f.cfg.Dir, taskID)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

func writeFile(path string, file TaskFile) error {
	if err := os.WriteFile(path, file.Data, 0o600); err != nil {
		return err
	}
	if err := os.Chown(path, file.UID, file.GID); err != nil {
		return err
	}
	return os.Chmod(path, file.Mode.Perm())
}

func (f *TaskFiles) remove(taskID string) error {
	return os.RemoveAll(filepath.Join(f.cfg.Dir, taskID))
}

// taskIDLabel is swarm mode's label naming a container's task.
const taskIDLabel = "com.docker.swarm.task.id"

// sweepEvery is how often files of tasks without a container are looked
// for; sweepGrace spares the files of a task whose container is being
// made.
const (
	sweepEvery = time.Minute
	sweepGrace = 2 * time.Minute
)

// Run removes a task's files when the engine removes its container, and
// now and then those of tasks that have no container (made for a
// container whose create failed, or removed while the agent was down),
// until ctx ends.
func (f *TaskFiles) Run(ctx context.Context) error {
	if f.hc == nil {
		return nil
	}
	defer f.hc.CloseIdleConnections()
	go f.sweepLoop(ctx)
	for ctx.Err() == nil {
		if err := f.follow(ctx); err != nil && ctx.Err() == nil {
			f.log.Debug("agent: engine events", "err", err)
		}
		if !sleep(ctx, time.Second) {
			break
		}
	}
	return nil
}

// follow reads the engine's container destroy events until they end.
func (f *TaskFiles) follow(ctx context.Context) error {
	q := url.Values{"filters": {`{"type":["container"],"event":["destroy"]}`}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://engine/events?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev struct {
			Actor struct{ Attributes map[string]string }
		}
		if err := dec.Decode(&ev); err != nil {
			return err
		}
		if id := ev.Actor.Attributes[taskIDLabel]; id != "" && fileName.MatchString(id) {
			if err := f.remove(id); err != nil {
				f.log.Warn("agent: remove task files", "task", id, "err", err)
			}
		}
	}
}

func (f *TaskFiles) sweepLoop(ctx context.Context) {
	for sleep(ctx, sweepEvery) {
		if err := f.sweep(ctx, time.Now()); err != nil {
			f.log.Debug("agent: task files sweep", "err", err)
		}
	}
}

// sweep removes the files of tasks older than sweepGrace that have no
// container on the engine.
func (f *TaskFiles) sweep(ctx context.Context, now time.Time) error {
	entries, err := os.ReadDir(f.cfg.Dir)
	if err != nil || len(entries) == 0 {
		return nil // nothing was ever put
	}
	live, err := f.liveTasks(ctx)
	if err != nil {
		return err
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || live[e.Name()] || now.Sub(info.ModTime()) < sweepGrace {
			continue
		}
		if err := os.RemoveAll(filepath.Join(f.cfg.Dir, e.Name())); err != nil {
			f.log.Warn("agent: remove task files", "task", e.Name(), "err", err)
		}
	}
	return nil
}

// liveTasks are the task IDs of the engine's containers.
func (f *TaskFiles) liveTasks(ctx context.Context) (map[string]bool, error) {
	q := url.Values{"all": {"1"}, "filters": {`{"label":["` + taskIDLabel + `"]}`}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://engine/containers/json?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("agent: list containers: %s", resp.Status)
	}
	var list []struct{ Labels map[string]string }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, c := range list {
		live[c.Labels[taskIDLabel]] = true
	}
	return live, nil
}

// CallLocal sends req to the node's endpoint on conn, a fresh stream
// to the node (Endpoint.Dial, or an engine client's Dial through the
// tunnel), which it closes once the answer is read in full.
func CallLocal(conn net.Conn, req *http.Request) (*http.Response, error) {
	defer conn.Close()
	if d, ok := req.Context().Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	req.Close = true
	if err := req.Write(conn); err != nil {
		return nil, fmt.Errorf("agent: local call: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, fmt.Errorf("agent: local call: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("agent: local call: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// isLocal says whether a stream's request line (its start) is for the
// agent itself.
func isLocal(start []byte) bool {
	_, rest, ok := bytes.Cut(start, []byte(" "))
	return ok && bytes.HasPrefix(rest, []byte(LocalPrefix))
}

// localPeek is how much of a stream decides where it goes: the longest
// method, a space and the prefix. Every request is longer.
const localPeek = len("DELETE ") + len(LocalPrefix)

// serveLocal answers the one request on conn with h, then closes it: a
// manager's client opens a stream for each of these calls (the answer
// says Connection: close).
func serveLocal(conn net.Conn, br *bufio.Reader, h http.Handler) {
	defer conn.Close()
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	rw := &localResponse{header: http.Header{}, status: http.StatusOK}
	h.ServeHTTP(rw, req)
	resp := &http.Response{
		StatusCode: rw.status, ProtoMajor: 1, ProtoMinor: 1, Header: rw.header, Close: true,
		ContentLength: int64(rw.body.Len()), Body: io.NopCloser(&rw.body),
	}
	resp.Header.Set("Content-Length", strconv.Itoa(rw.body.Len()))
	_ = resp.Write(conn)
}

// localResponse collects an answer of the node's endpoint.
type localResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (r *localResponse) Header() http.Header { return r.header }

func (r *localResponse) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
}

func (r *localResponse) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}
