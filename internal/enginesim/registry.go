package enginesim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// Registries that need credentials, as a registry with htpasswd auth
// does: a pull of an image under one of them is refused unless the
// client's X-Registry-Auth carries its user name and password.

// RequireRegistryAuth makes pulls of images under registry (host[:port])
// need the X-Registry-Auth of username and password.
func (e *Engine) RequireRegistryAuth(registry, username, password string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.registries == nil {
		e.registries = map[string][2]string{}
	}
	e.registries[registry] = [2]string{username, password}
}

// Pulls returns the X-Registry-Auth headers of the pulls of ref ("" for
// a pull without one), in order: tests check what a client sent.
func (e *Engine) Pulls(ref string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.pulls[ref]...)
}

// pullDenied records a pull of ref with the header auth and returns
// dockerd's words for a refusal by the registry ("" when allowed).
func (e *Engine) pullDenied(ref, auth string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pulls == nil {
		e.pulls = map[string][]string{}
	}
	e.pulls[ref] = append(e.pulls[ref], auth)
	registry, rest, ok := strings.Cut(ref, "/")
	want, needed := e.registries[registry]
	if !ok || !needed {
		return ""
	}
	repo, tag, _ := strings.Cut(rest, ":")
	manifest := `Head "https://` + registry + "/v2/" + repo + "/manifests/" + tag + `": `
	user, pass, given := decodeAuth(auth)
	switch {
	case !given:
		return manifest + "no basic auth credentials"
	case user != want[0] || pass != want[1]:
		return manifest + "unauthorized: authentication required"
	}
	return ""
}

// decodeAuth reads an X-Registry-Auth header (base64url JSON, as the CLI
// sends it; dockerd also takes standard base64).
func decodeAuth(h string) (user, pass string, ok bool) {
	if h == "" {
		return "", "", false
	}
	raw, err := base64.URLEncoding.DecodeString(h)
	if err != nil {
		if raw, err = base64.StdEncoding.DecodeString(h); err != nil {
			return "", "", false
		}
	}
	var cfg struct{ Username, Password string }
	if json.Unmarshal(raw, &cfg) != nil || cfg.Username == "" {
		return "", "", false
	}
	return cfg.Username, cfg.Password, true
}

// denyPull answers a refused pull as dockerd does before any progress.
func denyPull(w http.ResponseWriter, msg string) {
	writeError(w, http.StatusInternalServerError, msg)
}
