package services_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/services"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

var _ dockerapi.Services = (*services.Backend)(nil)

// fakeEngines knows a few images, nodes by hostname, and serves log
// streams per container.
type fakeEngines struct {
	mu        sync.Mutex
	images    map[string]bool // on some node
	pullable  map[string]bool
	unknown   bool              // the engines cannot be asked
	nodes     map[string]string // hostname → ID
	logs      map[string]string // container ID → multiplexed stream
	failLogs  map[string]error  // container ID → open error
	gotAuth   string
	gotQuery  url.Values
	openCount int
	opens     map[string][]fakeOpen // container ID → what its next opens do
	queries   []url.Values
}

// fakeOpen is one open of a container's logs: an error, or a body that
// ends with readErr (nil: EOF).
type fakeOpen struct {
	err     error
	body    string
	readErr error
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func (f *fakeEngines) CheckImage(_ context.Context, image, auth string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gotAuth = auth
	switch {
	case f.unknown:
		return errdefs.ErrUnavailable.WithMessage("no healthy node")
	case f.images[image] || f.pullable[image]:
		return nil
	}
	return errdefs.ErrNotFound.WithMessage("node1: pull access denied for " + image)
}

func (f *fakeEngines) ResolveNode(_ context.Context, ref string) (string, error) {
	for name, id := range f.nodes {
		if ref == name || ref == id {
			return id, nil
		}
	}
	return "", errdefs.ErrNotFound.WithMessage("node " + ref + " not found")
}

func (f *fakeEngines) ContainerLogs(_ context.Context, nodeID, cid string, q url.Values) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.openCount++
	f.gotQuery = q
	f.queries = append(f.queries, maps.Clone(q))
	if seq := f.opens[cid]; len(seq) > 0 {
		o := seq[0]
		f.opens[cid] = seq[1:]
		if o.err != nil {
			return nil, o.err
		}
		var tail io.Reader = errReader{io.EOF}
		if o.readErr != nil {
			tail = errReader{o.readErr}
		}
		return io.NopCloser(io.MultiReader(strings.NewReader(o.body), tail)), nil
	}
	if err := f.failLogs[cid]; err != nil {
		return nil, err
	}
	return io.NopCloser(strings.NewReader(f.logs[cid])), nil
}

var now = time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC)

func newBackend(t *testing.T) (*services.Backend, *fakeEngines, *store.Store) {
	t.Helper()
	s := storetest.Open(t)
	f := &fakeEngines{images: map[string]bool{"busybox:latest": true, "busybox": true, "nginx": true},
		nodes: map[string]string{"node1": "n1id", "node2": "n2id"}}
	b := services.New(services.Config{Store: s, Engines: f, Now: func() time.Time { return now }})
	return b, f, s
}

func spec(name string, replicas uint64) swarm.ServiceSpec {
	return swarm.ServiceSpec{Annotations: swarm.Annotations{Name: name},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "busybox", Command: []string{"sleep", "3600"}}},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}}}
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
	case errdefs.IsUnavailable(err):
		return 503
	case errors.As(err, &se):
		return se.HTTPStatus()
	}
	return 500
}

