package manager

import (
	"archive/tar"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/agent"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/store"
)

type fakeData map[string][]byte

func (f fakeData) SecretData(_ context.Context, id string) (swarm.Secret, error) {
	d, ok := f[id]
	if !ok {
		return swarm.Secret{}, errdefs.ErrNotFound.WithMessage("no " + id)
	}
	return swarm.Secret{ID: id, Spec: swarm.SecretSpec{Data: d}}, nil
}

func (f fakeData) ConfigData(_ context.Context, id string) (swarm.Config, error) {
	d, ok := f[id]
	if !ok {
		return swarm.Config{}, errdefs.ErrNotFound.WithMessage("no " + id)
	}
	return swarm.Config{ID: id, Spec: swarm.ConfigSpec{Data: d}}, nil
}

// A secret's bare target is under /run/secrets, a config's under /;
// absolute targets stay; uid, gid and mode are the reference's.
func TestTaskFilesTargets(t *testing.T) {
	r := taskRuntime{data: fakeData{"s1": []byte("pw"), "c1": []byte("conf")}}
	cs := &swarm.ContainerSpec{
		Secrets: []*swarm.SecretReference{
			{SecretID: "s1", SecretName: "a", File: &swarm.SecretReferenceFileTarget{Name: "a", UID: "0", GID: "0", Mode: 0o444}},
			{SecretID: "s1", SecretName: "a", File: &swarm.SecretReferenceFileTarget{Name: "/etc/a", UID: "1000", GID: "50", Mode: 0o400}},
		},
		Configs: []*swarm.ConfigReference{
			{ConfigID: "c1", ConfigName: "c", File: &swarm.ConfigReferenceFileTarget{Name: "c.conf", Mode: 0o440}},
			{ConfigID: "c1", ConfigName: "c", File: &swarm.ConfigReferenceFileTarget{Name: "/etc/c.conf", UID: "7", Mode: 0o440}},
			{ConfigID: "c1", ConfigName: "c", Runtime: &swarm.ConfigReferenceRuntimeTarget{}},
		},
	}
	files, err := r.taskFiles(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name, target, data string
		uid, gid           int
		mode               uint32
	}{
		{"s0", "/run/secrets/a", "pw", 0, 0, 0o444},
		{"s1", "/etc/a", "pw", 1000, 50, 0o400},
		{"c0", "/c.conf", "conf", 0, 0, 0o440},
		{"c1", "/etc/c.conf", "conf", 7, 0, 0o440},
	}
	if len(files) != len(want) {
		t.Fatalf("%d files, want %d: %+v", len(files), len(want), files)
	}
	for i, w := range want {
		f := files[i]
		if f.Name != w.name || f.target != w.target || string(f.Data) != w.data || f.UID != w.uid || f.GID != w.gid || uint32(f.Mode) != w.mode {
			t.Errorf("file %d = %+v, want %+v", i, f, w)
		}
	}
	cs.Secrets[0].SecretID = "gone"
	if _, err := r.taskFiles(context.Background(), cs); !errdefs.IsNotFound(err) {
		t.Errorf("missing secret: %v", err)
	}
	cs.Secrets = cs.Secrets[1:]
	cs.Secrets[0].File.UID = "root"
	if _, err := r.taskFiles(context.Background(), cs); !errdefs.IsInvalidArgument(err) {
		t.Errorf("uid root: %v", err)
	}
}

// Under manage a task's configs are copied into its created container:
// one archive at /, each file at its target with its owner and mode.
func TestCopyFilesUploadsArchive(t *testing.T) {
	type entry struct {
		name, data string
		uid, gid   int
		mode       int64
	}
	got := make(chan []entry, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || !strings.HasSuffix(r.URL.Path, "/containers/cid/archive") || r.URL.Query().Get("path") != "/" {
			http.NotFound(w, r)
			return
		}
		var es []entry
		tr := tar.NewReader(r.Body)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(tr)
			es = append(es, entry{h.Name, string(b), h.Uid, h.Gid, h.Mode})
		}
		got <- es
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := engine.NewPool(engine.Options{}, nil)
	go p.Run(ctx)
	for len(p.Engines()) == 0 {
		p.Add("tcp://" + srv.Listener.Addr().String())
		time.Sleep(10 * time.Millisecond)
	}
	files := []taskFile{
		{TaskFile: agent.TaskFile{Name: "c0", Data: []byte("a=1"), UID: 7, GID: 8, Mode: 0o440}, target: "/etc/app/c.conf"},
		{TaskFile: agent.TaskFile{Name: "c1", Data: []byte("b"), Mode: 0o444}, target: "/b"},
	}
	if err := copyFiles(ctx, p.Engines()[0], "cid", files); err != nil {
		t.Fatal(err)
	}
	want := []entry{{"etc/app/c.conf", "a=1", 7, 8, 0o440}, {"b", "b", 0, 0, 0o444}}
	if es := <-got; !reflect.DeepEqual(es, want) {
		t.Errorf("archive = %+v, want %+v", es, want)
	}
}

// A templated config is expanded for its task, as swarm mode's nodes do:
// the task's names, its environment and another file's data by target.
func TestExpandFiles(t *testing.T) {
	svc := swarm.Service{ID: "svc1", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "web"}}}
	task := store.Task{Task: swarm.Task{ID: "t1", NodeID: "n1", Slot: 2}}
	files := []taskFile{
		{TaskFile: agent.TaskFile{Data: []byte("pw")}, ref: "db_pw", secret: true},
		{TaskFile: agent.TaskFile{Data: []byte(`{{.Service.Name}}.{{.Task.Slot}} on {{.Node.Hostname}} {{env "MODE"}} {{secret "db_pw"}}`)}, ref: "/app.conf", templated: true},
		{TaskFile: agent.TaskFile{Data: []byte(`{{.Task.ID}}`)}, ref: "plain"},
	}
	if err := expandFiles(files, newTaskTemplate(svc, task, taskNodeInfo{Hostname: "node1"}), []string{"MODE=a", "MODE=prod"}); err != nil {
		t.Fatal(err)
	}
	if got := string(files[1].Data); got != "web.2 on node1 prod pw" {
		t.Errorf("expanded: %q", got)
	}
	if got := string(files[2].Data); got != "{{.Task.ID}}" {
		t.Errorf("a file without templating changed: %q", got)
	}
	bad := []taskFile{{TaskFile: agent.TaskFile{Data: []byte(`{{secret "nope"}}`)}, ref: "x", templated: true}}
	if err := expandFiles(bad, newTaskTemplate(svc, task, taskNodeInfo{}), nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("unknown secret in a template: %v", err)
	}
}
