package secrets_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/secrets"
	"github.com/shoal-dev/shoal/internal/services"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

var (
	_ dockerapi.Secrets = (*secrets.Backend)(nil)
	_ dockerapi.Configs = (*secrets.Backend)(nil)
	_ services.Refs     = (*secrets.Backend)(nil)
)

var now = time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)

func newBackend(t *testing.T) (*secrets.Backend, *store.Store) {
	t.Helper()
	s := storetest.Open(t)
	return secrets.New(secrets.Config{Store: s, Now: func() time.Time { return now }}), s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func status(err error) int {
	var se interface{ HTTPStatus() int }
	switch {
	case errdefs.IsInvalidArgument(err):
		return 400
	case errdefs.IsNotFound(err):
		return 404
	case errdefs.IsConflict(err):
		return 409
	case errdefs.IsNotImplemented(err):
		return 501
	case errors.As(err, &se):
		return se.HTTPStatus()
	}
	return 500
}

func secretSpec(name, data string, labels map[string]string) swarm.SecretSpec {
	return swarm.SecretSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}, Data: []byte(data)}
}

// A secret's record keeps its data (for delivery) and the API never
// shows it; a config's data is shown. Labels read back as {} when none.
func TestCreateInspectRoundTrip(t *testing.T) {
	b, _ := newBackend(t)
	ctx := ctxT(t)
	id, err := b.CreateSecret(ctx, secretSpec("pw", "hunter2", nil))
	if err != nil || len(id) != 25 {
		t.Fatalf("create = %q, %v", id, err)
	}
	got, err := b.Secret(ctx, "pw")
	if err != nil || got.ID != id || got.Spec.Data != nil || got.Spec.Labels == nil || !got.CreatedAt.Equal(now) || got.Version.Index == 0 {
		t.Fatalf("inspect = %+v, %v", got, err)
	}
	for _, ref := range []string{id, id[:5]} {
		if got, err := b.Secret(ctx, ref); err != nil || got.ID != id {
			t.Errorf("inspect %s = %+v, %v", ref, got, err)
		}
	}
	full, err := b.SecretData(ctx, id)
	if err != nil || string(full.Spec.Data) != "hunter2" {
		t.Fatalf("data = %q, %v", full.Spec.Data, err)
	}
	list, err := b.Secrets(ctx, nil)
	if err != nil || len(list) != 1 || list[0].Spec.Data != nil {
		t.Fatalf("list = %+v, %v", list, err)
	}
	cid, err := b.CreateConfig(ctx, swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "conf"}, Data: []byte("a=1"),
		Templating: &swarm.Driver{Name: "golang"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.Config(ctx, "conf")
	if err != nil || c.ID != cid || string(c.Spec.Data) != "a=1" || c.Spec.Templating == nil || c.Spec.Templating.Name != "golang" {
		t.Fatalf("config = %+v, %v", c, err)
	}
}

func TestCreateRefusals(t *testing.T) {
	b, _ := newBackend(t)
	ctx := ctxT(t)
	if _, err := b.CreateSecret(ctx, secretSpec("taken", "x", nil)); err != nil {
		t.Fatal(err)
	}
	badName := "rpc error: code = InvalidArgument desc = invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]"
	for _, tc := range []struct {
		name string
		spec swarm.SecretSpec
		code int
		msg  string
	}{
		{"no name", secretSpec("", "x", nil), 400, "rpc error: code = InvalidArgument desc = name must be provided"},
		{"bad name", secretSpec("-x", "x", nil), 400, badName},
		{"long name", secretSpec(strings.Repeat("a", 65), "x", nil), 400, badName},
		{"empty", secretSpec("e", "", nil), 400, "rpc error: code = InvalidArgument desc = secret data must be larger than 0 and less than 512000 bytes"},
		{"too large", secretSpec("big", strings.Repeat("x", 500*1024), nil), 400, "rpc error: code = InvalidArgument desc = secret data must be larger than 0 and less than 512000 bytes"},
		{"driver", swarm.SecretSpec{Annotations: swarm.Annotations{Name: "d"}, Driver: &swarm.Driver{Name: "vault"}}, 400,
			"rpc error: code = InvalidArgument desc = secret driver vault is not supported: shoal has no secret drivers (plugins); create the secret with its data instead"},
		{"taken", secretSpec("taken", "y", nil), 409, "rpc error: code = AlreadyExists desc = secret taken already exists"},
	} {
		_, err := b.CreateSecret(ctx, tc.spec)
		if status(err) != tc.code || err.Error() != tc.msg {
			t.Errorf("%s: %d %v; want %d %q", tc.name, status(err), err, tc.code, tc.msg)
		}
	}
	if _, err := b.CreateSecret(ctx, secretSpec(strings.Repeat("a", 64), strings.Repeat("x", 500*1024-1), nil)); err != nil {
		t.Errorf("64-character name, 500 KiB - 1 of data: %v", err)
	}
	_, err := b.CreateConfig(ctx, swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "big"}, Data: make([]byte, 1000*1024)})
	if status(err) != 400 || !strings.Contains(err.Error(), "config data must be larger than 0 and less than 1024000 bytes") {
		t.Errorf("large config: %v", err)
	}
	if list, _ := b.Secrets(ctx, nil); len(list) != 2 {
		t.Errorf("after refusals: %d secrets, want 2", len(list))
	}
}