func TestCreateRefusesBadSpecs(t *testing.T) {
	b, _, s := newBackend(t)
	ctx := context.Background()
	if _, err := b.CreateService(ctx, spec("web", 1), ""); err != nil {
		t.Fatal(err)
	}
	huge := uint64(1 << 63)
	for _, tc := range []struct {
		name   string
		change func(*swarm.ServiceSpec)
		code   int
		msg    string
	}{
		{"no name", func(s *swarm.ServiceSpec) { s.Name = "" }, 400, "rpc error: code = InvalidArgument desc = meta: name must be provided"},
		{"bad name", func(s *swarm.ServiceSpec) { s.Name = "web_" }, 400, "rpc error: code = InvalidArgument desc = name must be valid as a DNS name component"},
		{"long name", func(s *swarm.ServiceSpec) { s.Name = strings.Repeat("a", 64) }, 400, "rpc error: code = InvalidArgument desc = name must be 63 characters or fewer"},
		{"name taken", func(s *swarm.ServiceSpec) { s.Name = "web" }, 409, "rpc error: code = AlreadyExists desc = name conflicts with an existing object: service web already exists"},
		{"negative replicas", func(s *swarm.ServiceSpec) { s.Mode.Replicated.Replicas = &huge }, 400, "rpc error: code = InvalidArgument desc = Number of replicas must be non-negative"},
		{"two modes", func(s *swarm.ServiceSpec) { s.Mode.Global = &swarm.GlobalService{} }, 400, "must specify only one service mode"},
		{"job with update config", func(s *swarm.ServiceSpec) {
			s.Mode = swarm.ServiceMode{ReplicatedJob: &swarm.ReplicatedJob{}}
			s.UpdateConfig = &swarm.UpdateConfig{}
		}, 400, "rpc error: code = InvalidArgument desc = Jobs may not have an update config"},
		{"no operator", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.Placement = &swarm.Placement{Constraints: []string{"node.role=manager"}}
		}, 400, "rpc error: code = Unknown desc = constraint expected one operator from ==, !="},
		{"bad key", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.Placement = &swarm.Placement{Constraints: []string{"no de==x"}}
		}, 400, "rpc error: code = Unknown desc = key 'no de' is invalid"},
		{"bad value", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.Placement = &swarm.Placement{Constraints: []string{"node.id==<x>"}}
		}, 400, "rpc error: code = Unknown desc = value '<x>' is invalid"},
		{"no image", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Image = "" }, 400, "rpc error: code = InvalidArgument desc = ContainerSpec: image reference must be provided"},
		{"bad image", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Image = "Busy Box" }, 400, `rpc error: code = InvalidArgument desc = ContainerSpec: "Busy Box" is not a valid repository/tag`},
		{"no such image", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Image = "nosuch:1" }, 400, "image nosuch:1 is on no node and no node could pull it (node1: pull access denied for nosuch:1): nothing was created"},
		{"small memory", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.Resources = &swarm.ResourceRequirements{Limits: &swarm.Limit{MemoryBytes: 1024}}
		}, 400, "rpc error: code = InvalidArgument desc = invalid memory value 1024: Must be at least 4MiB"},
		{"bad failure action", func(s *swarm.ServiceSpec) { s.UpdateConfig = &swarm.UpdateConfig{FailureAction: "explode"} }, 400, "unrecognized update failure action explode"},
		{"secret", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Secrets = []*swarm.SecretReference{{SecretName: "pw"}}
		}, 400, "rpc error: code = InvalidArgument desc = secret not found: pw"},
		{"plugin", func(s *swarm.ServiceSpec) { s.TaskTemplate.Runtime = swarm.RuntimePlugin }, 501, `unsupported runtime type: "plugin" (shoal runs container services only)`},
	} {
		sp := spec("other", 1)
		tc.change(&sp)
		_, err := b.CreateService(ctx, sp, "")
		if err == nil || status(err) != tc.code || err.Error() != tc.msg {
			t.Errorf("%s: %d %v; want %d %q", tc.name, status(err), err, tc.code, tc.msg)
		}
	}
	list, _, err := store.NewServices(s).List(ctx)
	if err != nil || len(list) != 1 {
		t.Errorf("after refused creates: %d services, %v", len(list), err)
	}
}

func TestCreateStoresAsSwarmModeShows(t *testing.T) {
	b, f, s := newBackend(t)
	ctx := context.Background()
	sp := spec("web", 3)
	sp.TaskTemplate.RestartPolicy = &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny}
	sp.EndpointSpec = &swarm.EndpointSpec{}
	resp, err := b.CreateService(ctx, sp, "secret-auth")
	if err != nil || len(resp.ID) != 25 {
		t.Fatalf("create: %+v %v", resp, err)
	}
	if f.gotAuth != "secret-auth" {
		t.Errorf("image checked with auth %q", f.gotAuth)
	}
	rec, err := store.NewServices(s).Get(ctx, resp.ID)
	if err != nil || rec.SpecVersion != 1 || rec.RegistryAuth != "secret-auth" {
		t.Fatalf("record: %+v %v", rec, err)
	}
	svc, err := b.Service(ctx, "web", false)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(svc.Spec)
	want := `{"Name":"web","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"busybox","Command":["sleep","3600"],"Isolation":"default"},"RestartPolicy":{"Condition":"any","MaxAttempts":0},"ForceUpdate":0,"Runtime":"container"},"Mode":{"Replicated":{"Replicas":3}},"EndpointSpec":{"Mode":"vip"}}`
	if string(got) != want {
		t.Errorf("spec\n got %s\nwant %s", got, want)
	}
	// Swarm mode shows an empty endpoint for a service it gave no VIP.
	if ep, _ := json.Marshal(svc.Endpoint); string(ep) != `{"Spec":{}}` || !svc.CreatedAt.Equal(now) || svc.Version.Index == 0 {
		t.Errorf("service %+v", svc)
	}
	// A replicated service without replicas runs one, as swarm mode's.
	one := spec("one", 0)
	one.Mode.Replicated.Replicas = nil
	if _, err := b.CreateService(ctx, one, ""); err != nil {
		t.Fatal(err)
	}
	if svc, _ := b.Service(ctx, "one", false); *svc.Spec.Mode.Replicated.Replicas != 1 {
		t.Errorf("default replicas %d", *svc.Spec.Mode.Replicated.Replicas)
	}
	// Engines that cannot be asked do not block a create: a warning says so.
	f.unknown = true
	resp, err = b.CreateService(ctx, spec("blind", 1), "")
	if err != nil || len(resp.Warnings) != 1 {
		t.Errorf("create with no engine to ask: %+v %v", resp, err)
	}
}

