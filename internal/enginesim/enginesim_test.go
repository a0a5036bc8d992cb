package enginesim_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

func mustStart(tb testing.TB, o enginesim.Options) (*enginesim.Engine, *client.Client) {
	tb.Helper()
	e, err := enginesim.Start(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	c, err := client.New(client.WithHost("tcp://" + e.Addr()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return e, c
}

func TestSystemShapes(t *testing.T) {
	_, c := mustStart(t, enginesim.Options{Name: "node-a", NCPU: 8, MemTotal: 16 << 30, Labels: []string{"zone=eu"}, Containers: 3, Stopped: 2, Images: 4})
	ctx := context.Background()

	p, err := c.Ping(ctx, client.PingOptions{})
	if err != nil || p.APIVersion != "1.52" || p.OSType != "linux" {
		t.Fatalf("ping: %+v %v", p, err)
	}
	v, err := c.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil || v.APIVersion != "1.52" || v.Version == "" {
		t.Fatalf("version: %+v %v", v, err)
	}
	info, err := c.Info(ctx, client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	i := info.Info
	if i.Name != "node-a" || i.NCPU != 8 || i.MemTotal != 16<<30 || len(i.Labels) != 1 || i.Labels[0] != "zone=eu" ||
		i.Containers != 5 || i.ContainersRunning != 3 || i.ContainersStopped != 2 || i.Images != 4 || i.ID == "" {
		t.Fatalf("info: %+v", i)
	}
	imgs, err := c.ImageList(ctx, client.ImageListOptions{})
	if err != nil || len(imgs.Items) != 4 || !strings.HasPrefix(imgs.Items[0].ID, "sha256:") {
		t.Fatalf("images: %+v %v", imgs, err)
	}
	nets, err := c.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil || len(nets.Items) != 3 || nets.Items[0].Name != "bridge" {
		t.Fatalf("networks: %+v %v", nets, err)
	}
	vols, err := c.VolumeList(ctx, client.VolumeListOptions{})
	if err != nil || len(vols.Items) != 0 {
		t.Fatalf("volumes: %+v %v", vols, err)
	}
}

func TestContainerLifecycle(t *testing.T) {
	e, c := mustStart(t, enginesim.Options{Containers: 2, Stopped: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ev := c.Events(ctx, client.EventsListOptions{})
	waitFor(t, func() bool { return e.Listeners() == 1 })

	cr, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       "web",
		Config:     &container.Config{Image: "busybox", Cmd: []string{"sleep", "1d"}, Env: []string{"A=1"}, Labels: map[string]string{"app": "x"}},
		HostConfig: &container.HostConfig{Resources: container.Resources{NanoCPUs: 5e8, Memory: 64 << 20, MemoryReservation: 32 << 20, CPUShares: 512}},
	})
	if err != nil || len(cr.ID) != 64 {
		t.Fatalf("create: %+v %v", cr, err)
	}
	if _, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: "web", Config: &container.Config{Image: "busybox"}}); !cerrdefs.IsConflict(err) {
		t.Fatalf("duplicate name: want conflict, got %v", err)
	}
	if _, err := c.ContainerStart(ctx, "web", client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}

	ins, err := c.ContainerInspect(ctx, cr.ID[:10], client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ci := ins.Container
	if ci.Name != "/web" || !ci.State.Running || ci.Config.Env[0] != "A=1" || ci.HostConfig.NanoCPUs != 5e8 ||
		ci.HostConfig.Memory != 64<<20 || ci.HostConfig.MemoryReservation != 32<<20 || ci.HostConfig.CPUShares != 512 {
		t.Fatalf("inspect: %+v", ci)
	}
	// shoal decodes these names from the raw JSON.
	for _, k := range []string{`"NanoCpus":500000000`, `"CpuShares":512`, `"MemoryReservation":33554432`, `"Env":["A=1"]`} {
		if !strings.Contains(string(ins.Raw), k) {
			t.Errorf("inspect JSON lacks %s", k)
		}
	}

	all, err := c.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil || len(all.Items) != 4 || all.Items[0].ID != cr.ID || all.Items[0].Names[0] != "/web" || all.Items[0].State != container.StateRunning {
		t.Fatalf("list all: %+v %v", all, err)
	}
	running, err := c.ContainerList(ctx, client.ContainerListOptions{})
	if err != nil || len(running.Items) != 3 {
		t.Fatalf("list running: %d %v", len(running.Items), err)
	}
	byID, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("id", cr.ID)})
	if err != nil || len(byID.Items) != 1 || byID.Items[0].Labels["app"] != "x" {
		t.Fatalf("list by id: %+v %v", byID, err)
	}
	// The legacy filter form, as shoal's engine cache sends it.
	legacy := get(t, "http://"+e.Addr()+`/v1.45/containers/json?all=1&filters={"id":["`+cr.ID+`"]}`, http.StatusOK)
	if !strings.Contains(legacy, cr.ID) || strings.Count(legacy, `"Id"`) != 1 {
		t.Fatalf("legacy filter: %s", legacy)
	}

	if _, err := c.ContainerStop(ctx, cr.ID, client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ContainerRemove(ctx, cr.ID, client.ContainerRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ContainerInspect(ctx, cr.ID, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Fatalf("inspect removed: want not found, got %v", err)
	}

	var got []string
	for len(got) < 5 {
		select {
		case m := <-ev.Messages:
			if m.Actor.ID != cr.ID || m.Actor.Attributes["name"] != "web" || m.Actor.Attributes["app"] != "x" || m.TimeNano == 0 {
				t.Fatalf("event: %+v", m)
			}
			got = append(got, string(m.Action))
		case err := <-ev.Err:
			t.Fatalf("events: %v", err)
		}
	}
	if strings.Join(got, ",") != "create,start,die,stop,destroy" {
		t.Fatalf("events: %v", got)
	}
}

func TestUnknownEndpointAndVersions(t *testing.T) {
	e, _ := mustStart(t, enginesim.Options{})
	base := "http://" + e.Addr()
	if b := get(t, base+"/v1.45/swarm", http.StatusNotFound); strings.TrimSpace(b) != `{"message":"page not found"}` {
		t.Fatalf("404 body: %q", b)
	}
	get(t, base+"/v1.99/info", http.StatusBadRequest)
	get(t, base+"/v1.40/info", http.StatusOK)
	get(t, base+"/containers/nope/json", http.StatusNotFound)
	if b := get(t, base+"/_ping", http.StatusOK); b != "OK" {
		t.Fatalf("ping body %q", b)
	}
}

func TestCloseEndsEventStreams(t *testing.T) {
	e, c := mustStart(t, enginesim.Options{})
	ev := c.Events(context.Background(), client.EventsListOptions{})
	waitFor(t, func() bool { return e.Listeners() == 1 })
	e.Close()
	select {
	case <-ev.Err:
	case <-time.After(5 * time.Second):
		t.Fatal("event stream still open after Close")
	}
}

func TestFleet(t *testing.T) {
	f, err := enginesim.StartFleet(20, func(i int) enginesim.Options { return enginesim.Options{Containers: 10, Images: 3} })
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if all, running := f.Count(); all != 200 || running != 200 {
		t.Fatalf("count %d %d", all, running)
	}
	if f.Engines[7].Name() != "sim-0007" || len(strings.Split(f.NodesURI(), ",")) != 20 {
		t.Fatalf("names/addrs: %s %s", f.Engines[7].Name(), f.NodesURI())
	}
}

func get(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: status %d, want %d: %s", url, resp.StatusCode, want, b)
	}
	return string(b)
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatal("condition not met in 5s")
}