func TestListFilters(t *testing.T) {
	b, _ := newBackend(t)
	ctx := ctxT(t)
	ids := map[string]string{}
	for _, s := range []swarm.SecretSpec{secretSpec("db-pw", "1", map[string]string{"env": "prod"}),
		secretSpec("db-user", "2", map[string]string{"env": "dev", "team": "a"}), secretSpec("api", "3", nil)} {
		id, err := b.CreateSecret(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		ids[s.Name] = id
	}
	names := func(f backend.Filters) string {
		list, err := b.Secrets(ctx, f)
		if err != nil {
			return err.Error()
		}
		var out []string
		for _, s := range list {
			out = append(out, s.Spec.Name)
		}
		slices.Sort(out)
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		f    backend.Filters
		want string
	}{
		{nil, "api,db-pw,db-user"},
		{backend.Filters{"name": {"db"}}, "db-pw,db-user"},
		{backend.Filters{"names": {"db"}}, ""},
		{backend.Filters{"names": {"db-pw"}}, "db-pw"},
		{backend.Filters{"names": {"api"}, "name": {"db-u"}}, "api,db-user"},
		{backend.Filters{"id": {ids["api"][:6]}}, "api"},
		{backend.Filters{"label": {"env"}}, "db-pw,db-user"},
		{backend.Filters{"label": {"env=dev"}}, "db-user"},
		{backend.Filters{"label": {"env", "team=a"}, "name": {"db"}}, "db-user"},
		{backend.Filters{"driver": {"x"}}, "Invalid filter 'driver'"},
	} {
		if got := names(tc.f); got != tc.want {
			t.Errorf("filters %v: %q, want %q", tc.f, got, tc.want)
		}
	}
	if _, err := b.Configs(ctx, backend.Filters{"names": {"x"}}); status(err) != 400 {
		t.Errorf("configs with a names filter: %v, want dockerd's 400", err)
	}
}

func TestLookupErrors(t *testing.T) {
	b, _ := newBackend(t)
	ctx := ctxT(t)
	if _, err := b.Secret(ctx, "nope"); status(err) != 404 || err.Error() != "secret nope not found" {
		t.Errorf("unknown: %v", err)
	}
	if _, err := b.Config(ctx, "nope"); status(err) != 404 || err.Error() != "config nope not found" {
		t.Errorf("unknown config: %v", err)
	}
	// Two IDs share a first character more often than not with a few
	// dozen: make enough for "" + one digit to be ambiguous.
	seen := map[byte]int{}
	for i := 0; i < 40; i++ {
		id, err := b.CreateSecret(ctx, secretSpec("s"+strings.Repeat("x", i), "d", nil))
		if err != nil {
			t.Fatal(err)
		}
		seen[id[0]]++
	}
	for c, n := range seen {
		if n > 1 {
			_, err := b.Secret(ctx, string(c))
			if status(err) != 400 || !strings.Contains(err.Error(), "is ambiguous") {
				t.Errorf("prefix %c of %d: %v", c, n, err)
			}
			return
		}
	}
	t.Fatal("no shared first character among 40 IDs")
}

// Only labels may change, at the version read; a stale version is
// swarm mode's "update out of sequence".
func TestUpdateLabelsOnly(t *testing.T) {
	b, _ := newBackend(t)
	ctx := ctxT(t)
	id, err := b.CreateSecret(ctx, secretSpec("pw", "hunter2", nil))
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := b.Secret(ctx, id)
	if err := b.UpdateSecret(ctx, "pw", cur.Version.Index, secretSpec("pw", "other", nil)); status(err) != 400 ||
		err.Error() != "rpc error: code = InvalidArgument desc = only updates to Labels are allowed" {
		t.Errorf("data change: %v", err)
	}
	if err := b.UpdateSecret(ctx, "pw", cur.Version.Index, secretSpec("pw2", "", nil)); status(err) != 400 {
		t.Errorf("rename: %v", err)
	}
	spec := swarm.SecretSpec{Annotations: swarm.Annotations{Name: "pw", Labels: map[string]string{"a": "b"}}}
	if err := b.UpdateSecret(ctx, "pw", cur.Version.Index, spec); err != nil {
		t.Fatalf("labels: %v", err)
	}
	got, _ := b.Secret(ctx, id)
	full, _ := b.SecretData(ctx, id)
	if got.Spec.Labels["a"] != "b" || got.Version.Index <= cur.Version.Index || string(full.Spec.Data) != "hunter2" {
		t.Errorf("after update: %+v (data %q)", got, full.Spec.Data)
	}
	if err := b.UpdateSecret(ctx, "pw", cur.Version.Index, spec); status(err) != 500 || err.Error() != "rpc error: code = Unknown desc = update out of sequence" {
		t.Errorf("stale version: %v", err)
	}
	cid, _ := b.CreateConfig(ctx, swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "c"}, Data: []byte("x")})
	c, _ := b.Config(ctx, cid)
	if err := b.UpdateConfig(ctx, cid, c.Version.Index, swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "c", Labels: map[string]string{"k": ""}}, Data: []byte("x")}); err != nil {
		t.Errorf("config labels with the same data: %v", err)
	}
}