// The defaults are swarm mode's, as a 20.10 dockerd answered
// insertDefaults=true (notes/swarm-shapes.md).
func TestInsertDefaults(t *testing.T) {
	b, _, _ := newBackend(t)
	ctx := context.Background()
	sp := spec("web", 3)
	sp.Labels = map[string]string{"sl": "1"}
	sp.TaskTemplate.ContainerSpec.Image = "busybox:latest"
	sp.TaskTemplate.ContainerSpec.Labels = map[string]string{"tl": "1"}
	sp.TaskTemplate.RestartPolicy = &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny}
	if _, err := b.CreateService(ctx, sp, ""); err != nil {
		t.Fatal(err)
	}
	svc, err := b.Service(ctx, "web", true)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(svc.Spec)
	want := `{"Name":"web","Labels":{"sl":"1"},"TaskTemplate":{"ContainerSpec":{"Image":"busybox:latest","Labels":{"tl":"1"},"Command":["sleep","3600"],"StopGracePeriod":10000000000,"DNSConfig":{},"Isolation":"default"},"Resources":{},"RestartPolicy":{"Condition":"any","Delay":5000000000,"MaxAttempts":0},"Placement":{},"ForceUpdate":0,"Runtime":"container"},"Mode":{"Replicated":{"Replicas":3}},"UpdateConfig":{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"},"RollbackConfig":{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"}}`
	if string(got) != want {
		t.Errorf("insertDefaults\n got %s\nwant %s", got, want)
	}
	plain, _ := b.Service(ctx, "web", false)
	if plain.Spec.UpdateConfig != nil || plain.Spec.TaskTemplate.RestartPolicy.Delay != nil {
		t.Errorf("defaults stored: %+v", plain.Spec)
	}
}

