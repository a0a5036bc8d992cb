package dockerapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/shoal-dev/shoal/internal/authz"
	"github.com/shoal-dev/shoal/internal/backend"
)

// routeRule is the class of a route (the least role that may call it) and
// what a refusal says the caller may not do.
type routeRule struct {
	class authz.Class
	what  string
}

// routeRules classifies every route the server serves, by "METHOD pattern"
// as routes() registers it. A route missing here is admin-only (and fails
// TestEveryRouteIsClassified).
var routeRules = map[string]routeRule{
	"GET /_ping":        {authz.Public, "ping"},
	"HEAD /_ping":       {authz.Public, "ping"},
	"GET /version":      {authz.Public, "read the version"},
	"GET /info":         {authz.Read, "read the cluster's info"},
	"GET /_shoal/nodes": {authz.Read, "read the cluster's nodes"},

	"GET /containers/json":            {authz.Read, "list containers"},
	"POST /containers/create":         {authz.Operate, "create containers"},
	"POST /containers/prune":          {authz.Operate, "prune containers"},
	"GET /containers/{id*}/json":      {authz.Read, "inspect containers"},
	"GET /containers/{id*}/top":       {authz.Read, "list container processes"},
	"GET /containers/{id*}/logs":      {authz.Read, "read container logs"},
	"GET /containers/{id*}/stats":     {authz.Read, "read container stats"},
	"GET /containers/{id*}/changes":   {authz.Read, "list container changes"},
	"GET /containers/{id*}/export":    {authz.Operate, "export containers"},
	"GET /containers/{id*}/archive":   {authz.Operate, "copy files from containers"},
	"HEAD /containers/{id*}/archive":  {authz.Operate, "read files of containers"},
	"PUT /containers/{id*}/archive":   {authz.Operate, "copy files into containers"},
	"POST /containers/{id*}/start":    {authz.Operate, "start containers"},
	"POST /containers/{id*}/stop":     {authz.Operate, "stop containers"},
	"POST /containers/{id*}/restart":  {authz.Operate, "restart containers"},
	"POST /containers/{id*}/kill":     {authz.Operate, "kill containers"},
	"POST /containers/{id*}/pause":    {authz.Operate, "pause containers"},
	"POST /containers/{id*}/unpause":  {authz.Operate, "unpause containers"},
	"POST /containers/{id*}/update":   {authz.Operate, "update containers"},
	"POST /containers/{id*}/resize":   {authz.Operate, "resize container terminals"},
	"POST /containers/{id*}/wait":     {authz.Read, "wait for containers"},
	"POST /containers/{id*}/rename":   {authz.Operate, "rename containers"},
	"POST /containers/{id*}/attach":   {authz.Operate, "attach to containers"},
	"GET /containers/{id*}/attach/ws": {authz.Operate, "attach to containers"},
	"POST /containers/{id*}/exec":     {authz.Operate, "exec into containers"},
	"DELETE /containers/{id*}":        {authz.Operate, "remove containers"},
	"POST /exec/{id}/start":           {authz.Operate, "exec into containers"},
	"POST /exec/{id}/resize":          {authz.Operate, "resize exec terminals"},
	"GET /exec/{id}/json":             {authz.Read, "inspect exec instances"},
	"GET /images/json":                {authz.Read, "list images"},
	"POST /images/load":               {authz.Operate, "load images"},
	"POST /images/create":             {authz.Operate, "pull or import images"},
	"GET /images/{name*}/json":        {authz.Read, "inspect images"},
	"GET /images/{name*}/history":     {authz.Read, "read image history"},
	"GET /images/{name*}/get":         {authz.Operate, "save images"},
	"POST /images/{name*}/push":       {authz.Operate, "push images"},
	"GET /images/search":              {authz.Read, "search images"},
	"POST /auth":                      {authz.Operate, "log in to registries"},
	"GET /distribution/{name*}/json":  {authz.Read, "inspect image distribution"},
	"POST /commit":                    {authz.Operate, "commit containers"},
	"POST /build":                     {authz.Operate, "build images"},
	"GET /images/get":                 {authz.Operate, "save images"},
	"POST /images/{name*}/tag":        {authz.Operate, "tag images"},
	"DELETE /images/{name*}":          {authz.Operate, "remove images"},
	"GET /networks":                   {authz.Read, "list networks"},
	"POST /networks/create":           {authz.Operate, "create networks"},
	"POST /networks/prune":            {authz.Operate, "prune networks"},
	"GET /networks/{id*}":             {authz.Read, "inspect networks"},
	"DELETE /networks/{id*}":          {authz.Operate, "remove networks"},
	"POST /networks/{id*}/connect":    {authz.Operate, "connect containers to networks"},
	"POST /networks/{id*}/disconnect": {authz.Operate, "disconnect containers from networks"},
	"GET /volumes":                    {authz.Read, "list volumes"},
	"GET /plugins":                    {authz.Read, "list plugins"},
	"POST /volumes/create":            {authz.Operate, "create volumes"},
	"POST /volumes/prune":             {authz.Operate, "prune volumes"},
	"GET /volumes/{name*}":            {authz.Read, "inspect volumes"},
	"DELETE /volumes/{name*}":         {authz.Operate, "remove volumes"},
	"POST /images/prune":              {authz.Operate, "prune images"},
	"POST /build/prune":               {authz.Operate, "prune the build cache"},
	"GET /system/df":                  {authz.Read, "read disk usage"},
	"GET /events":                     {authz.Read, "read events"},
	"GET /nodes":                      {authz.Read, "list nodes"},
	"GET /nodes/{id}":                 {authz.Read, "inspect nodes"},
	"POST /nodes/{id}/update":         {authz.Admin, "update nodes"},
	"DELETE /nodes/{id}":              {authz.Admin, "remove nodes"},
	"GET /swarm":                      {authz.Read, "inspect the swarm"},
	"POST /swarm/init":                {authz.Admin, "initialize a swarm"},
	"POST /swarm/join":                {authz.Admin, "join a swarm"},
	"POST /swarm/leave":               {authz.Admin, "leave the swarm"},
	"POST /swarm/update":              {authz.Admin, "update the swarm or rotate join tokens"},
	"GET /swarm/unlockkey":            {authz.Admin, "read the swarm's unlock key"},
	"POST /swarm/unlock":              {authz.Admin, "unlock the swarm"},
	"GET /services":                   {authz.Read, "list services"},
	"POST /services/create":           {authz.Operate, "create services"},
	"GET /services/{id}":              {authz.Read, "inspect services"},
	"POST /services/{id}/update":      {authz.Operate, "update services"},
	"DELETE /services/{id}":           {authz.Operate, "remove services"},
	"GET /services/{id}/logs":         {authz.Read, "read service logs"},
	"GET /tasks":                      {authz.Read, "list tasks"},
	"GET /tasks/{id}":                 {authz.Read, "inspect tasks"},
	"GET /tasks/{id}/logs":            {authz.Read, "read task logs"},
	"GET /metrics":                    {authz.Read, "read metrics"},
}

