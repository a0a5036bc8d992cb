package dockerapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
)

// fakeSecrets holds secrets and configs by ID (= name) with labels.
type fakeSecrets struct {
	labels     map[string]map[string]string
	gotSpec    swarm.SecretSpec
	gotConfig  swarm.ConfigSpec
	gotFilters backend.Filters
	gotVersion uint64
	removed    string
}

func (f *fakeSecrets) CreateSecret(_ context.Context, spec swarm.SecretSpec) (string, error) {
	f.gotSpec = spec
	return "sid", nil
}

func (f *fakeSecrets) Secrets(_ context.Context, fl backend.Filters) ([]swarm.Secret, error) {
	f.gotFilters = fl
	return []swarm.Secret{}, nil
}

func (f *fakeSecrets) Secret(_ context.Context, ref string) (swarm.Secret, error) {
	l, ok := f.labels[ref]
	if !ok {
		return swarm.Secret{}, errdefs.ErrNotFound.WithMessage("secret " + ref + " not found")
	}
	return swarm.Secret{ID: ref, Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: ref, Labels: l}}}, nil
}

func (f *fakeSecrets) UpdateSecret(_ context.Context, ref string, v uint64, spec swarm.SecretSpec) error {
	f.gotVersion, f.gotSpec = v, spec
	return nil
}

func (f *fakeSecrets) RemoveSecret(_ context.Context, ref string) error { f.removed = ref; return nil }

func (f *fakeSecrets) CreateConfig(_ context.Context, spec swarm.ConfigSpec) (string, error) {
	f.gotConfig = spec
	return "cid", nil
}

func (f *fakeSecrets) Configs(context.Context, backend.Filters) ([]swarm.Config, error) {
	return []swarm.Config{}, nil
}

func (f *fakeSecrets) Config(_ context.Context, ref string) (swarm.Config, error) {
	l, ok := f.labels[ref]
	if !ok {
		return swarm.Config{}, errdefs.ErrNotFound.WithMessage("config " + ref + " not found")
	}
	return swarm.Config{ID: ref, Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: ref, Labels: l}}}, nil
}

func (f *fakeSecrets) UpdateConfig(context.Context, string, uint64, swarm.ConfigSpec) error {
	return nil
}
func (f *fakeSecrets) RemoveConfig(_ context.Context, ref string) error { f.removed = ref; return nil }

// Without a store every secret and config call answers 503; with one,
// dockerd's statuses: 201 with the ID, 204 on remove, 400 on a bad
// version.
func TestSecretRoutes(t *testing.T) {
	s := NewServer(Backends{}, "test", nil)
	if rec := callAs(s, nil, "GET", "/v1.41/secrets", ""); rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "built-in cluster") {
		t.Errorf("no store: %d %s", rec.Code, rec.Body)
	}
	f := &fakeSecrets{labels: map[string]map[string]string{"pw": {}}}
	s.Secrets, s.Configs = f, f
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/v1.41/secrets/create", `{"Name":"pw","Data":"aHVudGVyMg=="}`, 201, `{"ID":"sid"}`},
		{"POST", "/v1.41/configs/create", `{"Name":"c","Data":"eA=="}`, 201, `{"ID":"cid"}`},
		{"POST", "/v1.41/secrets/create", `{"Name":`, 400, "invalid JSON: unexpected EOF"},
		{"GET", `/v1.41/secrets?filters={"name":["p"]}`, "", 200, "[]"},
		{"POST", "/v1.41/secrets/pw/update?version=x", `{"Name":"pw"}`, 400, "invalid secret version"},
		{"POST", "/v1.41/secrets/pw/update?version=12", `{"Name":"pw","Labels":{"a":"b"}}`, 200, ""},
		{"DELETE", "/v1.41/secrets/pw", "", 204, ""},
		{"DELETE", "/v1.41/configs/c", "", 204, ""},
	} {
		rec := callAs(s, nil, tc.method, tc.path, tc.body)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, rec.Code, rec.Body, tc.code, tc.want)
		}
	}
	if f.gotVersion != 12 || f.gotSpec.Labels["a"] != "b" || f.gotFilters["name"][0] != "p" || f.removed != "c" {
		t.Errorf("backend got %+v version %d filters %v removed %q", f.gotSpec, f.gotVersion, f.gotFilters, f.removed)
	}
}

// Viewers list and inspect, operators create and remove; a scoped
// operator sees only its scope's objects, its creates get its labels,
// and its services may not use another scope's secrets.
func TestSecretAuthorization(t *testing.T) {
	f := &fakeSecrets{labels: map[string]map[string]string{"web-pw": {"team": "web"}, "db-pw": {"team": "db"}}}
	svcs := &fakeServices{}
	s := NewServer(Backends{}, "test", nil)
	s.Secrets, s.Configs, s.Services = f, f, svcs
	for _, tc := range []struct {
		who                *tls.ConnectionState
		method, path, body string
		code               int
		want               string
	}{
		{viewer, "GET", "/secrets", "", 200, "[]"},
		{viewer, "GET", "/secrets/db-pw", "", 200, "db-pw"},
		{viewer, "POST", "/secrets/create", `{"Name":"x","Data":"eA=="}`, 403, "authorization denied: vera (viewer) may not create secrets"},
		{viewer, "DELETE", "/configs/db-pw", "", 403, "authorization denied: vera (viewer) may not remove configs"},
		{operator, "DELETE", "/secrets/db-pw", "", 204, ""},
		{webOp, "GET", "/secrets/db-pw", "", 404, "secret db-pw not found"},
		{webOp, "DELETE", "/secrets/db-pw", "", 404, "secret db-pw not found"},
		{webOp, "GET", "/secrets/web-pw", "", 200, "web-pw"},
		{webOp, "POST", "/secrets/create", `{"Name":"x","Data":"eA==","Labels":{"team":"db"}}`, 403, "authorization denied: wes (operator) may not create secrets outside its scope (team=web)"},
		{webOp, "POST", "/secrets/create", `{"Name":"x","Data":"eA=="}`, 201, "sid"},
		{webOp, "POST", "/services/create", `{"Name":"s","TaskTemplate":{"ContainerSpec":{"Image":"busybox","Secrets":[{"SecretID":"db-pw","SecretName":"db-pw","File":{"Name":"x"}}]}}}`,
			403, "authorization denied: wes (operator) may not use secret db-pw (outside its scope)"},
	} {
		rec := callAs(s, tc.who, tc.method, tc.path, tc.body)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, rec.Code, rec.Body, tc.code, tc.want)
		}
	}
	if f.gotSpec.Labels["team"] != "web" {
		t.Errorf("scoped create got labels %v, want team=web", f.gotSpec.Labels)
	}
	rec := callAs(s, webOp, "GET", "/secrets", "")
	var list []json.RawMessage
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &list) != nil || len(f.gotFilters["label"]) != 1 || f.gotFilters["label"][0] != "team=web" {
		t.Errorf("scoped list: %d %s filters %v", rec.Code, rec.Body, f.gotFilters)
	}
}
