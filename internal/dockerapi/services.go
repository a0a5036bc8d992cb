package dockerapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/authz"
	"github.com/shoal-dev/shoal/internal/backend"
)

// Swarm mode's service and task calls, served by Server.Services over
// shoal's store.

// errNoServices answers every service and task call of a manager without
// a store (shoal manage --replication).
var errNoServices = errdefs.ErrUnavailable.WithMessage("services need a store: run them on the built-in cluster " +
	"(shoal init / shoal join) or on shoal manage with its --data-dir, not on shoal manage --replication")

func (s *Server) serviceRoutes() {
	rt := &s.rt
	rt.handle("GET", "/services", s.listServices)
	rt.handle("POST", "/services/create", s.createService)
	rt.handle("GET", "/services/{id}", s.inspectService)
	rt.handle("POST", "/services/{id}/update", s.updateService)
	rt.handle("DELETE", "/services/{id}", s.removeService)
	rt.handle("GET", "/services/{id}/logs", s.serviceLogs(false))
	rt.handle("GET", "/tasks", s.listTasks)
	rt.handle("GET", "/tasks/{id}", s.inspectTask)
	rt.handle("GET", "/tasks/{id}/logs", s.serviceLogs(true))
}

func (s *Server) services() (Services, error) {
	if s.Services == nil {
		return nil, errNoServices
	}
	return s.Services, nil
}

// serviceSpecBody is a create or update body: the spec, and the
// Networks field clients of API < 1.44 may still send beside it.
type serviceSpecBody struct {
	swarm.ServiceSpec
	Networks []swarm.NetworkAttachmentConfig `json:",omitempty"`
}

// decodeServiceSpec decodes a create or update body as dockerd does, with
// its words: a json.Decoder's error as it prints (a field's path from the
// spec, not from the wrapper: "Go struct field ReplicatedService.Mode...")
// and "got EOF while reading request body" for an empty body.
func decodeServiceSpec(body []byte) (serviceSpecBody, error) {
	var out serviceSpecBody
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&out.ServiceSpec); err != nil {
		if errors.Is(err, io.EOF) {
			return out, badRequest("got EOF while reading request body")
		}
		return out, badRequest(err.Error())
	}
	var legacy struct {
		Networks []swarm.NetworkAttachmentConfig
	}
	if json.NewDecoder(bytes.NewReader(body)).Decode(&legacy) == nil {
		out.Networks = legacy.Networks
	}
	return out, nil
}

// readServiceSpec decodes a create or update body as dockerd does.
func readServiceSpec(r *http.Request) (swarm.ServiceSpec, error) {
	body, err := readBody(r)
	if err != nil {
		return swarm.ServiceSpec{}, err
	}
	spec, err := decodeServiceSpec(body)
	if err != nil {
		return swarm.ServiceSpec{}, err
	}
	v := apiVersion(r)
	if v != "" && versionLess(v, "1.44") && len(spec.TaskTemplate.Networks) == 0 && len(spec.Networks) > 0 {
		spec.TaskTemplate.Networks = spec.Networks
	}
	return spec.ServiceSpec, nil
}

// taskJSON is a task as dockerd 20.10 renders it: without the Volumes
// key that moby's Task type writes as null (swarm mode's tasks of
// container services have no volume attachments, and dockerd 20.10's
// type has no such field).
type taskJSON struct {
	swarm.Task
	Volumes []swarm.VolumeAttachment `json:",omitempty"`
}

func taskAnswer(t swarm.Task) taskJSON { return taskJSON{Task: t, Volumes: t.Volumes} }

// serviceCreated is dockerd's create answer (no Warnings when there are none).
type serviceCreated struct {
	ID       string
	Warnings []string `json:",omitempty"`
}

