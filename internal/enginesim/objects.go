package enginesim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
)

// The calls below are simulated only as far as shoal's merging of them
// needs: images by reference, networks and volumes by name, prunes that
// remove what nothing uses, and a disk usage summary.

// objectOp serves the image, network, volume, prune and disk usage calls;
// it reports false for a path it does not know.
func (e *Engine) objectOp(w http.ResponseWriter, r *http.Request, path string) bool {
	get, post := r.Method == http.MethodGet, r.Method == http.MethodPost
	switch {
	case path == "/containers/prune" && post:
		writeJSON(w, http.StatusOK, container.PruneReport{ContainersDeleted: e.pruneContainers()})
	case path == "/images/create" && post:
		e.imageCreate(w, r)
	case path == "/images/load" && post:
		_, _ = io.Copy(io.Discard, r.Body)
		e.addImage("sim/loaded:latest")
		writeJSON(w, http.StatusOK, map[string]string{"stream": "Loaded image: sim/loaded:latest\n"})
	case path == "/images/prune" && post:
		writeJSON(w, http.StatusOK, image.PruneReport{ImagesDeleted: []image.DeleteResponse{}})
	case strings.HasPrefix(path, "/images/") && strings.HasSuffix(path, "/tag") && post:
		e.imageTag(w, r, strings.TrimSuffix(strings.TrimPrefix(path, "/images/"), "/tag"))
	case strings.HasPrefix(path, "/images/") && r.Method == http.MethodDelete:
		e.imageRemove(w, strings.TrimPrefix(path, "/images/"))
	case path == "/networks" && get:
		e.mu.Lock()
		writeJSON(w, http.StatusOK, append(networkList(), e.networks...))
		e.mu.Unlock()
	case path == "/networks/create" && post:
		e.networkCreate(w, r)
	case path == "/networks/prune" && post:
		writeJSON(w, http.StatusOK, network.PruneReport{NetworksDeleted: e.pruneNetworks()})
	case path == "/plugins" && get:
		list := []map[string]any{}
		for i, name := range e.opts.Plugins {
			list = append(list, map[string]any{"Id": fmt.Sprintf("%064x", i+1), "Name": name, "Enabled": true,
				"Settings": map[string]any{"Mounts": []any{}, "Env": []string{}, "Args": []string{}, "Devices": []any{}}})
		}
		writeJSON(w, http.StatusOK, list)
	case path == "/volumes" && get:
		writeJSON(w, http.StatusOK, volume.ListResponse{Volumes: e.volumeList(), Warnings: []string{}})
	case path == "/volumes/create" && post:
		e.volumeCreate(w, r)
	case path == "/volumes/prune" && post:
		writeJSON(w, http.StatusOK, volume.PruneReport{VolumesDeleted: e.pruneVolumes()})
	case path == "/build/prune" && post:
		writeJSON(w, http.StatusOK, map[string]any{"CachesDeleted": []string{}, "SpaceReclaimed": 0})
	case path == "/system/df" && get:
		e.mu.Lock()
		n := len(e.containers)
		e.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"LayersSize": 0, "Images": e.imageList(), "Containers": e.containerList(n),
			"Volumes": e.volumeList(), "BuildCache": []any{}})
	default:
		return false
	}
	return true
}

func (e *Engine) containerList(n int) []map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]map[string]any, 0, n)
	for _, r := range e.sortedRecords() {
		out = append(out, map[string]any{"Id": r.id, "Names": []string{"/" + r.name}, "State": r.state})
	}
	return out
}

func (e *Engine) pruneContainers() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	gone := []string{}
	for id, r := range e.containers {
		if r.state == container.StateExited || r.state == container.StateCreated {
			delete(e.containers, id)
			delete(e.names, r.name)
			e.emit(r, "destroy")
			gone = append(gone, id)
		}
	}
	sort.Strings(gone)
	return gone
}

