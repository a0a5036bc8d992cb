package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ErrUnreachable says a request's outcome is unknown: the engine could not
// be reached, or its answer not read. It is of the ErrUnavailable class.
var ErrUnreachable = &engineError{ErrUnavailable, "engine: unreachable"}

func unreachable(format string, args ...any) error {
	return &engineError{ErrUnreachable, fmt.Sprintf(format, args...)}
}

// CreateSpec is a container to create. Body is the Docker create request
// ({Config..., "HostConfig": ..., "NetworkingConfig": ...}) kept verbatim,
// so no field a client sent is lost on the way to the engine.
type CreateSpec struct {
	Name     string
	Platform string
	Body     json.RawMessage
	// APIVersion is the API version Body is written for ("": the engine's).
	APIVersion string
}

// Created is an engine's answer to a create.
type Created struct {
	ID       string
	Warnings []string
}

// ContainerInspect is what shoal reads of a container's inspect; Raw is
// the whole answer as the engine sent it.
type ContainerInspect struct {
	ID         string
	Name       string // "/web"
	State      string // "running", "exited", ...
	Running    bool
	ExitCode   int
	Config     json.RawMessage
	HostConfig json.RawMessage
	Raw        json.RawMessage
}

// RemoveOptions tune a container remove.
type RemoveOptions struct {
	Force   bool // kill it if running
	Volumes bool // remove its anonymous volumes
}

// ListOptions tune a container list.
type ListOptions struct {
	All     bool                // stopped containers too
	Size    bool                // compute sizes (slow)
	Filters map[string][]string // the engine's list filters
}

// WaitResult is how a waited-for container ended.
type WaitResult struct {
	StatusCode int64
	Error      string // the engine's wait error, if any
}