func (s *Server) createService(w http.ResponseWriter, r *http.Request, _ params) error {
	b, err := s.services()
	if err != nil {
		return err
	}
	spec, err := readServiceSpec(r)
	if err != nil {
		return err
	}
	resp, err := b.CreateService(r.Context(), spec, r.Header.Get("X-Registry-Auth"))
	if err != nil {
		s.undoRefusedStack(r.Context(), spec.Labels, err) // stacks.go
		return err
	}
	return writeJSON(w, http.StatusCreated, serviceCreated{ID: resp.ID, Warnings: resp.Warnings})
}

// queryBool reads an optional strict boolean parameter (dockerd's
// strconv.ParseBool for status and insertDefaults).
func queryBool(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest(fmt.Sprintf("invalid value for %s: %s: %v", name, v, err))
	}
	return on, nil
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request, _ params) error {
	b, err := s.services()
	if err != nil {
		return err
	}
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	status := false
	if v := apiVersion(r); v == "" || !versionLess(v, "1.41") { // older clients: ignored, as dockerd does
		if status, err = queryBool(r, "status"); err != nil {
			return err
		}
	}
	list, err := b.Services(r.Context(), f, status)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) inspectService(w http.ResponseWriter, r *http.Request, p params) error {
	b, err := s.services()
	if err != nil {
		return err
	}
	defaults, err := queryBool(r, "insertDefaults")
	if err != nil {
		return err
	}
	svc, err := b.Service(r.Context(), p["id"], defaults)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, svc)
}

func (s *Server) updateService(w http.ResponseWriter, r *http.Request, p params) error {
	b, err := s.services()
	if err != nil {
		return err
	}
	opts, err := serviceUpdateOptions(r)
	if err != nil {
		return err
	}
	resp, err := b.UpdateService(r.Context(), p["id"], opts)
	if err != nil {
		return err
	}
	// dockerd's update answer has its Warnings null when there are none
	// ({"Warnings":null}: docker-py returns it as is).
	if len(resp.Warnings) == 0 {
		resp.Warnings = nil
	}
	return writeJSON(w, http.StatusOK, swarm.ServiceUpdateResponse{Warnings: resp.Warnings})
}

func serviceUpdateOptions(r *http.Request) (backend.ServiceUpdate, error) {
	spec, err := readServiceSpec(r)
	if err != nil {
		return backend.ServiceUpdate{}, err
	}
	q := r.URL.Query()
	raw := q.Get("version")
	version, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return backend.ServiceUpdate{}, badRequest(fmt.Sprintf("invalid service version '%s': %v", raw, err))
	}
	opts := backend.ServiceUpdate{Version: swarm.Version{Index: version}, Spec: spec,
		EncodedRegistryAuth: r.Header.Get("X-Registry-Auth"), Rollback: q.Get("rollback")}
	if v := q.Get("registryAuthFrom"); v != "" {
		switch src := swarm.RegistryAuthSource(v); src {
		case swarm.RegistryAuthFromSpec, swarm.RegistryAuthFromPreviousSpec:
			opts.RegistryAuthFrom = src
		default:
			return opts, badRequest(fmt.Sprintf("invalid registryAuthFrom '%s'", v))
		}
	}
	return opts, nil
}

