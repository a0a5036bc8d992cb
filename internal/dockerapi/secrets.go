package dockerapi

import (
	"bytes"
	"context"
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

// Swarm mode's secret and config calls, served by Server.Secrets and
// Server.Configs over shoal's store.

// Secrets serves swarm mode's secrets; their data is never answered.
type Secrets interface {
	CreateSecret(ctx context.Context, spec swarm.SecretSpec) (string, error)
	Secrets(ctx context.Context, filters backend.Filters) ([]swarm.Secret, error)
	// Secret finds a secret by ID, name or unique ID prefix.
	Secret(ctx context.Context, ref string) (swarm.Secret, error)
	UpdateSecret(ctx context.Context, ref string, version uint64, spec swarm.SecretSpec) error
	RemoveSecret(ctx context.Context, ref string) error
}

// Configs serves swarm mode's configs (with their data).
type Configs interface {
	CreateConfig(ctx context.Context, spec swarm.ConfigSpec) (string, error)
	Configs(ctx context.Context, filters backend.Filters) ([]swarm.Config, error)
	// Config finds a config by ID, name or unique ID prefix.
	Config(ctx context.Context, ref string) (swarm.Config, error)
	UpdateConfig(ctx context.Context, ref string, version uint64, spec swarm.ConfigSpec) error
	RemoveConfig(ctx context.Context, ref string) error
}

// errNoSecrets answers every secret and config call of a manager without
// a store, as errNoServices does for services.
var errNoSecrets = errdefs.ErrUnavailable.WithMessage("secrets and configs need a store: keep them on the built-in cluster " +
	"(shoal init / shoal join) or on shoal manage with its --data-dir, not on shoal manage --replication")

// secretRules classify the secret and config routes (see routeRules):
// anyone who reads the cluster may list and inspect them (a secret's
// data is never answered), operators make and remove them.
var secretRules = map[string]routeRule{
	"GET /secrets":              {authz.Read, "list secrets"},
	"POST /secrets/create":      {authz.Operate, "create secrets"},
	"GET /secrets/{id}":         {authz.Read, "inspect secrets"},
	"POST /secrets/{id}/update": {authz.Operate, "update secrets"},
	"DELETE /secrets/{id}":      {authz.Operate, "remove secrets"},
	"GET /configs":              {authz.Read, "list configs"},
	"POST /configs/create":      {authz.Operate, "create configs"},
	"GET /configs/{id}":         {authz.Read, "inspect configs"},
	"POST /configs/{id}/update": {authz.Operate, "update configs"},
	"DELETE /configs/{id}":      {authz.Operate, "remove configs"},
}

func init() {
	for k, v := range secretRules {
		routeRules[k] = v
	}
}

func (s *Server) secretRoutes() {
	objectRoutes(&s.rt, "/secrets", s.secretAPI)
	objectRoutes(&s.rt, "/configs", s.configAPI)
}

func (s *Server) secrets() (Secrets, error) {
	if s.Secrets == nil {
		return nil, errNoSecrets
	}
	return s.Secrets, nil
}

func (s *Server) configs() (Configs, error) {
	if s.Configs == nil {
		return nil, errNoSecrets
	}
	return s.Configs, nil
}

// objectAPI is what the handlers call of secrets or configs, which
// swarm mode serves alike: R is the object, S its spec.
type objectAPI[R, S any] struct {
	kind    string // "secret" or "config"
	create  func(ctx context.Context, spec S) (string, error)
	list    func(ctx context.Context, filters backend.Filters) ([]R, error)
	inspect func(ctx context.Context, ref string) (R, error)
	update  func(ctx context.Context, ref string, version uint64, spec S) error
	remove  func(ctx context.Context, ref string) error
	// refused runs after create refused spec (stacks.go).
	refused func(ctx context.Context, spec S, err error)
}

func (s *Server) secretAPI() (objectAPI[swarm.Secret, swarm.SecretSpec], error) {
	b, err := s.secrets()
	if err != nil {
		return objectAPI[swarm.Secret, swarm.SecretSpec]{}, err
	}
	return objectAPI[swarm.Secret, swarm.SecretSpec]{kind: "secret", create: b.CreateSecret, list: b.Secrets,
		inspect: b.Secret, update: b.UpdateSecret, remove: b.RemoveSecret,
		refused: func(ctx context.Context, spec swarm.SecretSpec, err error) { s.undoRefusedStack(ctx, spec.Labels, err) }}, nil
}

func (s *Server) configAPI() (objectAPI[swarm.Config, swarm.ConfigSpec], error) {
	b, err := s.configs()
	if err != nil {
		return objectAPI[swarm.Config, swarm.ConfigSpec]{}, err
	}
	return objectAPI[swarm.Config, swarm.ConfigSpec]{kind: "config", create: b.CreateConfig, list: b.Configs,
		inspect: b.Config, update: b.UpdateConfig, remove: b.RemoveConfig,
		refused: func(ctx context.Context, spec swarm.ConfigSpec, err error) { s.undoRefusedStack(ctx, spec.Labels, err) }}, nil
}

// readJSONBody decodes a body as dockerd's ReadJSON does: an empty body
// is no error (the zero value), bad JSON is "invalid JSON: ...".
func readJSONBody(r *http.Request, out any) error {
	body, err := readBody(r)
	if err != nil || len(body) == 0 {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(out); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest("invalid JSON: got EOF while reading request body")
		}
		return badRequest("invalid JSON: " + err.Error())
	}
	if dec.More() {
		return badRequest("unexpected content after JSON")
	}
	return nil
}

