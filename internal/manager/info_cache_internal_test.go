package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
)

var systemTime = regexp.MustCompile(`"SystemTime":"[^"]*"`)

// TestInfoFollowsChanges: info kept between calls (info_cache.go) shows a
// change of one engine's containers, images or health, and of the pool's
// engines, in the very next call, and its answer (as Info returns it and
// as InfoTo writes it) is byte for byte the one summed and joined from
// scratch (refInfo) but for SystemTime.
func TestInfoFollowsChanges(t *testing.T) {
	start := func(o enginesim.Options) *enginesim.Engine {
		s, err := enginesim.Start(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a := start(enginesim.Options{Name: "a", NCPU: 2, MemTotal: 4 << 30, Containers: 3, Stopped: 1, Images: 2, Labels: []string{"zone=x"}})
	b := start(enginesim.Options{Name: "b", NCPU: 8, MemTotal: 2 << 30, Containers: 2, Images: 3})
	c := start(enginesim.Options{Name: "c", NCPU: 4, MemTotal: 8 << 30, Containers: 1, Stopped: 2, Images: 5})
	pool := engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond, Timeout: 2 * time.Second}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pool.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	pool.Update([]string{a.Addr(), b.Addr(), c.Addr()})
	byName := func(name string) *engine.Engine {
		for _, e := range pool.Engines() {
			if e.Name() == name {
				return e
			}
		}
		t.Fatalf("no engine %s", name)
		return nil
	}
	until(t, "three engines loaded", func() bool {
		n, imgs := 0, 0
		for _, e := range pool.Healthy() {
			n += len(e.Containers())
			imgs += len(e.Images())
		}
		return len(pool.Healthy()) == 3 && n == 9 && imgs == 10
	})
	m := New(Config{Pool: pool, Strategy: "spread", Labels: map[string]string{"site": "x"}})

	type view struct {
		Containers, ContainersRunning, ContainersStopped, Images, NCPU int
		MemTotal                                                       int64
		Warnings                                                       []string
		DriverStatus                                                   [][2]string
	}
	// info is the next answer, checked against refInfo's; a change in
	// the background between the two is retried.
	info := func(step string) view {
		t.Helper()
		var got, want []byte
		for try := 0; try < 5; try++ {
			raw, err := m.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := m.refInfo(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wt, err := m.InfoTo(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var written bytes.Buffer
			if _, err := wt.WriteTo(&written); err != nil {
				t.Fatal(err)
			}
			got, want = systemTime.ReplaceAll(raw, []byte(`"SystemTime":"-"`)), systemTime.ReplaceAll(ref, []byte(`"SystemTime":"-"`))
			if w := systemTime.ReplaceAll(written.Bytes(), []byte(`"SystemTime":"-"`)); string(w) != string(got) {
				t.Fatalf("%s: InfoTo wrote\n%s\nInfo answered\n%s", step, w, got)
			}
			if string(got) == string(want) {
				break
			}
		}
		if string(got) != string(want) {
			t.Fatalf("%s: info\n%s\nfrom scratch\n%s", step, got, want)
		}
		var v view
		if err := json.Unmarshal(got, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	line := func(v view, key string) string {
		for _, l := range v.DriverStatus {
			if l[0] == key {
				return l[1]
			}
		}
		return ""
	}

	v := info("start")
	if v.Containers != 9 || v.ContainersRunning != 6 || v.ContainersStopped != 3 || v.Images != 5 || v.NCPU != 14 || len(v.Warnings) != 0 || line(v, "Nodes") != "3" {
		t.Fatalf("start: %+v", v)
	}
	if again := info("unchanged"); again.Containers != v.Containers || len(again.DriverStatus) != len(v.DriverStatus) {
		t.Fatalf("unchanged: %+v, was %+v", again, v)
	}

	// A container created and started on a, reserving a CPU.
	id, err := a.Create(enginesim.CreateSpec{Name: "new", Image: "sim/image-0:latest", Resources: container.Resources{NanoCPUs: 1e9, Memory: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.StartContainer(id); err != nil {
		t.Fatal(err)
	}
	until(t, "a's new container cached running", func() bool {
		c := byName("a").Container(id)
		return c != nil && c.State == "running"
	})
	if v = info("created"); v.Containers != 10 || v.ContainersRunning != 7 || line(v, "Reserved CPUs") != "1 / 14" {
		t.Fatalf("created: %+v", v)
	}

	// One of b's stopped.
	if err := b.StopContainer("b-c0", false); err != nil {
		t.Fatal(err)
	}
	until(t, "b-c0 cached exited", func() bool {
		c := byName("b").ContainerNamed("b-c0")
		return c != nil && c.State == "exited"
	})
	if v = info("stopped"); v.ContainersRunning != 6 || v.ContainersStopped != 4 {
		t.Fatalf("stopped: %+v", v)
	}

	// An image pulled on a, then removed.
	post := func(method, url string) {
		req, _ := http.NewRequest(method, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %s", method, url, resp.Status)
		}
	}
	post("POST", "http://"+a.Addr()+"/images/create?fromImage=pulled&tag=latest")
	if err := byName("a").RefreshImages(ctx); err != nil {
		t.Fatal(err)
	}
	if v = info("pulled"); v.Images != 6 {
		t.Fatalf("pulled: %+v", v)
	}
	post("DELETE", "http://"+a.Addr()+"/images/pulled:latest")
	if err := byName("a").RefreshImages(ctx); err != nil {
		t.Fatal(err)
	}
	if v = info("image removed"); v.Images != 5 {
		t.Fatalf("image removed: %+v", v)
	}

	// c gone: its CPUs and memory leave the sums, a warning names it.
	c.Close()
	until(t, "c not healthy", func() bool { return !byName("c").Healthy() })
	if v = info("c gone"); v.NCPU != 10 || v.MemTotal != 6<<30 || len(v.Warnings) != 1 || !strings.Contains(v.Warnings[0], "node c ") {
		t.Fatalf("c gone: %+v", v)
	}

	// c taken out of the pool.
	pool.Update([]string{a.Addr(), b.Addr()})
	until(t, "c out of the pool", func() bool { return len(pool.Engines()) == 2 })
	if v = info("c removed"); v.Images != 3 || v.Containers != 7 || len(v.Warnings) != 0 || line(v, "Nodes") != "2" {
		t.Fatalf("c removed: %+v", v)
	}
}

// TestInfoFollowsBaseEngine: the fields info takes from a healthy engine's
// /info (decoded once per reload, info_cache.go) follow a reload that
// changed them.
func TestInfoFollowsBaseEngine(t *testing.T) {
	ie := newEditedInfoEngine(t, func(info map[string]any) { info["DefaultRuntime"] = "runc" })
	pool, ctx := ie.pool, t.Context()
	m := New(Config{Pool: pool})
	defaultRuntime := func() string {
		raw, err := m.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ DefaultRuntime string }
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		return v.DefaultRuntime
	}
	if got := defaultRuntime(); got != "runc" {
		t.Fatalf("DefaultRuntime %q, want runc", got)
	}
	ie.set(func(info map[string]any) { info["DefaultRuntime"] = "crun" })
	if err := pool.Engines()[0].Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := defaultRuntime(); got != "crun" {
		t.Fatalf("after the reload DefaultRuntime %q, want crun", got)
	}
}
