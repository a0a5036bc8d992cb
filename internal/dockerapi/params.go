package dockerapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/internal/backend"
)

// Request parsing: every query and body field shoal reads is decoded here,
// so bad input gets its 400 at the edge and the backends get typed values.

// parseFilters reads Docker's filters parameter in both its forms:
// {"key":{"value":true}} and the older {"key":["value"]}.
func parseFilters(raw string) (backend.Filters, error) {
	out := backend.Filters{}
	if raw == "" {
		return out, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, badRequest("invalid filter: " + err.Error())
	}
	for k, v := range m {
		var set map[string]bool
		if json.Unmarshal(v, &set) == nil {
			for val, ok := range set {
				if ok {
					out[k] = append(out[k], val)
				}
			}
			continue
		}
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			return nil, badRequest("invalid filter: " + err.Error())
		}
		out[k] = append(out[k], list...)
	}
	return out, nil
}

// boolValue reads a boolean parameter as dockerd does: anything but an
// empty, 0, no, false or none is true.
func boolValue(v string) bool {
	switch strings.ToLower(v) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

var containerFilters = map[string]bool{"id": true, "name": true, "label": true, "status": true, "ancestor": true,
	"node": true, "exited": true, "before": true, "since": true, "health": true, "network": true, "volume": true,
	"is-task": true, "publish": true, "expose": true}

var validStatus = map[string]bool{"created": true, "restarting": true, "running": true, "removing": true,
	"paused": true, "exited": true, "dead": true}

func containerListOptions(q url.Values) (backend.ContainerListOptions, error) {
	f, err := parseFilters(q.Get("filters"))
	if err != nil {
		return backend.ContainerListOptions{}, err
	}
	for _, k := range f.Keys() {
		if !containerFilters[k] {
			return backend.ContainerListOptions{}, badRequest("invalid filter '" + k + "'")
		}
	}
	for _, s := range f["status"] {
		if !validStatus[s] {
			return backend.ContainerListOptions{}, badRequest("invalid filter 'status=" + s + "'")
		}
	}
	limit, _ := strconv.Atoi(q.Get("limit")) // dockerd ignores a bad limit too
	return backend.ContainerListOptions{
		All: boolValue(q.Get("all")), Size: boolValue(q.Get("size")), Limit: limit,
		Since: q.Get("since"), Before: q.Get("before"), Filters: f,
	}, nil
}

var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

func invalidName(name string) error {
	return badRequest(fmt.Sprintf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name))
}

func containerCreateRequest(r *http.Request, body []byte) (backend.ContainerCreateRequest, error) {
	q := r.URL.Query()
	req := backend.ContainerCreateRequest{Name: strings.TrimPrefix(q.Get("name"), "/"),
		Platform: q.Get("platform"), Version: apiVersion(r), Body: body}
	if req.Name != "" && !validName.MatchString("/"+req.Name) {
		return req, invalidName(req.Name)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return req, badRequest("invalid JSON: request body is empty")
	}
	if err := json.Unmarshal(body, &req.Config); err != nil {
		return req, badRequest("invalid JSON: " + err.Error())
	}
	if req.Config.Image == "" {
		return req, badRequest("no image specified: the create request has no Image")
	}
	return req, nil
}

// renameTarget is the new name of a rename, checked.
func renameTarget(q url.Values) (string, error) {
	name := strings.TrimPrefix(q.Get("name"), "/")
	if name == "" {
		return "", badRequest("Neither old nor new names may be empty")
	}
	if !validName.MatchString("/" + name) {
		return "", invalidName(name)
	}
	return name, nil
}

func pruneOptions(r *http.Request) (backend.PruneOptions, error) {
	q := r.URL.Query()
	f, err := parseFilters(q.Get("filters"))
	if err != nil {
		return backend.PruneOptions{}, err
	}
	q.Del("filters")
	return backend.PruneOptions{Version: apiVersion(r), Filters: f, Query: q}, nil
}

func imageListOptions(r *http.Request) (backend.ImageListOptions, error) {
	q := r.URL.Query()
	f, err := parseFilters(q.Get("filters"))
	if err != nil {
		return backend.ImageListOptions{}, err
	}
	return backend.ImageListOptions{Version: apiVersion(r), All: boolValue(q.Get("all")), Filters: f,
		SharedSize: boolValue(q.Get("shared-size")), Digests: boolValue(q.Get("digests")),
		Manifests: boolValue(q.Get("manifests")), Identity: boolValue(q.Get("identity"))}, nil
}

func listOptions(r *http.Request) (backend.ListOptions, error) {
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return backend.ListOptions{}, err
	}
	return backend.ListOptions{Version: apiVersion(r), Filters: f}, nil
}

var timestampRe = regexp.MustCompile(`^-?[0-9]+(\.[0-9]{1,9})?$`)

func eventsOptions(r *http.Request) (backend.EventsOptions, error) {
	q := r.URL.Query()
	for _, k := range []string{"since", "until"} {
		if v := q.Get(k); v != "" && !timestampRe.MatchString(v) {
			return backend.EventsOptions{}, badRequest(fmt.Sprintf("invalid value for %s: %q is not a unix timestamp (seconds[.nanoseconds])", k, v))
		}
	}
	f, err := parseFilters(q.Get("filters"))
	if err != nil {
		return backend.EventsOptions{}, err
	}
	return backend.EventsOptions{Version: apiVersion(r), Since: q.Get("since"), Until: q.Get("until"), Filters: f}, nil
}

// buildArgs reads the buildargs parameter of a build.
func buildArgs(q url.Values) (map[string]*string, error) {
	raw := q.Get("buildargs")
	if raw == "" {
		return nil, nil
	}
	var args map[string]*string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		return nil, badRequest("invalid buildargs: " + err.Error())
	}
	return args, nil
}

// cacheFrom reads a build's cachefrom (a JSON list of image refs). One
// that does not decode places nothing: the engine answers it.
func cacheFrom(q url.Values) []string {
	var refs []string
	if raw := q.Get("cachefrom"); raw != "" {
		_ = json.Unmarshal([]byte(raw), &refs)
	}
	return refs
}

// objectCreateRequest decodes a network or volume create; the network
// must be named, a volume need not be.
func objectCreateRequest(r *http.Request, body []byte, nameRequired bool) (backend.ObjectCreateRequest, error) {
	req := backend.ObjectCreateRequest{Version: apiVersion(r), Body: backend.Object{}}
	if nameRequired || len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &req.Body); err != nil {
			return req, badRequest("invalid JSON: " + err.Error())
		}
		if req.Body == nil {
			req.Body = backend.Object{}
		}
	}
	req.Name = req.Body.String("Name")
	if nameRequired && req.Name == "" {
		return req, badRequest("network name is required")
	}
	return req, nil
}