// objectVersion reads the version of an update, as dockerd does.
func objectVersion(r *http.Request, kind string) (uint64, error) {
	v, err := strconv.ParseUint(r.URL.Query().Get("version"), 10, 64)
	if err != nil {
		return 0, badRequest("invalid " + kind + " version")
	}
	return v, nil
}

// idAnswer is dockerd's create answer for secrets and configs.
type idAnswer struct{ ID string }

// objectHandlers serve the routes of secrets or configs; the API is got
// at each call (no store: errNoSecrets).
type objectHandlers[R, S any] func() (objectAPI[R, S], error)

func objectRoutes[R, S any](rt *router, path string, api objectHandlers[R, S]) {
	rt.handle("GET", path, api.list)
	rt.handle("POST", path+"/create", api.create)
	rt.handle("GET", path+"/{id}", api.inspect)
	rt.handle("POST", path+"/{id}/update", api.update)
	rt.handle("DELETE", path+"/{id}", api.remove)
}

func (h objectHandlers[R, S]) create(w http.ResponseWriter, r *http.Request, _ params) error {
	b, err := h()
	if err != nil {
		return err
	}
	var spec S
	if err := readJSONBody(r, &spec); err != nil {
		return err
	}
	id, err := b.create(r.Context(), spec)
	if err != nil {
		if b.refused != nil {
			b.refused(r.Context(), spec, err)
		}
		return err
	}
	return writeJSON(w, http.StatusCreated, idAnswer{ID: id})
}