func TestLookup(t *testing.T) {
	b, _, _ := newBackend(t)
	ctx := context.Background()
	var ids []string
	for _, n := range []string{"a", "b", "c"} {
		r, err := b.CreateService(ctx, spec(n, 1), "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	for i, ref := range []string{ids[0], "b", ids[2][:10]} {
		svc, err := b.Service(ctx, ref, false)
		if err != nil || svc.ID != ids[i] {
			t.Errorf("lookup %q: %s %v", ref, svc.ID, err)
		}
	}
	if _, err := b.Service(ctx, "nope", false); status(err) != 404 || err.Error() != "service nope not found" {
		t.Errorf("unknown: %v", err)
	}
	// Every ID starts with a base-36 digit: "" and single characters are
	// ambiguous among three as soon as two share a first character.
	if _, err := b.Service(ctx, "", false); status(err) != 404 {
		t.Errorf("empty ref: %v", err)
	}
	if _, err := b.Task(ctx, "nope"); status(err) != 404 || err.Error() != "task nope not found" {
		t.Errorf("unknown task: %v", err)
	}
}

func TestUpdateAndRollback(t *testing.T) {
	b, f, s := newBackend(t)
	ctx := context.Background()
	r, err := b.CreateService(ctx, spec("web", 1), "auth1")
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := b.Service(ctx, r.ID, false)
	if _, err := b.UpdateService(ctx, "web", backend.ServiceUpdate{Version: svc.Version, Spec: spec("web", 1), Rollback: "previous"}); status(err) != 400 ||
		err.Error() != "rpc error: code = FailedPrecondition desc = service "+r.ID+" does not have a previous spec" {
		t.Errorf("rollback without previous spec: %v", err)
	}
	up := spec("web", 5)
	up.TaskTemplate.ContainerSpec.Image = "nginx"
	if _, err := b.UpdateService(ctx, "web", backend.ServiceUpdate{Version: svc.Version, Spec: up}); err != nil {
		t.Fatal(err)
	}
	if f.gotAuth != "auth1" {
		t.Errorf("image of the update checked with auth %q, want the service's", f.gotAuth)
	}
	// The version the client read is stale now.
	_, err = b.UpdateService(ctx, "web", backend.ServiceUpdate{Version: svc.Version, Spec: spec("web", 2)})
	if !errors.Is(err, services.ErrOutOfSequence) || status(err) != http.StatusInternalServerError || err.Error() != "rpc error: code = Unknown desc = update out of sequence" {
		t.Errorf("stale version: %d %v", status(err), err)
	}
	if _, err := b.UpdateService(ctx, "web", backend.ServiceUpdate{Spec: spec("web", 2)}); !errors.Is(err, services.ErrOutOfSequence) {
		t.Errorf("version 0: %v", err)
	}
	rec, _ := store.NewServices(s).Get(ctx, r.ID)
	if rec.SpecVersion != 2 || *rec.Spec.Mode.Replicated.Replicas != 5 || rec.PreviousSpec == nil || *rec.PreviousSpec.Mode.Replicated.Replicas != 1 {
		t.Fatalf("after update: %+v", rec)
	}
	for _, tc := range []struct {
		change func(*swarm.ServiceSpec)
		code   int
		msg    string
	}{
		{func(s *swarm.ServiceSpec) { s.Mode = swarm.ServiceMode{Global: &swarm.GlobalService{}} }, 501, "rpc error: code = Unimplemented desc = service mode change is not allowed"},
		{func(s *swarm.ServiceSpec) { s.Name = "web2" }, 501, "rpc error: code = Unimplemented desc = renaming services is not supported"},
		{func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Image = "nosuch" }, 400, "image nosuch is on no node and no node could pull it (node1: pull access denied for nosuch): the service was not changed"},
	} {
		sp := spec("web", 5)
		tc.change(&sp)
		_, err := b.UpdateService(ctx, r.ID, backend.ServiceUpdate{Version: rec.Version, Spec: sp})
		if status(err) != tc.code || err.Error() != tc.msg {
			t.Errorf("update: %d %v; want %d %q", status(err), err, tc.code, tc.msg)
		}
	}
	if _, err := b.UpdateService(ctx, r.ID, backend.ServiceUpdate{Version: rec.Version, Spec: spec("web", 5), Rollback: "previous"}); err != nil {
		t.Fatal(err)
	}
	rec, _ = store.NewServices(s).Get(ctx, r.ID)
	if rec.SpecVersion != 3 || *rec.Spec.Mode.Replicated.Replicas != 1 || *rec.PreviousSpec.Mode.Replicated.Replicas != 5 ||
		rec.UpdateStatus == nil || rec.UpdateStatus.State != swarm.UpdateStateRollbackStarted ||
		rec.UpdateStatus.Message != "manually requested rollback" || !rec.UpdateStatus.StartedAt.Equal(now) {
		t.Errorf("after rollback: %+v %+v", rec, rec.UpdateStatus)
	}
	if _, err := b.UpdateService(ctx, r.ID, backend.ServiceUpdate{Version: rec.Version, Spec: spec("web", 5), Rollback: "sideways"}); status(err) != 400 {
		t.Errorf("bad rollback option: %v", err)
	}
	if err := b.RemoveService(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveService(ctx, "web"); status(err) != 404 {
		t.Errorf("second remove: %v", err)
	}
}

// task is a task record of svc in slot on node.
func task(svc store.Service, slot int, node string, state, desired swarm.TaskState) store.Task {
	t := store.Task{Task: swarm.Task{ID: store.NewID(), ServiceID: svc.ID, Slot: slot, NodeID: node,
		Status: swarm.TaskStatus{State: state}, DesiredState: desired}, SpecVersion: svc.SpecVersion}
	return t
}

func TestListFiltersAndStatus(t *testing.T) {
	b, _, s := newBackend(t)
	ctx := context.Background()
	web := spec("web", 3)
	web.Labels = map[string]string{"team": "web"}
	glob := spec("mon", 0)
	glob.Mode = swarm.ServiceMode{Global: &swarm.GlobalService{}}
	var recs []store.Service
	for _, sp := range []swarm.ServiceSpec{web, glob} {
		r, err := b.CreateService(ctx, sp, "")
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := store.NewServices(s).Get(ctx, r.ID)
		recs = append(recs, rec)
	}
	tasks := []store.Task{
		task(recs[0], 1, "n1id", swarm.TaskStateRunning, swarm.TaskStateRunning),
		task(recs[0], 2, "n2id", swarm.TaskStateRunning, swarm.TaskStateRunning),
		task(recs[0], 3, "n2id", swarm.TaskStatePending, swarm.TaskStateRunning),
		task(recs[0], 1, "n1id", swarm.TaskStateShutdown, swarm.TaskStateShutdown),
		task(recs[1], 0, "n1id", swarm.TaskStateRunning, swarm.TaskStateRunning),
		task(recs[1], 0, "n2id", swarm.TaskStateStarting, swarm.TaskStateRunning),
	}
	tasks[2].SpecVersion = 0 // an old spec's task
	if err := store.NewTasks(s).Apply(ctx, tasks, nil); err != nil {
		t.Fatal(err)
	}
	list, err := b.Services(ctx, backend.Filters{}, true)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %d %v", len(list), err)
	}
	for _, svc := range list {
		want := swarm.ServiceStatus{RunningTasks: 2, DesiredTasks: 3}
		if svc.Spec.Name == "mon" {
			want = swarm.ServiceStatus{RunningTasks: 1, DesiredTasks: 2}
		}
		if svc.ServiceStatus == nil || *svc.ServiceStatus != want {
			t.Errorf("%s: status %+v, want %+v", svc.Spec.Name, svc.ServiceStatus, want)
		}
	}
	for _, tc := range []struct {
		f    backend.Filters
		want string
	}{
		{backend.Filters{"mode": {"global"}}, "mon"},
		{backend.Filters{"label": {"team=web"}}, "web"},
		{backend.Filters{"label": {"team"}}, "web"},
		{backend.Filters{"name": {"we"}}, "web"},
		{backend.Filters{"id": {recs[1].ID[:8]}}, "mon"},
	} {
		list, err := b.Services(ctx, tc.f, false)
		if err != nil || len(list) != 1 || list[0].Spec.Name != tc.want || list[0].ServiceStatus != nil {
			t.Errorf("filters %v: %+v %v", tc.f, list, err)
		}
	}
	if _, err := b.Services(ctx, backend.Filters{"color": {"red"}}, false); status(err) != 400 || err.Error() != "Invalid filter 'color'" {
		t.Errorf("bad filter: %v", err)
	}
	for _, tc := range []struct {
		f    backend.Filters
		want int
	}{
		{backend.Filters{"service": {"web"}}, 4},
		{backend.Filters{"service": {"web"}, "_up-to-date": {"true"}}, 3},
		{backend.Filters{"service": {recs[0].ID}, "desired-state": {"running"}}, 3},
		{backend.Filters{"node": {"node2"}}, 3},
		{backend.Filters{"node": {"n1id"}, "desired-state": {"shutdown", "Running"}}, 3},
		{backend.Filters{"label": {"team=web"}}, 4},
		{backend.Filters{"name": {"web.1."}}, 2},
		{backend.Filters{"name": {"mon.n2id"}}, 1},
		{backend.Filters{"id": {tasks[0].ID}}, 1},
		{backend.Filters{"runtime": {"plugin"}}, 0},
	} {
		list, err := b.Tasks(ctx, tc.f)
		if err != nil || len(list) != tc.want {
			t.Errorf("task filters %v: %d tasks, %v; want %d", tc.f, len(list), err, tc.want)
		}
	}
	for _, tc := range []struct {
		f   backend.Filters
		msg string
	}{
		{backend.Filters{"service": {"nope"}}, "service nope not found"},
		{backend.Filters{"node": {"node9"}}, "node node9 not found"},
		{backend.Filters{"desired-state": {"dancing"}}, "Invalid desired-state filter: 'dancing'"},
		{backend.Filters{"color": {"x"}}, "Invalid filter 'color'"},
	} {
		if _, err := b.Tasks(ctx, tc.f); err == nil || err.Error() != tc.msg {
			t.Errorf("task filters %v: %v, want %q", tc.f, err, tc.msg)
		}
	}
	got, err := b.Task(ctx, tasks[4].ID[:12])
	if err != nil || got.ID != tasks[4].ID {
		t.Errorf("task by prefix: %s %v", got.ID, err)
	}
	got, err = b.Task(ctx, "web.2."+tasks[1].ID)
	if err != nil || got.ID != tasks[1].ID {
		t.Errorf("task by name: %s %v", got.ID, err)
	}
}

