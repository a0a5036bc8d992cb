package backend

import (
	"encoding/json"
	"io"
	"net/url"
)

// ContainerListOptions is a parsed GET /containers/json.
type ContainerListOptions struct {
	All  bool
	Size bool
	// Limit is at most how many containers to list (0: no limit).
	Limit int
	// Since and Before are the legacy parameters, references of containers.
	Since, Before string
	Filters       Filters
}

// ContainerList is a container list answer, in order.
type ContainerList []ListedContainer

// ListedContainer is one entry of a container list.
type ListedContainer struct {
	// Status is the human status to show ("Up 5 minutes", "Host Down").
	Status string
	// Entry appends the engine's own JSON for the container, names under
	// their node, with Status set. The entries stay encoded in the cache
	// and are written straight to the client: re-encoding (or even
	// copying) tens of thousands of them per `docker ps` is what would
	// make it slow.
	Entry interface {
		AppendJSON(buf []byte, status string) []byte
	}
}

// ContainerCreateRequest is a parsed POST /containers/create. Body is the
// client's request as sent, forwarded to the engine (shoal does not model
// every field of a container); Config is the part shoal reads to place it.
type ContainerCreateRequest struct {
	// Name is the requested name without a leading slash ("" for none).
	Name     string
	Platform string
	// Version is the client's API version ("" when it gave none).
	Version string
	Config  ContainerConfig
	Body    []byte
}

// ContainerConfig is the part of a create request shoal reads to place it.
type ContainerConfig struct {
	Image        string
	Env          []string
	Labels       map[string]string
	ExposedPorts map[string]json.RawMessage
	HostConfig   *HostConfig
	// NetworkingConfig names the networks to join.
	NetworkingConfig *struct {
		EndpointsConfig map[string]json.RawMessage
	}
}

// HostConfig is the part of a create request's HostConfig shoal reads.
type HostConfig struct {
	NanoCpus          int64
	CpuShares         int64
	Memory            int64
	MemoryReservation int64
	NetworkMode       string
	VolumesFrom       []string
	Links             []string
	Binds             []string
	PortBindings      map[string][]PortBinding
	Mounts            []struct {
		Type   string
		Source string
	}
}

// PortBinding is one host binding of a container port.
type PortBinding struct {
	HostIp   string
	HostPort string
}

// NodeSummary is the "Node" field shoal adds to container inspect, as
// classic Swarm did.
type NodeSummary struct {
	ID     string
	IP     string
	Addr   string
	Name   string
	Cpus   int
	Memory int64
	Labels map[string]string
}

// PruneOptions is a parsed prune call (POST /containers/prune,
// /images/prune, /networks/prune, /volumes/prune, /build/prune).
type PruneOptions struct {
	Version string
	Filters Filters
	// Query is the rest of the client's query (build prune's all,
	// keep-storage...), passed on to the engines as sent.
	Query url.Values
}

// ImageListOptions is a parsed GET /images/json.
type ImageListOptions struct {
	Version    string
	All        bool
	Filters    Filters
	SharedSize bool
	Digests    bool
	Manifests  bool
	Identity   bool
}

// Query is the options as an engine's /images/json query.
func (o ImageListOptions) Query() url.Values {
	q := url.Values{}
	for k, v := range map[string]bool{"all": o.All, "shared-size": o.SharedSize, "digests": o.Digests, "manifests": o.Manifests, "identity": o.Identity} {
		if v {
			q.Set(k, "1")
		}
	}
	if f := o.Filters.Encode(); f != "" {
		q.Set("filters", f)
	}
	return q
}

// ImageRemoveOptions is a parsed DELETE /images/{name}.
type ImageRemoveOptions struct {
	Force bool
	// Query is the client's query (noprune, platforms...), passed on to
	// the engines as sent.
	Query url.Values
}

// ImageTagOptions is a parsed POST /images/{name}/tag.
type ImageTagOptions struct {
	Repo, Tag string
}

// ImageStreamRequest is a load, pull or import: a call shoal runs on every
// engine, merging their progress streams. Query is the client's query
// (fromImage, tag, platform, quiet...), passed on to the engines as sent.
type ImageStreamRequest struct {
	Query url.Values
	// Auth is the client's X-Registry-Auth header (pull).
	Auth string
	// Body is the uploaded archive (load, import from "-").
	Body io.Reader
}

// ListOptions is a parsed GET /networks or GET /volumes.
type ListOptions struct {
	Version string
	Filters Filters
}

// ObjectCreateRequest is a parsed POST /networks/create or
// /volumes/create. Name is the requested name ("node/name" places it on
// that node); Body is the client's request, passed on with Name replaced.
type ObjectCreateRequest struct {
	Version string
	Name    string
	Body    Object
}

// DiskUsageOptions is a parsed GET /system/df.
type DiskUsageOptions struct {
	Version string
	// Query is the client's query (type, verbose), passed on as sent.
	Query url.Values
}

// EventsOptions is a parsed GET /events.
type EventsOptions struct {
	Version string
	// Since and Until are unix timestamps (seconds[.nanoseconds]), "" for none.
	Since, Until string
	Filters      Filters
}

// Query is the options as an engine's /events query.
func (o EventsOptions) Query() url.Values {
	q := url.Values{}
	if o.Since != "" {
		q.Set("since", o.Since)
	}
	if o.Until != "" {
		q.Set("until", o.Until)
	}
	if f := o.Filters.Encode(); f != "" {
		q.Set("filters", f)
	}
	return q
}

// Query is the options as an engine's /networks or /volumes query.
func (o ListOptions) Query() url.Values {
	q := url.Values{}
	if f := o.Filters.Encode(); f != "" {
		q.Set("filters", f)
	}
	return q
}

// EngineQuery is the options as an engine's prune query: the client's other
// parameters with the filters.
func (o PruneOptions) EngineQuery() url.Values {
	q := url.Values{}
	for k, v := range o.Query {
		q[k] = append([]string(nil), v...)
	}
	q.Del("filters")
	if f := o.Filters.Encode(); f != "" {
		q.Set("filters", f)
	}
	return q
}

// VolumeList is the answer to GET /volumes.
type VolumeList struct {
	Volumes  []Object
	Warnings []string
}

// BuildPlacement is what placing a POST /build reads of its query; the
// placement answers with the same fields as the engine must get them.
type BuildPlacement struct {
	// Args are the build args; constraint:/affinity: entries among them
	// place the build (classic Swarm) and are not sent on. A placement
	// answers nil when the client's args go as sent.
	Args map[string]*string
	// CacheFrom are the images the build may take its cache from: a node
	// that holds one is preferred.
	CacheFrom []string
	// NetworkMode is the network of the RUN steps: a user network puts the
	// build on the node that has it ("node/network" names the node).
	NetworkMode string
}
