package enginesim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/system"
)

// ServeHTTP routes one request of the simulated Docker Engine API.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.waitWhileHung()
	path, version, ok := splitVersion(r.URL.Path)
	w.Header().Set("Api-Version", e.opts.APIVersion)
	w.Header().Set("Docker-Experimental", "false")
	w.Header().Set("Ostype", "linux")
	w.Header().Set("Server", "Docker/"+e.opts.ServerVersion+" (linux)")
	if !ok {
		writeError(w, http.StatusNotFound, "page not found")
		return
	}
	if version != "" {
		if versionLess(e.opts.APIVersion, version) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", version, e.opts.APIVersion))
			return
		}
		if versionLess(version, MinAPIVersion) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", version, MinAPIVersion))
			return
		}
	}
	if e.opts.Latency > 0 && path != "/events" {
		time.Sleep(e.opts.Latency)
	}
	get, post := r.Method == http.MethodGet, r.Method == http.MethodPost
	switch {
	case path == "/_ping" && (get || r.Method == http.MethodHead):
		e.ping(w, r)
	case path == "/version" && get:
		writeJSON(w, http.StatusOK, e.version())
	case path == "/info" && get:
		writeJSON(w, http.StatusOK, e.info())
	case path == "/events" && get:
		e.events(w, r)
	case path == "/containers/json" && get:
		e.listContainers(w, r)
	case path == "/containers/create" && post:
		e.createContainer(w, r)
	case path == "/images/json" && get:
		writeJSON(w, http.StatusOK, e.imageList())
	case e.objectOp(w, r, path):
	case strings.HasPrefix(path, "/containers/"):
		e.containerOp(w, r, strings.TrimPrefix(path, "/containers/"))
	default:
		writeError(w, http.StatusNotFound, "page not found")
	}
}

// splitVersion strips an optional /vX.Y prefix.
func splitVersion(p string) (path, version string, ok bool) {
	if !strings.HasPrefix(p, "/v") {
		return p, "", true
	}
	rest := p[2:]
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return p, "", true
	}
	v := rest[:i]
	maj, min, found := strings.Cut(v, ".")
	if !found || !digits(maj) || !digits(min) {
		return p, "", true // e.g. /volumes
	}
	return rest[i:], v, true
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}

// writeErr maps the engine's error classes to dockerd's statuses.
func writeErr(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, ErrInvalid):
		status = http.StatusBadRequest
	}
	writeError(w, status, err.Error())
}

func (e *Engine) ping(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Builder-Version", "2")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("OK"))
	}
}

const kernel = "6.1.0-enginesim"

func (e *Engine) version() system.VersionResponse {
	return system.VersionResponse{
		Platform: system.PlatformInfo{Name: "Docker Engine - Community"},
		Components: []system.ComponentVersion{{
			Name: "Engine", Version: e.opts.ServerVersion,
			Details: map[string]string{"ApiVersion": e.opts.APIVersion, "MinAPIVersion": MinAPIVersion, "Os": "linux", "Arch": runtime.GOARCH},
		}},
		Version: e.opts.ServerVersion, APIVersion: e.opts.APIVersion, MinAPIVersion: MinAPIVersion,
		GitCommit: "enginesim", GoVersion: runtime.Version(), Os: "linux", Arch: runtime.GOARCH,
		KernelVersion: kernel, BuildTime: "2026-11-01T00:00:00.000000000+00:00",
	}
}