// frame is one multiplexed frame.
func frame(stream byte, s string) string {
	var hdr [8]byte
	hdr[0] = stream
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(s)))
	return string(hdr[:]) + s
}

// frames splits a multiplexed stream.
func frames(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	for len(b) > 0 {
		if len(b) < 8 {
			t.Fatalf("short frame header %q", b)
		}
		n := binary.BigEndian.Uint32(b[4:8])
		out = append(out, fmt.Sprintf("%d|%s", b[0], b[8:8+n]))
		b = b[8+n:]
	}
	return out
}

func TestLogsCarrySwarmContext(t *testing.T) {
	b, f, s := newBackend(t)
	ctx := context.Background()
	r, err := b.CreateService(ctx, spec("web", 2), "")
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := store.NewServices(s).Get(ctx, r.ID)
	t1 := task(rec, 1, "n1id", swarm.TaskStateRunning, swarm.TaskStateRunning)
	t1.Status.ContainerStatus = &swarm.ContainerStatus{ContainerID: "c1"}
	t2 := task(rec, 2, "n2id", swarm.TaskStateRunning, swarm.TaskStateRunning)
	t2.Status.ContainerStatus = &swarm.ContainerStatus{ContainerID: "c2"}
	t3 := task(rec, 3, "n2id", swarm.TaskStatePending, swarm.TaskStateRunning) // no container yet
	if err := store.NewTasks(s).Apply(ctx, []store.Task{t1, t2, t3}, nil); err != nil {
		t.Fatal(err)
	}
	f.logs = map[string]string{"c1": frame(1, "2026-11-30T05:00:01.000000000Z  hello\n") +
		frame(2, "2026-11-30T05:00:02.000000000Z env=prod,a%3Db=x oops\n")}
	f.failLogs = map[string]error{"c2": errdefs.ErrUnavailable.WithMessage("node node2 is down")}

	tty, stream, err := b.Logs(ctx, "web", false, backend.ServiceLogsOptions{ShowStdout: true, ShowStderr: true, Details: true, Timestamps: true, Tail: "10"})
	if err != nil || tty {
		t.Fatalf("logs: %v tty %v", err, tty)
	}
	var out bytes.Buffer
	if err := stream(&out); err != nil {
		t.Fatal(err)
	}
	ctxOf := func(tk store.Task, extra string) string {
		return extra + "com.docker.swarm.node.id=" + tk.NodeID + ",com.docker.swarm.service.id=" + r.ID + ",com.docker.swarm.task.id=" + tk.ID
	}
	got := frames(t, out.Bytes())
	// Details are sorted by key, as dockerd writes them.
	want := map[string]bool{
		"1|2026-11-30T05:00:01.000000000Z " + ctxOf(t1, "") + " hello\n":                 true,
		"2|2026-11-30T05:00:02.000000000Z a%3Db=x," + ctxOf(t1, "") + ",env=prod oops\n": true,
	}
	warned := false
	for _, g := range got {
		if want[g] {
			delete(want, g)
			continue
		}
		if strings.HasPrefix(g, "2|2026-11-30T05:00:00.000000000Z "+ctxOf(t2, "")+" shoal: the logs of task "+t2.ID+" on node n2id are unavailable") {
			warned = true
			continue
		}
		t.Errorf("unexpected frame %q", g)
	}
	if len(want) > 0 || !warned {
		t.Errorf("missing frames %v; warning for the down node: %v (got %q)", want, warned, got)
	}
	if q := f.gotQuery; q.Get("timestamps") != "1" || q.Get("details") != "1" || q.Get("tail") != "10" || q.Get("stdout") != "1" {
		t.Errorf("engine query %v", q)
	}

	// Without details and timestamps, only the lines; one task's logs only.
	_, stream, err = b.Logs(ctx, t1.ID, true, backend.ServiceLogsOptions{ShowStdout: true})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := stream(&out); err != nil {
		t.Fatal(err)
	}
	if got := frames(t, out.Bytes()); len(got) != 2 || got[0] != "1|hello\n" || got[1] != "2|oops\n" {
		t.Errorf("plain task logs %q", got)
	}
	if _, _, err := b.Logs(ctx, "web", false, backend.ServiceLogsOptions{ShowStdout: true, Tail: "-1"}); status(err) != 400 {
		t.Errorf("negative tail: %v", err)
	}
	if _, _, err := b.Logs(ctx, "nope", false, backend.ServiceLogsOptions{ShowStdout: true}); status(err) != 404 {
		t.Errorf("unknown service: %v", err)
	}
}