// A secret or config a service references cannot be removed, in swarm
// mode's words; once the service is gone it can.
func TestRemoveInUse(t *testing.T) {
	b, s := newBackend(t)
	ctx := ctxT(t)
	sid, _ := b.CreateSecret(ctx, secretSpec("pw", "x", nil))
	cid, _ := b.CreateConfig(ctx, swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "conf"}, Data: []byte("x")})
	svcs := store.NewServices(s)
	for _, name := range []string{"web", "api"} {
		spec := swarm.ServiceSpec{Annotations: swarm.Annotations{Name: name}, TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "busybox",
			Secrets: []*swarm.SecretReference{{SecretID: sid, SecretName: "pw", File: &swarm.SecretReferenceFileTarget{Name: "pw"}}},
			Configs: []*swarm.ConfigReference{{ConfigID: cid, ConfigName: "conf", File: &swarm.ConfigReferenceFileTarget{Name: "/c"}}}}}}
		if _, err := svcs.Create(ctx, name+"-id", spec, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.RemoveSecret(ctx, "pw"); status(err) != 400 ||
		err.Error() != "rpc error: code = InvalidArgument desc = secret 'pw' is in use by the following services: api, web" {
		t.Errorf("remove in use: %v", err)
	}
	_ = svcs.Delete(ctx, "web-id")
	if err := b.RemoveConfig(ctx, cid); status(err) != 400 ||
		err.Error() != "rpc error: code = InvalidArgument desc = config 'conf' is in use by the following service: api" {
		t.Errorf("remove config in use: %v", err)
	}
	_ = svcs.Delete(ctx, "api-id")
	if err := b.RemoveSecret(ctx, sid[:4]); err != nil {
		t.Errorf("remove unused: %v", err)
	}
	if err := b.RemoveConfig(ctx, "conf"); err != nil {
		t.Errorf("remove unused config: %v", err)
	}
	if err := b.RemoveSecret(ctx, "pw"); status(err) != 404 {
		t.Errorf("remove again: %v", err)
	}
}