func (e *Engine) info() system.Info {
	all, running := e.Count()
	e.mu.Lock()
	nimg, nev := len(e.images), len(e.subs)
	e.mu.Unlock()
	labels := e.opts.Labels
	if labels == nil {
		labels = []string{}
	}
	return system.Info{
		ID: e.id, Containers: all, ContainersRunning: running, ContainersStopped: all - running,
		Images: nimg, Driver: "overlay2",
		DriverStatus: [][2]string{{"Backing Filesystem", "extfs"}, {"Supports d_type", "true"}, {"Using metacopy", "false"}, {"Native Overlay Diff", "true"}, {"userxattr", "false"}},
		Plugins: system.PluginsInfo{
			Volume: []string{"local"}, Network: []string{"bridge", "host", "ipvlan", "macvlan", "null", "overlay"},
			Log: []string{"awslogs", "fluentd", "gcplogs", "gelf", "journald", "json-file", "local", "splunk", "syslog"},
		},
		MemoryLimit: true, SwapLimit: true, CPUCfsPeriod: true, CPUCfsQuota: true, CPUShares: true, CPUSet: true, PidsLimit: true,
		IPv4Forwarding: true, NFd: 24, NGoroutines: 40, SystemTime: time.Now().Format(time.RFC3339Nano),
		LoggingDriver: "json-file", CgroupDriver: "systemd", CgroupVersion: "2", NEventsListener: nev,
		KernelVersion: kernel, OperatingSystem: "Debian GNU/Linux 12 (bookworm)", OSVersion: "12", OSType: "linux",
		Architecture: "x86_64", IndexServerAddress: "https://index.docker.io/v1/",
		NCPU: e.opts.NCPU, MemTotal: e.opts.MemTotal, DockerRootDir: "/var/lib/docker",
		Name: e.opts.Name, Labels: labels, ServerVersion: e.opts.ServerVersion,
		Runtimes:       map[string]system.RuntimeWithStatus{"runc": {Runtime: system.Runtime{Path: "runc"}}},
		DefaultRuntime: "runc", Isolation: "", InitBinary: "docker-init",
		ContainerdCommit: system.Commit{ID: "enginesim"}, RuncCommit: system.Commit{ID: "enginesim"}, InitCommit: system.Commit{ID: "enginesim"},
		SecurityOptions: []string{"name=seccomp,profile=builtin", "name=cgroupns"},
		CDISpecDirs:     []string{}, Warnings: []string{},
		GenericResources: e.opts.GenericResources,
	}
}