// Following a service's logs picks up the tasks that start later.
func TestFollowLogsPicksUpNewTasks(t *testing.T) {
	b, f, s := newBackend(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := b.CreateService(ctx, spec("web", 1), "")
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := store.NewServices(s).Get(ctx, r.ID)
	f.logs = map[string]string{"late": frame(1, "2026-11-30T05:00:01.000000000Z  late line\n")}
	_, stream, err := b.Logs(ctx, "web", false, backend.ServiceLogsOptions{ShowStdout: true, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- stream(pw); pw.Close() }()
	time.Sleep(200 * time.Millisecond) // the stream watches the tasks by now
	late := task(rec, 1, "n1id", swarm.TaskStateRunning, swarm.TaskStateRunning)
	late.Status.ContainerStatus = &swarm.ContainerStatus{ContainerID: "late"}
	if err := store.NewTasks(s).Put(ctx, late); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8+len("late line\n"))
	if _, err := io.ReadFull(pr, buf); err != nil {
		t.Fatal(err)
	}
	if got := frames(t, buf); len(got) != 1 || got[0] != "1|late line\n" {
		t.Errorf("followed %q", got)
	}
	cancel()
	go io.Copy(io.Discard, pr)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not end with its context")
	}
}

// Twenty clients updating one service from the version they all read:
// one wins, the others get dockerd's "update out of sequence", and the
// record counts one spec change.
func TestParallelUpdatesOneWins(t *testing.T) {
	b, _, s := newBackend(t)
	ctx := context.Background()
	r, err := b.CreateService(ctx, spec("web", 1), "")
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := b.Service(ctx, r.ID, false)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.UpdateService(ctx, "web", backend.ServiceUpdate{Version: svc.Version, Spec: spec("web", uint64(i+2))})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, services.ErrOutOfSequence):
			t.Errorf("update: %v", err)
		}
	}
	rec, _ := store.NewServices(s).Get(ctx, r.ID)
	if won != 1 || rec.SpecVersion != 2 {
		t.Errorf("%d updates won, spec version %d; want 1, 2", won, rec.SpecVersion)
	}
}

