package engine

import (
	"context"
	"encoding/json"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
)

// Networks, volumes and disk usage are passed on to clients as the engine
// worded them at the client's API version, so their lists and answers stay
// raw JSON here; shoal reads only a few fields of them.

// ListNetworks lists the engine's networks, each as the engine sent it.
func (e *Engine) ListNetworks(ctx context.Context, cq ClientQuery) ([]json.RawMessage, error) {
	var list []json.RawMessage
	if err := e.call(ctx, "GET", e.APIPath(cq.Version, "/networks"), cq.Query, nil, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// ListVolumes lists the engine's volumes, each as the engine sent it.
func (e *Engine) ListVolumes(ctx context.Context, cq ClientQuery) ([]json.RawMessage, error) {
	var list struct{ Volumes []json.RawMessage }
	if err := e.call(ctx, "GET", e.APIPath(cq.Version, "/volumes"), cq.Query, nil, &list); err != nil {
		return nil, err
	}
	return list.Volumes, nil
}

// CreateNetwork creates a network from a client's request body (kept
// verbatim) at API version; the answer ({"Id", "Warning"}) is Raw.
func (e *Engine) CreateNetwork(ctx context.Context, version string, body json.RawMessage) (*ObjectInspect, error) {
	return e.createObject(ctx, e.APIPath(version, "/networks/create"), body)
}

// CreateVolume creates a volume from a client's request body (kept
// verbatim) at API version; creating a name that exists returns that
// volume, as dockerd does. The answer (the volume) is Raw.
func (e *Engine) CreateVolume(ctx context.Context, version string, body json.RawMessage) (*ObjectInspect, error) {
	return e.createObject(ctx, e.APIPath(version, "/volumes/create"), body)
}

func (e *Engine) createObject(ctx context.Context, path string, body json.RawMessage) (*ObjectInspect, error) {
	if body == nil {
		body = json.RawMessage("{}")
	}
	var raw json.RawMessage
	if err := e.call(ctx, "POST", path, nil, body, &raw); err != nil {
		return nil, err
	}
	var obj struct {
		ID   string `json:"Id"`
		Name string
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, unreachable("decoding the answer to %s: %v", path, err)
	}
	return &ObjectInspect{ID: obj.ID, Name: obj.Name, Raw: raw}, nil
}

// PruneContainers removes stopped containers (filters in the query) and
// drops them from the cache.
func (e *Engine) PruneContainers(ctx context.Context, cq ClientQuery) (container.PruneReport, error) {
	var r container.PruneReport
	if err := e.call(ctx, "POST", e.APIPath(cq.Version, "/containers/prune"), cq.Query, nil, &r); err != nil {
		return r, err
	}
	for _, id := range r.ContainersDeleted {
		e.ForgetContainer(id)
	}
	return r, nil
}

// PruneNetworks removes unused networks.
func (e *Engine) PruneNetworks(ctx context.Context, cq ClientQuery) (network.PruneReport, error) {
	var r network.PruneReport
	return r, e.call(ctx, "POST", e.APIPath(cq.Version, "/networks/prune"), cq.Query, nil, &r)
}

// PruneVolumes removes unused volumes.
func (e *Engine) PruneVolumes(ctx context.Context, cq ClientQuery) (volume.PruneReport, error) {
	var r volume.PruneReport
	return r, e.call(ctx, "POST", e.APIPath(cq.Version, "/volumes/prune"), cq.Query, nil, &r)
}

// PruneBuildCache removes build cache (the query's all, keep-storage...).
func (e *Engine) PruneBuildCache(ctx context.Context, cq ClientQuery) (build.CachePruneReport, error) {
	var r build.CachePruneReport
	return r, e.call(ctx, "POST", e.APIPath(cq.Version, "/build/prune"), cq.Query, nil, &r)
}

// DiskUsage is the engine's /system/df (the query's type, verbose) as
// generic JSON: its shape changed much across API versions.
func (e *Engine) DiskUsage(ctx context.Context, cq ClientQuery) (map[string]any, error) {
	var df map[string]any
	if err := e.call(ctx, "GET", e.APIPath(cq.Version, "/system/df"), cq.Query, nil, &df); err != nil {
		return nil, err
	}
	return df, nil
}

// ListPlugins lists the engine's plugins, each as the engine sent it.
func (e *Engine) ListPlugins(ctx context.Context, cq ClientQuery) ([]map[string]any, error) {
	var list []map[string]any
	if err := e.call(ctx, "GET", e.APIPath(cq.Version, "/plugins"), cq.Query, nil, &list); err != nil {
		return nil, err
	}
	return list, nil
}