func (e *Engine) events(w http.ResponseWriter, r *http.Request) {
	s := e.subscribe()
	defer e.unsubscribe(s)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	if f != nil {
		f.Flush() // the client waits for the headers before it resyncs
	}
	// The simulation keeps no past events: a stream with until ends then.
	var until <-chan time.Time
	if u, err := strconv.ParseFloat(r.URL.Query().Get("until"), 64); err == nil {
		t := time.NewTimer(time.Until(time.Unix(0, int64(u*1e9))))
		defer t.Stop()
		until = t.C
	}
	enc := json.NewEncoder(w)
	for {
		select {
		case <-until:
			return
		case m := <-s.ch:
			if err := enc.Encode(m); err != nil {
				return
			}
			for n := len(s.ch); n > 0; n-- { // batch what is queued into one flush
				if err := enc.Encode(<-s.ch); err != nil {
					return
				}
			}
			if f != nil {
				f.Flush()
			}
		case <-s.gone:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// filters decodes dockerd's filters parameter in both its forms:
// {"key":["v"]} and {"key":{"v":true}}.
func filters(q string) (map[string][]string, error) {
	out := map[string][]string{}
	if q == "" {
		return out, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(q), &raw); err != nil {
		return nil, errf(ErrInvalid, "invalid filter: %v", err)
	}
	for k, v := range raw {
		var list []string
		if json.Unmarshal(v, &list) == nil {
			out[k] = list
			continue
		}
		var set map[string]bool
		if err := json.Unmarshal(v, &set); err != nil {
			return nil, errf(ErrInvalid, "invalid filter %q", k)
		}
		for s, on := range set {
			if on {
				out[k] = append(out[k], s)
			}
		}
	}
	return out, nil
}

func (r *record) matches(f map[string][]string) bool {
	anyOf := func(key string, ok func(string) bool) bool {
		vals, set := f[key]
		if !set {
			return true
		}
		for _, v := range vals {
			if ok(v) {
				return true
			}
		}
		return false
	}
	return anyOf("id", func(v string) bool { return strings.HasPrefix(r.id, v) }) &&
		anyOf("name", func(v string) bool { return strings.Contains(r.name, strings.TrimPrefix(v, "/")) }) &&
		anyOf("status", func(v string) bool { return v == string(r.state) }) &&
		anyOf("ancestor", func(v string) bool { return v == r.image || v == r.imageID }) &&
		allLabels(r.labels, f["label"])
}

func allLabels(have map[string]string, want []string) bool {
	for _, w := range want {
		k, v, withValue := strings.Cut(w, "=")
		got, ok := have[k]
		if !ok || withValue && got != v {
			return false
		}
	}
	return true
}

func (e *Engine) listContainers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := filters(q.Get("filters"))
	if err != nil {
		writeErr(w, err)
		return
	}
	all := q.Get("all") == "1" || q.Get("all") == "true"
	limit, _ := strconv.Atoi(q.Get("limit"))
	now := time.Now()
	e.mu.Lock()
	out := []container.Summary{}
	for _, rec := range e.sortedRecords() {
		if !all && rec.state != container.StateRunning && len(f["status"]) == 0 {
			continue
		}
		if !rec.matches(f) {
			continue
		}
		out = append(out, rec.summary(now))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (r *record) status(now time.Time) string {
	switch r.state {
	case container.StateRunning:
		return "Up " + units.HumanDuration(now.Sub(r.started))
	case container.StateExited:
		return fmt.Sprintf("Exited (%d) %s ago", r.exitCode, units.HumanDuration(now.Sub(r.finished)))
	}
	return "Created"
}

func (r *record) networks() map[string]*network.EndpointSettings {
	ep := &network.EndpointSettings{NetworkID: bridgeID, DNSNames: nil}
	if r.state == container.StateRunning {
		ep.EndpointID = r.id[:32] + r.id[:32]
		ep.Gateway = netip.MustParseAddr("172.17.0.1")
		ep.IPAddress, _ = netip.ParseAddr(r.ip)
		ep.IPPrefixLen = 16
	}
	return map[string]*network.EndpointSettings{"bridge": ep}
}

func (r *record) command() string {
	return strings.Join(r.cmd, " ")
}

func (r *record) summary(now time.Time) container.Summary {
	s := container.Summary{
		ID: r.id, Names: []string{"/" + r.name}, Image: r.image, ImageID: r.imageID,
		Command: r.command(), Created: r.created.Unix(), Ports: []container.PortSummary{},
		Labels: r.labels, State: r.state, Status: r.status(now),
		NetworkSettings: &container.NetworkSettingsSummary{Networks: r.networks()},
		Mounts:          []container.MountPoint{},
	}
	s.HostConfig.NetworkMode = "bridge"
	return s
}

func timeOrZero(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (r *record) inspect() container.InspectResponse {
	var path string
	var args []string
	if len(r.cmd) > 0 {
		path, args = r.cmd[0], r.cmd[1:]
	}
	if args == nil {
		args = []string{}
	}
	env := r.env
	if env == nil {
		env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	running := r.state == container.StateRunning
	pid := 0
	if running {
		pid = 1000 + int(r.seq)
	}
	return container.InspectResponse{
		ID: r.id, Created: timeOrZero(r.created), Path: path, Args: args,
		State: &container.State{
			Status: r.state, Running: running, Pid: pid, ExitCode: r.exitCode,
			StartedAt: timeOrZero(r.started), FinishedAt: timeOrZero(r.finished),
		},
		Image:          r.imageID,
		ResolvConfPath: "/var/lib/docker/containers/" + r.id + "/resolv.conf",
		HostnamePath:   "/var/lib/docker/containers/" + r.id + "/hostname",
		HostsPath:      "/var/lib/docker/containers/" + r.id + "/hosts",
		LogPath:        "/var/lib/docker/containers/" + r.id + "/" + r.id + "-json.log",
		Name:           "/" + r.name, Driver: "overlay2", Platform: "linux", ExecIDs: nil,
		HostConfig: &container.HostConfig{
			NetworkMode: "bridge", LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{}},
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
			Resources:     r.res,
		},
		Mounts: []container.MountPoint{},
		Config: &container.Config{
			Hostname: r.id[:12], Image: r.image, Env: env, Cmd: r.cmd, Labels: r.labels,
		},
		NetworkSettings: &container.NetworkSettings{
			SandboxKey: "", Ports: network.PortMap{}, Networks: r.networks(),
		},
	}
}

func (e *Engine) createContainer(w http.ResponseWriter, r *http.Request) {
	var req container.CreateRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	if req.Config == nil {
		writeError(w, http.StatusBadRequest, "config cannot be empty in order to create a container")
		return
	}
	spec := CreateSpec{Name: r.URL.Query().Get("name"), Image: req.Image, Cmd: req.Cmd, Env: req.Env, Labels: req.Labels}
	if req.HostConfig != nil {
		spec.Resources = req.HostConfig.Resources
	}
	id, err := e.Create(spec)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, container.CreateResponse{ID: id, Warnings: []string{}})
}

// containerOp serves /containers/{ref}/json, /start, /stop, /restart, /kill and DELETE /containers/{ref}.
func (e *Engine) containerOp(w http.ResponseWriter, r *http.Request, rest string) {
	ref, op, _ := strings.Cut(rest, "/")
	q := r.URL.Query()
	var err error
	switch {
	case op == "" && r.Method == http.MethodDelete:
		err = e.RemoveContainer(ref, q.Get("force") == "1" || q.Get("force") == "true")
	case op == "json" && r.Method == http.MethodGet:
		e.mu.Lock()
		rec, lerr := e.lookup(ref)
		var ins container.InspectResponse
		if lerr == nil {
			ins = rec.inspect()
		}
		e.mu.Unlock()
		if lerr != nil {
			writeErr(w, lerr)
			return
		}
		writeJSON(w, http.StatusOK, ins)
		return
	case op == "logs" && r.Method == http.MethodGet:
		e.logs(w, ref)
		return
	case op == "start" && r.Method == http.MethodPost:
		err = e.StartContainer(ref)
	case op == "stop" && r.Method == http.MethodPost:
		err = e.StopContainer(ref, false)
	case op == "kill" && r.Method == http.MethodPost:
		err = e.StopContainer(ref, true)
	case op == "restart" && r.Method == http.MethodPost:
		if err = e.StopContainer(ref, false); err == nil {
			err = e.StartContainer(ref)
		}
	default:
		writeError(w, http.StatusNotFound, "page not found")
		return
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (e *Engine) imageList() []image.Summary {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]image.Summary, 0, len(e.images))
	for _, im := range e.images {
		out = append(out, image.Summary{
			Containers: -1, Created: im.created, ID: im.id, Labels: map[string]string{},
			ParentID: "", RepoDigests: []string{}, RepoTags: []string{im.ref},
			SharedSize: -1, Size: im.size,
		})
	}
	return out
}

const bridgeID = "5e0d6c5b0f4b2a9c3e8d1f7a6b4c2d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c"

var simStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func networkList() []network.Summary {
	mk := func(name, id, driver string, ipam []network.IPAMConfig, opts map[string]string) network.Summary {
		if ipam == nil {
			ipam = []network.IPAMConfig{}
		}
		return network.Summary{Network: network.Network{
			Name: name, ID: id, Created: simStart, Scope: "local", Driver: driver, EnableIPv4: true,
			IPAM: network.IPAM{Driver: "default", Options: nil, Config: ipam}, Options: opts, Labels: map[string]string{},
		}}
	}
	return []network.Summary{
		mk("bridge", bridgeID, "bridge", []network.IPAMConfig{{
			Subnet: netip.MustParsePrefix("172.17.0.0/16"), Gateway: netip.MustParseAddr("172.17.0.1"),
		}}, map[string]string{"com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.name": "docker0"}),
		mk("host", strings.Repeat("1", 64), "host", nil, map[string]string{}),
		mk("none", strings.Repeat("2", 64), "null", nil, map[string]string{}),
	}
}