// Following, a task whose node goes down is waited for: the client is
// told once, told again when the node is back, and the task's logs go on
// from after the last line it got.
func TestFollowLogsOutliveANodeOutage(t *testing.T) {
	st := storetest.Open(t)
	f := &fakeEngines{images: map[string]bool{"busybox": true}}
	b := services.New(services.Config{Store: st, Engines: f, Now: func() time.Time { return now }, LogRetry: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := b.CreateService(ctx, spec("web", 1), "")
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := store.NewServices(st).Get(ctx, r.ID)
	tk := task(rec, 1, "n1id", swarm.TaskStateRunning, swarm.TaskStateRunning)
	tk.Status.ContainerStatus = &swarm.ContainerStatus{ContainerID: "c1"}
	if err := store.NewTasks(st).Put(ctx, tk); err != nil {
		t.Fatal(err)
	}
	down := errdefs.ErrUnavailable.WithMessage("node node1 went down")
	f.opens = map[string][]fakeOpen{"c1": {
		{body: frame(1, "2026-11-30T05:00:01.500000000Z  before\n"), readErr: down},
		{err: down},
		{err: down},
		{body: frame(1, "2026-11-30T05:00:09.000000000Z  after\n"), readErr: errors.New("client gone")},
	}}
	_, stream, err := b.Logs(ctx, "web", false, backend.ServiceLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true, Tail: "5"})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() { stream(pw); pw.Close() }()
	var got []string
	hdr := make([]byte, 8)
	for len(got) < 4 {
		if _, err := io.ReadFull(pr, hdr); err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		msg := make([]byte, binary.BigEndian.Uint32(hdr[4:]))
		io.ReadFull(pr, msg)
		got = append(got, fmt.Sprintf("%d|%s", hdr[0], msg))
	}
	cancel()
	go io.Copy(io.Discard, pr)
	want := []string{"1|before\n",
		"2|shoal: the logs of task " + tk.ID + " on node n1id are unavailable (node node1 went down); the other tasks' logs go on\n",
		"2|shoal: node n1id is back: the logs of task " + tk.ID + " go on\n",
		"1|after\n"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d: %q, want %q", i, got[i], want[i])
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if q := f.queries[1]; q.Get("since") != "1796014801.500000001" || q.Has("tail") {
		t.Errorf("query after the outage: %v", q)
	}
}

// Over HTTP, through the API server: dockerd's statuses and bodies.
func TestAnswersOverHTTP(t *testing.T) {
	b, _, _ := newBackend(t)
	api := dockerapi.NewServer(dockerapi.Backends{}, "test", nil)
	api.Services = b
	do := func(method, path, body string) (int, string) {
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
	body := `{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}},"Mode":{"Replicated":{"Replicas":1}}}`
	code, out := do("POST", "/v1.41/services/create", body)
	var created struct{ ID string }
	if code != 201 || json.Unmarshal([]byte(out), &created) != nil || !strings.HasPrefix(out, `{"ID":"`) || strings.Contains(out, "Warnings") {
		t.Fatalf("create: %d %s", code, out)
	}
	code, out = do("GET", "/v1.41/services/web", "")
	var svc swarm.Service
	if code != 200 || json.Unmarshal([]byte(out), &svc) != nil || svc.ID != created.ID {
		t.Fatalf("inspect: %d %s", code, out)
	}
	stale := fmt.Sprint(svc.Version.Index - 1)
	for _, tc := range []struct {
		method, path, body string
		code               int
		out                string
	}{
		{"POST", "/v1.41/services/create", body, 409, `{"message":"rpc error: code = AlreadyExists desc = name conflicts with an existing object: service web already exists"}`},
		{"POST", "/v1.41/services/web/update?version=" + stale, body, 500, `{"message":"rpc error: code = Unknown desc = update out of sequence"}`},
		{"POST", "/v1.41/services/web/update?version=" + fmt.Sprint(svc.Version.Index), strings.Replace(body, `"Replicated":{"Replicas":1}`, `"Global":{}`, 1), 501, `{"message":"rpc error: code = Unimplemented desc = service mode change is not allowed"}`},
		{"POST", "/v1.41/services/web/update?version=" + fmt.Sprint(svc.Version.Index) + "&rollback=previous", body, 400, `{"message":"rpc error: code = FailedPrecondition desc = service ` + created.ID + ` does not have a previous spec"}`},
		{"POST", "/v1.41/services/web/update?version=" + fmt.Sprint(svc.Version.Index), body, 200, `{"Warnings":null}`},
		{"GET", "/v1.41/services/nope", "", 404, `{"message":"service nope not found"}`},
		{"GET", "/v1.41/tasks/nope", "", 404, `{"message":"task nope not found"}`},
		{"GET", "/v1.41/tasks", "", 200, `[]`},
		{"DELETE", "/v1.41/services/web", "", 200, ``},
		{"GET", "/v1.41/services", "", 200, `[]`},
	} {
		code, out := do(tc.method, tc.path, tc.body)
		if code != tc.code || out != tc.out {
			t.Errorf("%s %s: %d %s; want %d %s", tc.method, tc.path, code, out, tc.code, tc.out)
		}
	}
}

// TestTasksRenderedAsSwarmMode: a task's spec is shown without the
// Runtime its stored copy of the service's TaskTemplate has (dockerd sets
// Runtime on a service's TaskTemplate only), by the list and by inspect.
func TestTasksRenderedAsSwarmMode(t *testing.T) {
	b, _, s := newBackend(t)
	ctx := context.Background()
	r, err := b.CreateService(ctx, spec("web", 1), "")
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := store.NewServices(s).Get(ctx, r.ID)
	tk := task(rec, 1, "n1id", swarm.TaskStateRunning, swarm.TaskStateRunning)
	tk.Spec = rec.Spec.TaskTemplate
	if tk.Spec.Runtime != swarm.RuntimeContainer {
		t.Fatalf("stored service's TaskTemplate.Runtime %q, want %q", tk.Spec.Runtime, swarm.RuntimeContainer)
	}
	if err := store.NewTasks(s).Apply(ctx, []store.Task{tk}, nil); err != nil {
		t.Fatal(err)
	}
	list, err := b.Tasks(ctx, nil)
	if err != nil || len(list) != 1 || list[0].Spec.Runtime != "" || list[0].Spec.ContainerSpec == nil {
		t.Fatalf("tasks: %+v %v", list, err)
	}
	got, err := b.Task(ctx, tk.ID)
	if err != nil || got.Spec.Runtime != "" || got.Spec.ContainerSpec.Image != "busybox" {
		t.Fatalf("task: %+v %v", got, err)
	}
	stored, err := store.NewTasks(s).Get(ctx, tk.ID)
	if err != nil || stored.Spec.Runtime != swarm.RuntimeContainer {
		t.Errorf("stored task changed: runtime %q %v", stored.Spec.Runtime, err)
	}
	if _, err := b.Task(ctx, "nope"); status(err) != 404 {
		t.Errorf("unknown task: %v", err)
	}
}