// debugRule guards /debug/pprof (served with -D).
var debugRule = routeRule{authz.Admin, "read debug profiles"}

// ruleOf is the rule of a route; an unclassified one is admin-only.
func ruleOf(key string) routeRule {
	if rule, ok := routeRules[key]; ok {
		return rule
	}
	return routeRule{authz.Admin, "call " + key}
}

type authorizedKey struct{}

// identify attaches the client's identity to r's context (kept if one is
// there already: Guard identified the client before).
func (s *Server) identify(r *http.Request) *http.Request {
	if _, ok := authz.From(r.Context()); ok {
		return r
	}
	return r.WithContext(authz.With(r.Context(), s.Authz.Identify(r)))
}

// identity is the identity identify attached.
func identity(r *http.Request) authz.Identity {
	id, _ := authz.From(r.Context())
	return id
}

// authorizeRoutes wraps every route's handler in its authorization.
func (s *Server) authorizeRoutes() {
	for i := range s.rt.routes {
		rt := &s.rt.routes[i]
		key := rt.key
		rule, h := ruleOf(key), rt.h
		rt.h = func(w http.ResponseWriter, r *http.Request, p params) error {
			r, err := s.authorize(r, key, rule, p)
			if err != nil {
				return err
			}
			return h(w, r, p)
		}
	}
}