func (h objectHandlers[R, S]) list(w http.ResponseWriter, r *http.Request, _ params) error {
	b, err := h()
	if err != nil {
		return err
	}
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	list, err := b.list(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

func (h objectHandlers[R, S]) inspect(w http.ResponseWriter, r *http.Request, p params) error {
	b, err := h()
	if err != nil {
		return err
	}
	o, err := b.inspect(r.Context(), p["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, o)
}

func (h objectHandlers[R, S]) update(w http.ResponseWriter, r *http.Request, p params) error {
	b, err := h()
	if err != nil {
		return err
	}
	var spec S
	if err := readJSONBody(r, &spec); err != nil {
		return err
	}
	version, err := objectVersion(r, b.kind)
	if err != nil {
		return err
	}
	if err := b.update(r.Context(), p["id"], version, spec); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (h objectHandlers[R, S]) remove(w http.ResponseWriter, r *http.Request, p params) error {
	b, err := h()
	if err != nil {
		return err
	}
	if err := b.remove(r.Context(), p["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// isSecretCall says whether the route key is a secret or config call.
func isSecretCall(key string) bool {
	_, ok := secretRules[key]
	return ok
}

// checkSecretCall applies, to a caller that is not an unscoped admin, the
// checks of a secret or config call beyond its class: a scoped caller
// sees and changes only the objects whose labels hold its scope (others
// are answered 404, as if they did not exist), and what it creates gets
// its scope's labels.
func (s *Server) checkSecretCall(r *http.Request, key string, id authz.Identity, p params) (*http.Request, error) {
	if !id.Scoped() {
		return r, nil
	}
	kind := "config"
	if strings.Contains(key, " /secrets") {
		kind = "secret"
	}
	switch key {
	case "GET /secrets", "GET /configs":
		return scopeFilters(r, id)
	case "POST /secrets/create", "POST /configs/create":
		return scopeSpecLabels(r, id, kind, "create")
	}
	if err := s.objectInScope(r.Context(), id, kind, p["id"]); err != nil {
		return nil, err
	}
	if strings.HasSuffix(key, "/update") {
		return scopeSpecLabels(r, id, kind, "update")
	}
	return r, nil
}

// objectInScope answers 404 for a secret or config outside id's scope.
func (s *Server) objectInScope(ctx context.Context, id authz.Identity, kind, ref string) error {
	labels, err := s.objectLabels(ctx, kind, ref)
	if err != nil {
		return err
	}
	if !id.InScope(labels) {
		return errdefs.ErrNotFound.WithMessage(kind + " " + ref + " not found")
	}
	return nil
}

func (s *Server) objectLabels(ctx context.Context, kind, ref string) (map[string]string, error) {
	if kind == "secret" {
		b, err := s.secrets()
		if err != nil {
			return nil, err
		}
		sec, err := b.Secret(ctx, ref)
		return sec.Spec.Labels, err
	}
	b, err := s.configs()
	if err != nil {
		return nil, err
	}
	c, err := b.Config(ctx, ref)
	return c.Spec.Labels, err
}

// scopeSpecLabels sets the scope's labels on a create or update body (a
// secret's or a config's spec: their labels are at the top).
func scopeSpecLabels(r *http.Request, id authz.Identity, kind, verb string) (*http.Request, error) {
	var spec map[string]json.RawMessage
	if err := readJSONBody(r, &spec); err != nil {
		return nil, err
	}
	if spec == nil {
		spec = map[string]json.RawMessage{}
	}
	labels := map[string]string{}
	if raw, ok := spec["Labels"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &labels); err != nil {
			return nil, badRequest("invalid JSON: " + err.Error())
		}
	}
	for k, v := range id.Scope {
		if old, ok := labels[k]; ok && old != v {
			return nil, authz.Deny(id, fmt.Sprintf("%s %ss outside its scope (%s)", verb, kind, strings.Join(id.ScopeFilters(), ",")))
		}
		labels[k] = v
	}
	var err error
	if spec["Labels"], err = json.Marshal(labels); err != nil {
		return nil, err
	}
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	return withBody(r, body), nil
}

// refsInScope refuses a scoped caller a service that references secrets
// or configs outside its scope: through the service's tasks it would
// read them.
func (s *Server) refsInScope(ctx context.Context, id authz.Identity, spec swarm.ServiceSpec) error {
	cs := spec.TaskTemplate.ContainerSpec
	if !id.Scoped() || cs == nil {
		return nil
	}
	for _, ref := range cs.Secrets {
		if ref != nil && s.objectInScope(ctx, id, "secret", ref.SecretID) != nil {
			return authz.Deny(id, "use secret "+ref.SecretName+" (outside its scope)")
		}
	}
	for _, ref := range cs.Configs {
		if ref != nil && s.objectInScope(ctx, id, "config", ref.ConfigID) != nil {
			return authz.Deny(id, "use config "+ref.ConfigName+" (outside its scope)")
		}
	}
	return nil
}