func (s *Server) removeService(w http.ResponseWriter, r *http.Request, p params) error {
	b, err := s.services()
	if err != nil {
		return err
	}
	if err := b.RemoveService(r.Context(), p["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) listTasks(w http.ResponseWriter, r *http.Request, _ params) error {
	b, err := s.services()
	if err != nil {
		return err
	}
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	list, err := b.Tasks(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]taskJSON, len(list))
	for i, t := range list {
		out[i] = taskAnswer(t)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) inspectTask(w http.ResponseWriter, r *http.Request, p params) error {
	b, err := s.services()
	if err != nil {
		return err
	}
	t, err := b.Task(r.Context(), p["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, taskAnswer(t))
}

// Content types of a logs answer (dockerd's).
const (
	mediaRawStream         = "application/vnd.docker.raw-stream"
	mediaMultiplexedStream = "application/vnd.docker.multiplexed-stream"
)

// serviceLogs serves the merged logs of a service's tasks, or of one task.
func (s *Server) serviceLogs(task bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p params) error {
		b, err := s.services()
		if err != nil {
			return err
		}
		opts, err := serviceLogsOptions(r)
		if err != nil {
			return err
		}
		tty, stream, err := b.Logs(r.Context(), p["id"], task, opts)
		if err != nil {
			return err
		}
		ct := mediaRawStream
		if v := apiVersion(r); !tty && (v == "" || !versionLess(v, "1.42")) {
			ct = mediaMultiplexedStream
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		if err := stream(&logFlusher{w: w, rc: rc}); err != nil {
			s.log.Warn("service logs ended", "ref", p["id"], "error", err)
		}
		return nil
	}
}

// logFlusher sends each log message as it is written.
type logFlusher struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (f *logFlusher) Write(b []byte) (int, error) { return f.w.Write(b) }
func (f *logFlusher) Flush()                      { _ = f.rc.Flush() }

func serviceLogsOptions(r *http.Request) (backend.ServiceLogsOptions, error) {
	q := r.URL.Query()
	opts := backend.ServiceLogsOptions{ShowStdout: boolValue(q.Get("stdout")), ShowStderr: boolValue(q.Get("stderr")),
		Follow: boolValue(q.Get("follow")), Timestamps: boolValue(q.Get("timestamps")),
		Details: boolValue(q.Get("details")), Tail: q.Get("tail"), Since: q.Get("since")}
	if !opts.ShowStdout && !opts.ShowStderr {
		// dockerd 20.10's words; its status is 500 (a bare error), but
		// the mistake is the client's: 400, as dockerd answers the same
		// mistake on a container's logs.
		return opts, badRequest("Bad parameters: you must choose at least one stream")
	}
	if opts.Since != "" && !timestampRe.MatchString(opts.Since) {
		return opts, badRequest(fmt.Sprintf(`invalid value for "since": %q is not a unix timestamp (seconds[.nanoseconds])`, opts.Since))
	}
	return opts, nil
}

// isServiceCall says whether the route key is a service or task call.
func isServiceCall(key string) bool {
	_, pattern, _ := strings.Cut(key, " ")
	return strings.HasPrefix(pattern, "/services") || strings.HasPrefix(pattern, "/tasks")
}

// checkServiceCall applies, to a caller that is not an unscoped admin,
// the checks of a service or task call beyond its class: a scoped caller
// sees and changes only the services whose labels hold its scope (others
// are answered 404, as if they did not exist), and its services get its
// scope's labels, on the service and on its containers; a non-admin's
// service may not have the host (a service's containers are created by
// shoal, so these checks are the only ones its spec goes through).
func (s *Server) checkServiceCall(r *http.Request, key string, id authz.Identity, p params) (*http.Request, error) {
	switch key {
	case "GET /services", "GET /tasks":
		return scopeFilters(r, id)
	case "POST /services/create":
		return s.checkServiceSpec(r, id, "create")
	case "POST /services/{id}/update":
		if err := s.serviceInScope(r, id, p["id"]); err != nil {
			return nil, err
		}
		return s.checkServiceSpec(r, id, "update")
	case "GET /services/{id}", "DELETE /services/{id}", "GET /services/{id}/logs":
		return r, s.serviceInScope(r, id, p["id"])
	case "GET /tasks/{id}", "GET /tasks/{id}/logs":
		return r, s.taskInScope(r, id, p["id"])
	}
	return r, nil
}

func (s *Server) serviceInScope(r *http.Request, id authz.Identity, ref string) error {
	if !id.Scoped() || s.Services == nil {
		return nil
	}
	svc, err := s.Services.Service(r.Context(), ref, false)
	if err != nil {
		return err
	}
	if !id.InScope(svc.Spec.Labels) {
		return errdefs.ErrNotFound.WithMessage("service " + ref + " not found")
	}
	return nil
}

func (s *Server) taskInScope(r *http.Request, id authz.Identity, ref string) error {
	if !id.Scoped() || s.Services == nil {
		return nil
	}
	t, err := s.Services.Task(r.Context(), ref)
	if err != nil {
		return err
	}
	svc, err := s.Services.Service(r.Context(), t.ServiceID, false)
	if err != nil || !id.InScope(svc.Spec.Labels) {
		return errdefs.ErrNotFound.WithMessage("task " + ref + " not found")
	}
	return nil
}

// checkServiceSpec puts the caller's scope on a create or update body and
// refuses a non-admin a spec with host access.
func (s *Server) checkServiceSpec(r *http.Request, id authz.Identity, verb string) (*http.Request, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	spec, err := decodeServiceSpec(body)
	if err != nil {
		return nil, err
	}
	if id.Role < authz.RoleAdmin {
		if what := serviceHostAccess(spec.ServiceSpec); len(what) > 0 {
			return nil, authz.Deny(id, what[0])
		}
	}
	if err := s.refsInScope(r.Context(), id, spec.ServiceSpec); err != nil {
		return nil, err
	}
	if !id.Scoped() {
		return withBody(r, body), nil
	}
	if err := forceScope(&spec.ServiceSpec, id.Scope); err != nil {
		return nil, authz.Deny(id, verb+" services outside its scope ("+strings.Join(id.ScopeFilters(), ",")+")")
	}
	if body, err = json.Marshal(spec); err != nil {
		return nil, err
	}
	return withBody(r, body), nil
}

// forceScope sets the scope's labels on the service and on its
// containers; a label of the scope's set to another value is refused.
func forceScope(spec *swarm.ServiceSpec, scope map[string]string) error {
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	if spec.TaskTemplate.ContainerSpec == nil {
		spec.TaskTemplate.ContainerSpec = &swarm.ContainerSpec{}
	}
	c := spec.TaskTemplate.ContainerSpec
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	for k, v := range scope {
		for _, labels := range []map[string]string{spec.Labels, c.Labels} {
			if old, ok := labels[k]; ok && old != v {
				return authz.ErrScopeLabel
			}
			labels[k] = v
		}
	}
	return nil
}

// serviceHostAccess lists what a service spec asks for that gives its
// containers the host, worded as "may not ..." finishes it.
func serviceHostAccess(spec swarm.ServiceSpec) []string {
	var out []string
	c := spec.TaskTemplate.ContainerSpec
	if c == nil {
		return nil
	}
	for _, m := range c.Mounts {
		switch {
		case strings.EqualFold(string(m.Type), "bind") || strings.EqualFold(string(m.Type), "npipe"):
			out = append(out, "bind-mount host paths ("+m.Source+")")
		case m.VolumeOptions != nil && m.VolumeOptions.DriverConfig != nil && authz.LocalVolumeBindsHost(m.VolumeOptions.DriverConfig.Options):
			out = append(out, "create volumes that bind host paths")
		}
	}
	if len(c.CapabilityAdd) > 0 {
		out = append(out, "add capabilities ("+strings.Join(c.CapabilityAdd, ", ")+")")
	}
	if pr := c.Privileges; pr != nil {
		if pr.Seccomp != nil && pr.Seccomp.Mode != "" && pr.Seccomp.Mode != swarm.SeccompModeDefault {
			out = append(out, "lift confinement (seccomp "+string(pr.Seccomp.Mode)+")")
		}
		if pr.AppArmor != nil && pr.AppArmor.Mode == swarm.AppArmorModeDisabled {
			out = append(out, "lift confinement (apparmor disabled)")
		}
		if pr.SELinuxContext != nil && pr.SELinuxContext.Disable {
			out = append(out, "lift confinement (selinux disabled)")
		}
	}
	for _, n := range spec.TaskTemplate.Networks {
		if n.Target == "host" {
			out = append(out, "use the host's network namespace")
		}
	}
	return out
}