// authorizeDebug guards the profiles of -D.
func (s *Server) authorizeDebug(r *http.Request) error {
	_, err := s.authorize(r, "GET /debug/pprof", debugRule, nil)
	return err
}

// authorize checks that the caller's role may make the call and that it
// stays in the caller's scope; the request returned is the one to serve
// (a create gets the scope's labels, a list the scope's filters).
func (s *Server) authorize(r *http.Request, key string, rule routeRule, p params) (*http.Request, error) {
	if r.Context().Value(authorizedKey{}) != nil {
		return r, nil
	}
	id := identity(r)
	if !id.Allowed(rule.class) {
		return nil, authz.Deny(id, rule.what)
	}
	if id.Role == authz.RoleAdmin && !id.Scoped() {
		return r, nil
	}
	return s.checkCall(r, key, id, p)
}

// checkCall applies the checks of a call beyond its class, for a caller
// that is not an unscoped admin.
func (s *Server) checkCall(r *http.Request, key string, id authz.Identity, p params) (*http.Request, error) {
	ctx := r.Context()
	if isServiceCall(key) {
		return s.checkServiceCall(r, key, id, p)
	}
	if isSecretCall(key) {
		return s.checkSecretCall(r, key, id, p)
	}
	switch key {
	case "POST /containers/create":
		return s.checkCreate(r, id)
	case "POST /containers/{id*}/exec":
		return s.checkExecCreate(r, id, p["id"])
	case "POST /containers/{id*}/update":
		return s.checkUpdate(r, id, p["id"])
	case "DELETE /containers/{id*}":
		if boolValue(r.URL.Query().Get("link")) {
			return r, s.linkInScope(ctx, id, p["id"])
		}
	case "POST /exec/{id}/start", "POST /exec/{id}/resize", "GET /exec/{id}/json":
		return r, s.checkExec(r, id, p["id"], key != "GET /exec/{id}/json", key == "POST /exec/{id}/start")
	case "POST /containers/{id*}/attach", "GET /containers/{id*}/attach/ws", "GET /containers/{id*}/export",
		"GET /containers/{id*}/archive", "HEAD /containers/{id*}/archive", "PUT /containers/{id*}/archive":
		if err := s.containerInScope(ctx, id, p["id"]); err != nil {
			return nil, err
		}
		return r, s.checkHostAccess(r, id, p["id"], ruleOf(key).what)
	case "GET /containers/json", "POST /containers/prune", "GET /events":
		return scopeFilters(r, id)
	case "GET /system/df", "POST /images/prune", "POST /networks/prune", "POST /volumes/prune", "POST /build/prune":
		if id.Scoped() {
			// These list or remove objects of every scope.
			return nil, authz.Deny(id, ruleOf(key).what+" (scoped to "+strings.Join(id.ScopeFilters(), ",")+")")
		}
	case "POST /commit":
		return r, s.containerInScope(ctx, id, r.URL.Query().Get("container"))
	case "POST /networks/{id*}/connect", "POST /networks/{id*}/disconnect":
		return s.checkConnect(r, id)
	case "POST /volumes/create":
		return s.checkVolumeCreate(r, id)
	case "POST /build":
		if strings.EqualFold(r.URL.Query().Get("networkmode"), "host") && id.Role < authz.RoleAdmin {
			return nil, authz.Deny(id, "build with the host's network")
		}
	}
	if strings.Contains(key, " /containers/{id*}") {
		return r, s.containerInScope(ctx, id, p["id"])
	}
	return r, nil
}