func TestCheckRefs(t *testing.T) {
	b, s := newBackend(t)
	ctx := ctxT(t)
	sid, _ := b.CreateSecret(ctx, secretSpec("pw", "x", nil))
	cid, _ := b.CreateConfig(ctx, swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "conf"}, Data: []byte("x")})
	file := func(n string) *swarm.SecretReferenceFileTarget {
		return &swarm.SecretReferenceFileTarget{Name: n, UID: "0", GID: "0", Mode: 0o444}
	}
	ok := &swarm.ContainerSpec{Secrets: []*swarm.SecretReference{{SecretID: sid, SecretName: "pw", File: file("pw")}},
		Configs: []*swarm.ConfigReference{{ConfigID: cid, ConfigName: "conf", File: &swarm.ConfigReferenceFileTarget{Name: "/etc/c.conf", Mode: 0o440}}}}
	if err := b.CheckRefs(ctx, ok); err != nil {
		t.Fatalf("valid references: %v", err)
	}
	desc := "rpc error: code = InvalidArgument desc = "
	for _, tc := range []struct {
		name string
		cs   *swarm.ContainerSpec
		msg  string
	}{
		{"malformed", &swarm.ContainerSpec{Secrets: []*swarm.SecretReference{{SecretName: "pw", File: file("pw")}}}, "malformed secret reference"},
		{"no target", &swarm.ContainerSpec{Secrets: []*swarm.SecretReference{{SecretID: sid, SecretName: "pw"}}}, "malformed secret reference, no target provided"},
		{"conflict", &swarm.ContainerSpec{Secrets: []*swarm.SecretReference{{SecretID: sid, SecretName: "pw", File: file("x")}, {SecretID: sid, SecretName: "pw", File: file("x")}}},
			"secret references 'pw' and 'pw' have a conflicting target: 'x'"},
		{"unknown", &swarm.ContainerSpec{Secrets: []*swarm.SecretReference{{SecretID: "nope", SecretName: "a", File: file("a")}, {SecretID: sid, SecretName: "other", File: file("b")}}},
			"secrets not found: a, other"},
		{"unknown config", &swarm.ContainerSpec{Configs: []*swarm.ConfigReference{{ConfigID: "nope", ConfigName: "c", File: &swarm.ConfigReferenceFileTarget{Name: "/c"}}}},
			"config not found: c"},
	} {
		if err := b.CheckRefs(ctx, tc.cs); status(err) != 400 || err.Error() != desc+tc.msg {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.msg)
		}
	}
	manage := secrets.New(secrets.Config{Store: s, NoSecretDelivery: true})
	if err := manage.CheckRefs(ctx, ok); status(err) != 501 || !strings.Contains(err.Error(), "built-in cluster") {
		t.Errorf("secrets under manage: %v", err)
	}
	if err := manage.CheckRefs(ctx, &swarm.ContainerSpec{Configs: ok.Configs}); err != nil {
		t.Errorf("configs under manage: %v", err)
	}
}

// A service through the services backend wired with this one: its
// references are checked at create.
func TestServiceCreateChecksRefs(t *testing.T) {
	b, s := newBackend(t)
	ctx := ctxT(t)
	svc := services.New(services.Config{Store: s, Refs: b})
	one := uint64(1)
	spec := swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "web"}, Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "busybox",
			Secrets: []*swarm.SecretReference{{SecretID: "x", SecretName: "pw", File: &swarm.SecretReferenceFileTarget{Name: "pw"}}}}}}
	if _, err := svc.CreateService(ctx, spec, ""); status(err) != 400 || !strings.Contains(err.Error(), "secret not found: pw") {
		t.Fatalf("unknown secret: %v", err)
	}
	id, _ := b.CreateSecret(ctx, secretSpec("pw", "x", nil))
	spec.TaskTemplate.ContainerSpec.Secrets[0].SecretID = id
	if _, err := svc.CreateService(ctx, spec, ""); err != nil {
		t.Fatalf("known secret: %v", err)
	}
	if err := b.RemoveSecret(ctx, "pw"); status(err) != 400 {
		t.Errorf("remove a used secret: %v", err)
	}
}

// The store's records round trip (ID, version, times, data), and a
// guarded delete fails when a service was written after the revision
// its users were checked at, so a removal cannot race a service create.
func TestStoreRecordsAndGuardedDelete(t *testing.T) {
	s := storetest.Open(t)
	ctx := ctxT(t)
	secs := store.NewSecrets(s)
	created, err := secs.Create(ctx, "id1", secretSpec("pw", "data", nil), now)
	if err != nil {
		t.Fatal(err)
	}
	got, err := secs.Get(ctx, "id1")
	if err != nil || got.ID != "id1" || got.Version != created.Version || !got.CreatedAt.Equal(now) || string(got.Spec.Data) != "data" {
		t.Fatalf("get = %+v, %v (created %+v)", got, err, created)
	}
	if _, err := secs.Create(ctx, "id1", secretSpec("pw", "x", nil), now); !errors.Is(err, store.ErrExists) {
		t.Errorf("create again: %v", err)
	}
	_, rev, err := store.NewServices(s).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.NewServices(s).Create(ctx, "svc", swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "web"}}, now); err != nil {
		t.Fatal(err)
	}
	if err := secs.DeleteUnused(ctx, "id1", rev); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("delete after a service write: %v, want ErrConflict", err)
	}
	_, rev, _ = store.NewServices(s).List(ctx)
	if err := secs.DeleteUnused(ctx, "id1", rev); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := secs.DeleteUnused(ctx, "id1", rev); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete again: %v", err)
	}
}