// imageCreate pulls fromImage (or imports, fromSrc) and streams progress.
func (e *Engine) imageCreate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ref := q.Get("fromImage")
	if ref == "" {
		_, _ = io.Copy(io.Discard, r.Body)
		ref = q.Get("repo")
		if ref == "" {
			ref = "sim/imported"
		}
	}
	if tag := q.Get("tag"); tag != "" {
		ref += ":" + tag
	} else if !strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":") {
		ref += ":latest"
	}
	if msg := e.pullDenied(ref, r.Header.Get("X-Registry-Auth")); msg != "" {
		denyPull(w, msg)
		return
	}
	if strings.HasPrefix(ref, "missing/") {
		writeError(w, http.StatusNotFound, "pull access denied for "+ref+", repository does not exist")
		return
	}
	e.addImage(ref)
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	_ = enc.Encode(map[string]string{"status": "Pulling from " + ref})
	_ = enc.Encode(map[string]string{"status": "Status: Downloaded newer image for " + ref})
}

func (e *Engine) addImage(ref string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, im := range e.images {
		if im.ref == ref {
			return
		}
	}
	s := sha256.Sum256([]byte(ref))
	e.images = append(e.images, imageRecord{id: "sha256:" + hex.EncodeToString(s[:]), ref: ref, created: simStart.Unix(), size: 1 << 20})
}

// findImage is the index of image ref (a reference or an ID); e.mu must be held.
func (e *Engine) findImage(ref string) int {
	for i, im := range e.images {
		if im.ref == ref || im.ref == ref+":latest" || im.id == ref {
			return i
		}
	}
	return -1
}

func (e *Engine) imageTag(w http.ResponseWriter, r *http.Request, ref string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.findImage(ref)
	if i < 0 {
		writeError(w, http.StatusNotFound, "No such image: "+ref)
		return
	}
	tagged := e.images[i]
	tagged.ref = r.URL.Query().Get("repo") + ":" + r.URL.Query().Get("tag")
	e.images = append(e.images, tagged)
	w.WriteHeader(http.StatusCreated)
}

func (e *Engine) imageRemove(w http.ResponseWriter, ref string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.findImage(ref)
	if i < 0 {
		writeError(w, http.StatusNotFound, "No such image: "+ref)
		return
	}
	im := e.images[i]
	e.images = append(e.images[:i], e.images[i+1:]...)
	writeJSON(w, http.StatusOK, []image.DeleteResponse{{Untagged: im.ref}})
}

func (e *Engine) networkCreate(w http.ResponseWriter, r *http.Request) {
	var req struct{ Name, Driver string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" {
		writeError(w, http.StatusBadRequest, "invalid network create request")
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range append(networkList(), e.networks...) {
		if n.Name == req.Name {
			writeError(w, http.StatusConflict, "network with name "+req.Name+" already exists")
			return
		}
	}
	if req.Driver == "" {
		req.Driver = "bridge"
	}
	s := sha256.Sum256([]byte(e.id + req.Name))
	id := hex.EncodeToString(s[:])
	e.networks = append(e.networks, network.Summary{Network: network.Network{
		Name: req.Name, ID: id, Created: simStart, Scope: "local", Driver: req.Driver, Labels: map[string]string{},
	}})
	writeJSON(w, http.StatusCreated, network.CreateResponse{ID: id})
}

func (e *Engine) pruneNetworks() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	gone := []string{}
	for _, n := range e.networks {
		gone = append(gone, n.Name)
	}
	e.networks = nil
	return gone
}

func (e *Engine) volumeCreate(w http.ResponseWriter, r *http.Request) {
	var req volume.CreateRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid volume create request")
		return
	}
	if req.Name == "" {
		req.Name = newID()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.volumes == nil {
		e.volumes = map[string]volume.Volume{}
	}
	v, ok := e.volumes[req.Name]
	if !ok {
		v = volume.Volume{Name: req.Name, Driver: "local", Scope: "local", Labels: req.Labels,
			Mountpoint: "/var/lib/docker/volumes/" + req.Name + "/_data", CreatedAt: timeOrZero(simStart)}
		e.volumes[req.Name] = v
	}
	writeJSON(w, http.StatusCreated, v)
}

func (e *Engine) volumeList() []volume.Volume {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []volume.Volume{}
	for _, v := range e.volumes {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (e *Engine) pruneVolumes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	gone := []string{}
	for name := range e.volumes {
		gone = append(gone, name)
	}
	sort.Strings(gone)
	clear(e.volumes)
	return gone
}