// Guard authorizes each request before next serves it: for a replica,
// which forwards calls to the primary under its own, admin, certificate,
// so the caller's rights are checked here, where it connected. The
// request next sees is marked authorized, so that this server does not
// check it a second time when it serves it itself.
func (s *Server) Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = s.identify(r)
		v, path := splitVersion(r.URL.Path)
		r = withVersion(r, v)
		var err error
		if strings.HasPrefix(path, "/debug/") {
			err = s.authorizeDebug(r)
		} else if isUIPath(path) { // ui.go: the primary serves it
			_, err = s.authorize(r, "GET /ui", uiRule, nil)
		} else if rt, p := s.rt.lookup(r.Method, path); rt != nil {
			r, err = s.authorize(r, rt.key, ruleOf(rt.key), p)
		} else {
			// A path this manager does not serve may be one the primary
			// does (a newer version): only an admin's goes on.
			key := r.Method + " " + path
			r, err = s.authorize(r, key, ruleOf(key), nil)
		}
		if err != nil {
			s.setServerHeaders(w.Header())
			writeError(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authorizedKey{}, true)))
	})
}

// checkCreate refuses host access to non-admins, keeps the containers a
// create names in scope, and puts the scope's labels on the new container.
func (s *Server) checkCreate(r *http.Request, id authz.Identity) (*http.Request, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if body, err = authz.ForceScope(body, id.Scope); err != nil {
		if errors.Is(err, authz.ErrScopeLabel) {
			return nil, authz.Deny(id, "create containers outside its scope ("+strings.Join(id.ScopeFilters(), ",")+")")
		}
		return nil, badRequest("invalid JSON: " + err.Error())
	}
	// Checked after ForceScope, on the very bytes the engine will read.
	req, err := authz.ParseCreate(body)
	if err != nil {
		return nil, badRequest("invalid JSON: " + err.Error())
	}
	if id.Role < authz.RoleAdmin {
		if what := req.HostAccess(); len(what) > 0 {
			return nil, authz.Deny(id, what[0])
		}
	}
	for _, ref := range req.ContainerRefs() {
		if err := s.containerInScope(r.Context(), id, ref); err != nil {
			return nil, err
		}
	}
	return withBody(r, body), nil
}

