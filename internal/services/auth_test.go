package services_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/store"
)

// TestUpdateRegistryAuthAsDockerd: each spec keeps its own registry auth
// as swarm mode's PullOptions: an update without auth keeps the current
// one (registryAuthFrom "" or spec), previous-spec takes the previous
// spec's (500 when there is none, dockerd's words), a client's auth
// replaces it, and a rollback swaps the two back.
func TestUpdateRegistryAuthAsDockerd(t *testing.T) {
	b, f, s := newBackend(t)
	ctx := context.Background()
	r, err := b.CreateService(ctx, spec("web", 1), "auth1")
	if err != nil {
		t.Fatal(err)
	}
	services := store.NewServices(s)
	get := func() store.Service {
		t.Helper()
		rec, err := services.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	update := func(opts backend.ServiceUpdate) error {
		t.Helper()
		opts.Version, opts.Spec = get().Version, spec("web", 2)
		_, err := b.UpdateService(ctx, r.ID, opts)
		return err
	}
	check := func(step, auth, prev string) {
		t.Helper()
		if rec := get(); rec.RegistryAuth != auth || rec.PreviousRegistryAuth != prev {
			t.Errorf("%s: auth %q, previous %q; want %q, %q", step, rec.RegistryAuth, rec.PreviousRegistryAuth, auth, prev)
		}
	}

	err = update(backend.ServiceUpdate{RegistryAuthFrom: swarm.RegistryAuthFromPreviousSpec})
	if status(err) != http.StatusInternalServerError || err.Error() != "service does not have a previous spec" {
		t.Errorf("previous-spec without a previous spec: %d %v", status(err), err)
	}
	check("refused", "auth1", "")
	if err := update(backend.ServiceUpdate{RegistryAuthFrom: swarm.RegistryAuthFromSpec}); err != nil {
		t.Fatal(err)
	}
	check("from spec", "auth1", "auth1")
	if err := update(backend.ServiceUpdate{EncodedRegistryAuth: "auth2"}); err != nil {
		t.Fatal(err)
	}
	check("client's auth", "auth2", "auth1")
	if err := update(backend.ServiceUpdate{}); err != nil {
		t.Fatal(err)
	}
	check("no auth, no source", "auth2", "auth2")
	if err := update(backend.ServiceUpdate{EncodedRegistryAuth: "auth3"}); err != nil {
		t.Fatal(err)
	}
	// A client-side rollback (the CLI's `docker service update --rollback`
	// against API < 1.28) sends the previous spec with
	// registryAuthFrom=previous-spec.
	sp := spec("web", 2)
	sp.TaskTemplate.ContainerSpec.Image = "nginx"
	if _, err := b.UpdateService(ctx, r.ID, backend.ServiceUpdate{Version: get().Version, Spec: sp, RegistryAuthFrom: swarm.RegistryAuthFromPreviousSpec}); err != nil {
		t.Fatal(err)
	}
	check("previous-spec", "auth2", "auth3")
	if f.gotAuth != "auth2" {
		t.Errorf("the new image was checked with auth %q, want the previous spec's", f.gotAuth)
	}
	// `docker service rollback`: swarm mode swaps the specs, auth and all.
	if err := update(backend.ServiceUpdate{Rollback: "previous", EncodedRegistryAuth: "ignored"}); err != nil {
		t.Fatal(err)
	}
	check("rollback", "auth3", "auth2")
	svc, err := b.Service(ctx, r.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if js := mustJSON(t, svc); containsAny(js, "auth1", "auth2", "auth3") {
		t.Errorf("the API shows a registry auth: %s", js)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