// Create creates a container. An engine's refusal is returned as its
// error (ErrConflict for a name in use, ErrInvalid, ...); ErrUnreachable
// means the engine may or may not have created it.
func (e *Engine) Create(ctx context.Context, spec CreateSpec) (Created, error) {
	q := url.Values{}
	if spec.Name != "" {
		q.Set("name", spec.Name)
	}
	if spec.Platform != "" {
		q.Set("platform", spec.Platform)
	}
	var out struct {
		ID       string `json:"Id"`
		Warnings []string
	}
	resp, err := e.do(ctx, "POST", e.APIPath(spec.APIVersion, "/containers/create"), q, spec.Body)
	if err != nil {
		return Created{}, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.ID == "" {
		return Created{}, unreachable("bad create answer: %v", err)
	}
	return Created{ID: out.ID, Warnings: out.Warnings}, nil
}

// Start starts a container; one already running is no error.
func (e *Engine) Start(ctx context.Context, id string) error {
	return e.post(ctx, "/containers/"+id+"/start", nil)
}

// Stop stops a container, killing it after timeout (nil: its own
// StopTimeout); one already stopped is no error.
func (e *Engine) Stop(ctx context.Context, id string, timeout *time.Duration) error {
	q := url.Values{}
	if timeout != nil {
		q.Set("t", strconv.Itoa(int(timeout.Seconds())))
	}
	return e.post(ctx, "/containers/"+id+"/stop", q)
}

// Remove removes a container and drops it from the cache.
func (e *Engine) Remove(ctx context.Context, ref string, opts RemoveOptions) error {
	q := url.Values{}
	if opts.Force {
		q.Set("force", "1")
	}
	if opts.Volumes {
		q.Set("v", "1")
	}
	resp, err := e.do(ctx, "DELETE", e.apiPath("/containers/"+ref), q, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	e.ForgetContainer(ref)
	return nil
}

// Inspect asks the engine about one container (by ID, name or ID prefix).
func (e *Engine) Inspect(ctx context.Context, ref string) (*ContainerInspect, error) {
	var raw json.RawMessage
	if err := e.client.JSON(ctx, "GET", e.apiPath("/containers/"+ref+"/json"), nil, nil, &raw); err != nil {
		return nil, err
	}
	var in struct {
		ID    string `json:"Id"`
		Name  string
		State *struct {
			Status   string
			Running  bool
			ExitCode int
		}
		Config     json.RawMessage
		HostConfig json.RawMessage
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, unreachable("decoding container inspect: %v", err)
	}
	out := &ContainerInspect{ID: in.ID, Name: in.Name, Config: in.Config, HostConfig: in.HostConfig, Raw: raw}
	if in.State != nil {
		out.State, out.Running, out.ExitCode = in.State.Status, in.State.Running, in.State.ExitCode
	}
	return out, nil
}

// Wait blocks until the container meets condition ("not-running" when
// empty, "next-exit", "removed") or ctx ends.
func (e *Engine) Wait(ctx context.Context, id, condition string) (WaitResult, error) {
	q := url.Values{}
	if condition != "" {
		q.Set("condition", condition)
	}
	var out struct {
		StatusCode int64
		Error      *struct{ Message string }
	}
	if err := e.client.JSON(ctx, "POST", e.apiPath("/containers/"+id+"/wait"), q, nil, &out); err != nil {
		return WaitResult{}, err
	}
	r := WaitResult{StatusCode: out.StatusCode}
	if out.Error != nil {
		r.Error = out.Error.Message
	}
	return r, nil
}

// List asks the engine for its containers (the cache is Containers); the
// records keep the engine's list entry for serving.
func (e *Engine) List(ctx context.Context, opts ListOptions) ([]*Container, error) {
	q := url.Values{}
	if opts.All {
		q.Set("all", "1")
	}
	if opts.Size {
		q.Set("size", "1")
	}
	if len(opts.Filters) > 0 {
		f, err := json.Marshal(opts.Filters)
		if err != nil {
			return nil, err
		}
		q.Set("filters", string(f))
	}
	// Decoded from the read buffer: DecodeContainers keeps nothing of it.
	var list []*Container
	err := e.client.JSONWith(ctx, "GET", e.apiPath("/containers/json"), q, func(b []byte) error {
		var err error
		list, err = DecodeContainers(b, e.Name())
		return err
	})
	return list, err
}

// ObjectInspect is an image, network or volume as the engine described it;
// Raw is its whole answer.
type ObjectInspect struct {
	ID   string // empty for a volume
	Name string // empty for an image
	Raw  json.RawMessage
}

// InspectImage asks the engine about an image (ID, name or name:tag; a
// name's slashes stay, as dockerd routes them).
func (e *Engine) InspectImage(ctx context.Context, ref string) (*ObjectInspect, error) {
	return e.inspectObject(ctx, "/images/"+ref+"/json")
}

// InspectNetwork asks the engine about a network (ID, ID prefix or name).
func (e *Engine) InspectNetwork(ctx context.Context, ref string) (*ObjectInspect, error) {
	return e.inspectObject(ctx, "/networks/"+ref)
}

// InspectVolume asks the engine about a volume by name.
func (e *Engine) InspectVolume(ctx context.Context, name string) (*ObjectInspect, error) {
	return e.inspectObject(ctx, "/volumes/"+name)
}

// InspectExec asks the engine about an exec instance.
func (e *Engine) InspectExec(ctx context.Context, id string) (*ObjectInspect, error) {
	return e.inspectObject(ctx, "/exec/"+id+"/json")
}

func (e *Engine) inspectObject(ctx context.Context, path string) (*ObjectInspect, error) {
	var raw json.RawMessage
	if err := e.client.JSON(ctx, "GET", e.apiPath(path), nil, nil, &raw); err != nil {
		return nil, err
	}
	var obj struct {
		ID   string `json:"Id"`
		Name string
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, unreachable("decoding %s: %v", path, err)
	}
	return &ObjectInspect{ID: obj.ID, Name: obj.Name, Raw: raw}, nil
}

// post sends a body-less POST whose 304 (nothing to do) is no error.
func (e *Engine) post(ctx context.Context, path string, q url.Values) error {
	resp, err := e.do(ctx, "POST", e.apiPath(path), q, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// do sends a request and turns a failure to reach the engine into
// ErrUnreachable and a refusal (other than 304) into the engine's error.
// The caller closes the body of a success.
func (e *Engine) do(ctx context.Context, method, path string, q url.Values, body json.RawMessage) (*http.Response, error) {
	var r io.Reader
	hdr := http.Header{}
	if body != nil {
		r = bytes.NewReader(body)
		hdr.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Raw(ctx, method, path, q, r, hdr)
	if err != nil {
		return nil, unreachable("%v", err)
	}
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotModified {
		defer resp.Body.Close()
		return nil, ResponseError(resp)
	}
	return resp, nil
}

// Events calls fn, in order, with each event the engine recorded from
// since (zero: its oldest kept) to until (which must be set: the engine
// ends the stream there). It returns when the stream ends, fn returns
// false, or ctx ends. Live events are Pool.Subscribe's, not this.
func (e *Engine) Events(ctx context.Context, since, until time.Time, fn func(Event) bool) error {
	q := url.Values{"until": {timestamp(until)}}
	if !since.IsZero() {
		q.Set("since", timestamp(since))
	}
	resp, err := e.do(ctx, "GET", e.apiPath("/events"), q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		ev := Event{Engine: e}
		if err := dec.Decode(&ev.Raw); err != nil {
			if err == io.EOF || ctx.Err() != nil {
				return ctx.Err()
			}
			return unreachable("reading events: %v", err)
		}
		if err := json.Unmarshal(ev.Raw, &ev.Message); err != nil {
			return unreachable("decoding event: %v", err)
		}
		ev.Time = time.Unix(0, ev.Message.TimeNano)
		if !fn(ev) {
			return nil
		}
	}
}

// timestamp is a time as the Docker API's since/until take it.
func timestamp(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}