func (s *Server) checkExecCreate(r *http.Request, id authz.Identity, ref string) (*http.Request, error) {
	if err := s.containerInScope(r.Context(), id, ref); err != nil {
		return nil, err
	}
	if err := s.checkHostAccess(r, id, ref, "exec into containers"); err != nil {
		return nil, err
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	priv, err := authz.ExecPrivileged(body)
	if err != nil {
		return nil, badRequest("invalid JSON: " + err.Error())
	}
	if priv && id.Role < authz.RoleAdmin {
		return nil, authz.Deny(id, "exec privileged processes")
	}
	return withBody(r, body), nil
}

func (s *Server) checkUpdate(r *http.Request, id authz.Identity, ref string) (*http.Request, error) {
	if err := s.containerInScope(r.Context(), id, ref); err != nil {
		return nil, err
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	what, err := authz.UpdateHostAccess(body)
	if err != nil {
		return nil, badRequest("invalid JSON: " + err.Error())
	}
	if len(what) > 0 && id.Role < authz.RoleAdmin {
		return nil, authz.Deny(id, what[0])
	}
	return withBody(r, body), nil
}

// checkExec checks an exec instance when it is used, not only when it was
// created: an exec is a bearer token (its ID), and Docker's authorization
// plugins see only the create. A privileged exec (an admin's) is started
// and resized (uses) by admins only; a scoped caller's exec must be in a
// container of its scope; a start also checks the container's host access.
func (s *Server) checkExec(r *http.Request, id authz.Identity, execID string, uses, start bool) error {
	cid, priv, err := s.inspectExec(r, execID)
	if err != nil {
		return err
	}
	if uses && priv && id.Role < authz.RoleAdmin {
		return authz.Deny(id, "run privileged exec instances")
	}
	if err := s.containerInScope(r.Context(), id, cid); errdefs.IsNotFound(err) {
		return errdefs.ErrNotFound.WithMessage("No such exec instance: " + execID)
	} else if err != nil {
		return err
	}
	if start && cid != "" {
		return s.checkHostAccess(r, id, cid, "exec into containers")
	}
	return nil
}

// checkHostAccess refuses a non-admin a shell or the files of a container
// an admin gave host access (privileged, host paths, the host's PID
// namespace...): through it, they would have the host.
func (s *Server) checkHostAccess(r *http.Request, id authz.Identity, ref, what string) error {
	if id.Role >= authz.RoleAdmin || ref == "" {
		return nil
	}
	t, cid, pathRef, err := s.b.Containers.ResolveContainer(r.Context(), ref)
	if err != nil || cid == "" || t == nil {
		return err // an unknown container gets the engine's 404
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://engine"+t.APIPath(apiVersion(r), "/containers/"+pathRef+"/json"), nil)
	if err != nil {
		return err
	}
	resp, err := t.Do(req)
	if err != nil {
		return errdefs.ErrUnavailable.WithMessage("node " + t.Name() + ": " + err.Error())
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil // gone meanwhile: the call itself gets the engine's answer
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBody))
	if err != nil {
		return errdefs.ErrUnavailable.WithMessage("node " + t.Name() + ": " + err.Error())
	}
	c, err := authz.ParseCreate(body) // an inspect's HostConfig reads as a create's
	if err != nil {
		return errdefs.ErrUnavailable.WithMessage("node " + t.Name() + ": container inspect: " + err.Error())
	}
	if host := c.RunningHostAccess(); len(host) > 0 {
		return authz.Deny(id, what+" that have host access")
	}
	return nil
}

// inspectExec asks the exec's engine for its container and whether it is privileged.
func (s *Server) inspectExec(r *http.Request, execID string) (containerID string, privileged bool, err error) {
	t, err := s.b.Execs.ResolveExec(r.Context(), execID)
	if err != nil {
		return "", false, err
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://engine"+t.APIPath(apiVersion(r), "/exec/"+execID+"/json"), nil)
	if err != nil {
		return "", false, err
	}
	resp, err := t.Do(req)
	if err != nil {
		return "", false, errdefs.ErrUnavailable.WithMessage("node " + t.Name() + ": " + err.Error())
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return "", false, errdefs.ErrNotFound.WithMessage("No such exec instance: " + execID)
	}
	var ex struct {
		ContainerID   string
		ProcessConfig struct {
			Privileged bool `json:"privileged"`
		}
	}
	if resp.StatusCode != http.StatusOK {
		return "", false, errdefs.ErrUnavailable.WithMessage("node " + t.Name() + ": exec inspect: " + resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ex); err != nil {
		return "", false, errdefs.ErrUnavailable.WithMessage("node " + t.Name() + ": exec inspect: " + err.Error())
	}
	return ex.ContainerID, ex.ProcessConfig.Privileged, nil
}

// containerInScope answers dockerd's 404 for a container outside a scoped
// caller's scope: a scoped client cannot tell it from one that does not
// exist. A container no engine has is left to the engine's 404.
func (s *Server) containerInScope(ctx context.Context, id authz.Identity, ref string) error {
	if !id.Scoped() || ref == "" {
		return nil
	}
	_, cid, _, err := s.b.Containers.ResolveContainer(ctx, ref)
	if err != nil || cid == "" {
		return err
	}
	return s.idInScope(ctx, id, cid, ref)
}

func (s *Server) idInScope(ctx context.Context, id authz.Identity, cid, ref string) error {
	list, err := s.b.Containers.ListContainers(ctx, backend.ContainerListOptions{
		All: true, Filters: backend.Filters{"id": {cid}, "label": id.ScopeFilters()},
	})
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return errdefs.ErrNotFound.WithMessage("No such container: " + strings.TrimPrefix(ref, "/"))
	}
	return nil
}

// linkInScope checks the parent of a link removal (DELETE ...?link=1).
func (s *Server) linkInScope(ctx context.Context, id authz.Identity, ref string) error {
	if !id.Scoped() {
		return nil
	}
	_, parentID, _, err := s.b.Containers.ResolveLink(ctx, ref)
	if err != nil || parentID == "" {
		return err
	}
	return s.idInScope(ctx, id, parentID, ref)
}

// checkConnect keeps network connect and disconnect to containers in scope.
func (s *Server) checkConnect(r *http.Request, id authz.Identity) (*http.Request, error) {
	if !id.Scoped() {
		return r, nil
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var req struct{ Container string }
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, badRequest("invalid JSON: " + err.Error())
	}
	if err := s.containerInScope(r.Context(), id, req.Container); err != nil {
		return nil, err
	}
	return withBody(r, body), nil
}

// checkVolumeCreate refuses local volumes over host paths or devices
// (-o type=none -o o=bind -o device=/etc) to non-admins: a bind mount by
// another name.
func (s *Server) checkVolumeCreate(r *http.Request, id authz.Identity) (*http.Request, error) {
	if id.Role >= authz.RoleAdmin {
		return r, nil
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var req struct{ DriverOpts map[string]string }
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, badRequest("invalid JSON: " + err.Error())
		}
	}
	if authz.LocalVolumeBindsHost(req.DriverOpts) {
		return nil, authz.Deny(id, "create volumes that bind host paths or devices")
	}
	return withBody(r, body), nil
}

// scopeFilters adds the caller's scope to a call's label filters, so that
// lists, prunes and events cover its containers only.
func scopeFilters(r *http.Request, id authz.Identity) (*http.Request, error) {
	if !id.Scoped() {
		return r, nil
	}
	q := r.URL.Query()
	f, err := parseFilters(q.Get("filters"))
	if err != nil {
		return nil, err
	}
	f["label"] = append(f["label"], id.ScopeFilters()...)
	q.Set("filters", f.Encode())
	r = r.Clone(r.Context())
	r.URL.RawQuery = q.Encode()
	return r, nil
}

// withBody is r with body as its (already read) body.
func withBody(r *http.Request, body []byte) *http.Request {
	r = r.WithContext(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header = r.Header.Clone()
	r.Header.Del("Content-Length")
	return r
}

// mayReadJoinTokens says whether the caller of r sees join tokens: admins
// only, as swarm mode shows them to managers only.
func mayReadJoinTokens(r *http.Request) bool {
	id, ok := authz.From(r.Context())
	return ok && id.Role >= authz.RoleAdmin
}

// scopedNetwork answers a scoped caller's network inspect with only the
// containers of its scope under Containers: the names and addresses of
// other teams' containers on a shared network are not its to see.
func (s *Server) scopedNetwork(w http.ResponseWriter, r *http.Request, t Target, nid string, who authz.Identity) error {
	body, ok, err := s.fetchOK(w, r, t, "/networks/"+nid)
	if !ok {
		return err
	}
	var inspect map[string]json.RawMessage
	if err := json.Unmarshal(body, &inspect); err != nil {
		return errdefs.ErrUnavailable.WithMessage("node " + t.Name() + ": network inspect: " + err.Error())
	}
	var members map[string]json.RawMessage
	if raw, ok := inspect["Containers"]; ok && json.Unmarshal(raw, &members) == nil && members != nil {
		for cid := range members {
			err := s.idInScope(r.Context(), who, cid, cid)
			if errdefs.IsNotFound(err) {
				delete(members, cid)
			} else if err != nil {
				return err
			}
		}
		if inspect["Containers"], err = json.Marshal(members); err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusOK, inspect)
}
