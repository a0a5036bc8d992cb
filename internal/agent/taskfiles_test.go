package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
)

// A manager's request under LocalPrefix is answered by the node's own
// endpoint (task files written with their owner and mode, removed on
// DELETE), while the same client's other requests still reach the engine.
func TestTaskFilesThroughTunnel(t *testing.T) {
	root, _ := ca.NewRootCA("c1", time.Now())
	m := newManager(t, root, "m1")
	dir := filepath.Join(t.TempDir(), "task-files")
	mounted := 0
	files := NewTaskFiles(TaskFilesConfig{Dir: dir, Mount: func(d string) error { mounted++; return os.MkdirAll(d, 0o700) }})
	n, err := NewNode(NodeConfig{
		Managers: []string{m.addr}, TLS: root.ClientTLSConfig(keypair(t, root, "node1", ca.RoleWorker)), EngineSocket: fakeEngine(t),
		Timing: fastTiming, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Local: files,
	})
	if err != nil {
		t.Fatal(err)
	}
	runNode(t, n, m, "node1")
	ep := m.tunnels.Endpoint("node1")
	client := &http.Client{Transport: ep.RoundTripper(), Timeout: 5 * time.Second}
	call := func(req *http.Request) (*http.Response, error) {
		conn, err := ep.Dial(context.Background())
		if err != nil {
			return nil, err
		}
		return CallLocal(conn, req)
	}

	uid, gid := os.Getuid(), os.Getgid()
	body, _ := json.Marshal(TaskFilesRequest{Files: []TaskFile{{Name: "s0", Data: []byte("hunter2"), UID: uid, GID: gid, Mode: 0o440}}})
	req, _ := http.NewRequest(http.MethodPut, "http://engine"+TaskFilesPath("task1"), bytes.NewReader(body))
	resp, err := call(req)
	if err != nil {
		t.Fatal(err)
	}
	var ans TaskFilesAnswer
	err = json.NewDecoder(resp.Body).Decode(&ans)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || ans.Dir != filepath.Join(dir, "task1") || mounted != 1 {
		t.Fatalf("put: %s %+v %v (mounted %d)", resp.Status, ans, err, mounted)
	}
	path := filepath.Join(ans.Dir, "s0")
	b, err := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if err != nil || string(b) != "hunter2" || fi.Mode().Perm() != 0o440 || fi.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
		t.Fatalf("file: %q %v %v", b, fi.Mode(), err)
	}
	// Engine calls still reach the engine.
	resp, err = client.Get("http://engine/_ping")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "OK" {
		t.Fatalf("ping after a local call: %q", got)
	}
	req, _ = http.NewRequest(http.MethodDelete, "http://engine"+TaskFilesPath("task1"), nil)
	if resp, err = call(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("delete: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := os.Stat(ans.Dir); !os.IsNotExist(err) {
		t.Fatalf("task dir after delete: %v", err)
	}
	req, _ = http.NewRequest(http.MethodPut, "http://engine"+TaskFilesPath("../etc"), bytes.NewReader(body))
	if resp, err = call(req); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("bad task ID: %v %v", resp, err)
	}
	resp.Body.Close()
}

// Without a tmpfs the agent writes nothing and says so.
func TestTaskFilesNeedTmpfs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tf")
	f := NewTaskFiles(TaskFilesConfig{Dir: dir, Mount: func(string) error { return syscall.EPERM }})
	if _, err := f.write("t1", []TaskFile{{Name: "s0", Data: []byte("x"), Mode: 0o400}}); err == nil {
		t.Fatal("wrote task files without a tmpfs")
	}
	if _, err := os.Stat(filepath.Join(dir, "t1")); !os.IsNotExist(err) {
		t.Fatalf("task dir: %v", err)
	}
}

// The sweep removes the files of tasks without a container once they
// are older than the grace, and keeps those of live tasks.
func TestTaskFilesSweep(t *testing.T) {
	dir := t.TempDir()
	f := NewTaskFiles(TaskFilesConfig{Dir: dir, Mount: func(string) error { return nil }})
	for _, id := range []string{"live", "gone", "fresh"} {
		if _, err := f.write(id, []TaskFile{{Name: "s0", Data: []byte("x"), UID: os.Getuid(), GID: os.Getgid(), Mode: 0o400}}); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	for _, id := range []string{"live", "gone"} {
		os.Chtimes(filepath.Join(dir, id), old, old)
	}
	f.hc = &http.Client{Transport: roundTrip(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: io.NopCloser(bytes.NewReader([]byte(`[{"Labels":{"com.docker.swarm.task.id":"live"}}]`)))}, nil
	})}
	if err := f.sweep(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"live": true, "gone": false, "fresh": true} {
		if _, err := os.Stat(filepath.Join(dir, id)); (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", id, err == nil, want)
		}
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
