package federation

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// docker info adds up exactly at every level: containers (running, paused,
// stopped), CPUs and memory are the sums of the level below, images the
// distinct images of the engines under it.
func TestInfoAddsUp(t *testing.T) {
	removeAt(t, "frun", "fpause", "fstop")
	dk(t, top.Host, "run", "-d", "--name", "frun", "-e", "constraint:node==siteA/e1", "busybox", "sleep", "1d")
	dk(t, top.Host, "run", "-d", "--name", "fpause", "-e", "constraint:node==siteA/e2", "busybox", "sleep", "1d")
	dk(t, top.Host, "pause", "fpause")
	dk(t, top.Host, "create", "--name", "fstop", "-e", "constraint:region==us", "busybox", "true")
	waitFor(t, 20*time.Second, "info to add up at every level", func() error {
		ctx := t.Context()
		e := []infoT{info(ctx, eng("e1")), info(ctx, eng("e2")), info(ctx, eng("e3"))}
		a, b, tp, w := info(ctx, siteA.Host), info(ctx, siteB.Host), info(ctx, top.Host), info(ctx, world.Host)
		imgs := func(es ...string) int { return distinctImages(ctx, es...) }
		for _, c := range []struct {
			name      string
			got, want infoT
		}{
			{"siteA", a, sum(imgs("e1", "e2"), e[0], e[1])},
			{"siteB", b, sum(imgs("e3"), e[2])},
			{"top", tp, sum(imgs("e1", "e2", "e3"), a, b)},
			{"world", w, sum(imgs("e1", "e2", "e3"), tp)},
		} {
			if g, w := counts(c.got), counts(c.want); g != w {
				return fmt.Errorf("%s: %s; want %s", c.name, g, w)
			}
		}
		if tp.ContainersPaused != 1 || tp.ContainersRunning < 1 || tp.ContainersStopped < 1 {
			return fmt.Errorf("top: %s; want a paused, a running and a stopped container at least", counts(tp))
		}
		return nil
	})
	dk(t, top.Host, "unpause", "fpause")
}

func sum(images int, xs ...infoT) infoT {
	s := infoT{Images: images}
	for _, x := range xs {
		s.Containers += x.Containers
		s.ContainersRunning += x.ContainersRunning
		s.ContainersPaused += x.ContainersPaused
		s.ContainersStopped += x.ContainersStopped
		s.NCPU += x.NCPU
		s.MemTotal += x.MemTotal
	}
	return s
}

func counts(x infoT) string {
	return fmt.Sprintf("containers %d (%d running, %d paused, %d stopped), images %d, CPUs %d, memory %d",
		x.Containers, x.ContainersRunning, x.ContainersPaused, x.ContainersStopped, x.Images, x.NCPU, x.MemTotal)
}

// distinctImages counts the images (by ID) the engines list together.
func distinctImages(ctx context.Context, engines ...string) int {
	ids := map[string]bool{}
	for _, e := range engines {
		var list []struct {
			ID string `json:"Id"`
		}
		_ = getJSON(ctx, eng(e), "/images/json", &list)
		for _, i := range list {
			ids[i.ID] = true
		}
	}
	return len(ids)
}

// Images: the load of TestMain reached every engine; a build at the top
// lands on one inner node, and containers of it go where the image is.
func TestImages(t *testing.T) {
	for _, e := range []string{"e1", "e2", "e3"} {
		if id := dk(t, eng(e), "image", "inspect", "-f", "{{.Id}}", "busybox"); !strings.HasPrefix(id, "sha256:") {
			t.Errorf("busybox loaded through the top, on %s: %q", e, id)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nRUN echo built-below > /built\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		run(ctx, top.Host, nil, "rm", "-f", "fb1", "fb2")
		run(ctx, top.Host, nil, "rmi", "-f", "fedbuilt")
	})
	dk(t, world.Host, "build", "-q", "-t", "fedbuilt", dir)
	if got := dk(t, world.Host, "run", "--rm", "fedbuilt", "cat", "/built"); got != "built-below" {
		t.Errorf("a run of the built image: %q", got)
	}
	// More of it go where the image is too, though spreading would send
	// them to the inner node next to it, which lacks it.
	for _, c := range []string{"fb1", "fb2"} {
		dk(t, world.Host, "create", "--name", c, "fedbuilt", "cat", "/built")
	}
	var on []string
	for _, e := range []string{"e1", "e2", "e3"} {
		if n := len(names(t, eng(e), "--filter", "ancestor=fedbuilt")); n > 0 {
			on = append(on, fmt.Sprintf("%s:%d", e, n))
		}
	}
	if len(on) != 1 || !strings.HasSuffix(on[0], ":2") {
		t.Errorf("containers of fedbuilt on %v; want both on the engine that built it", on)
	}
}

// Networks and volumes made at the top are made on an inner engine, listed
// and removed there; prune at the top prunes below.
func TestNetworksVolumesPrune(t *testing.T) {
	t.Cleanup(func() {
		ctx := context.Background()
		run(ctx, top.Host, nil, "rm", "-f", "fprune")
		run(ctx, top.Host, nil, "network", "rm", "fednet")
		run(ctx, top.Host, nil, "volume", "rm", "fedvol")
	})
	dk(t, world.Host, "network", "create", "fednet")
	dk(t, world.Host, "volume", "create", "fedvol")
	where := func(kind, name string) []string {
		var on []string
		for _, e := range []string{"e1", "e2", "e3"} {
			if out := dk(t, eng(e), kind, "ls", "-q", "--filter", "name="+name); out != "" {
				on = append(on, e)
			}
		}
		return on
	}
	if on := where("network", "fednet"); len(on) != 1 {
		t.Errorf("fednet made at world is on %v; want one engine", on)
	}
	if on := where("volume", "fedvol"); len(on) != 1 {
		t.Errorf("fedvol made at world is on %v; want one engine", on)
	}
	if out := dk(t, world.Host, "network", "ls", "--format", "{{.Name}}", "--filter", "name=fednet"); !strings.HasSuffix(out, "fednet") {
		t.Errorf("network ls at world: %q", out)
	}
	if out := dk(t, world.Host, "volume", "ls", "--format", "{{.Name}}", "--filter", "name=fedvol"); !strings.HasSuffix(out, "fedvol") {
		t.Errorf("volume ls at world: %q", out)
	}
	dk(t, world.Host, "network", "rm", "fednet")
	dk(t, world.Host, "volume", "rm", "fedvol")
	if on := where("network", "fednet"); len(on) != 0 {
		t.Errorf("fednet after rm at world is on %v", on)
	}
	if on := where("volume", "fedvol"); len(on) != 0 {
		t.Errorf("fedvol after rm at world is on %v", on)
	}

	dk(t, top.Host, "create", "--name", "fprune", "-e", "constraint:region==us", "busybox", "true")
	dk(t, top.Host, "network", "create", "fednet")
	dk(t, top.Host, "volume", "create", "fedvol")
	for _, args := range [][]string{{"container", "prune", "-f"}, {"network", "prune", "-f"}, {"volume", "prune", "-f"}, {"image", "prune", "-f"}} {
		dk(t, world.Host, args...)
	}
	if got := names(t, eng("e3"), "--filter", "name=fprune"); len(got) != 0 {
		t.Errorf("container prune at world left fprune on e3")
	}
	if on := where("network", "fednet"); len(on) != 0 {
		t.Errorf("network prune at world left fednet on %v", on)
	}
	if on := where("volume", "fedvol"); len(on) != 0 {
		t.Errorf("volume prune at world left fedvol on %v", on)
	}
}

// Push and pull through the levels: an image tagged and pushed from world
// (three levels up from the engine that holds it) reaches a registry, and
// a pull at the top puts it on every inner engine of both members.
func TestPullPush(t *testing.T) {
	reg := bed.StartRegistry(t, "")
	ref := reg + "/fed/bb:1"
	t.Cleanup(func() { run(context.Background(), top.Host, nil, "rmi", "-f", ref) })
	dk(t, world.Host, "tag", "busybox", ref)
	if out := dk(t, world.Host, "push", ref); !strings.Contains(out, "digest: sha256:") {
		t.Errorf("push at world: %q; want the pushed digest", out)
	}
	dk(t, top.Host, "rmi", ref)
	for _, e := range []string{"e1", "e2", "e3"} {
		if res := run(t.Context(), eng(e), nil, "image", "inspect", ref); res.Exit == 0 {
			t.Errorf("%s still has %s after rmi at the top", e, ref)
		}
	}
	dk(t, top.Host, "pull", ref)
	for _, e := range []string{"e1", "e2", "e3"} {
		if res := run(t.Context(), eng(e), nil, "image", "inspect", "-f", "{{.Id}}", ref); res.Exit != 0 {
			t.Errorf("%s lacks %s after a pull at the top: %s", e, ref, res.Err)
		}
	}
	if got := dk(t, world.Host, "run", "--rm", "-e", "constraint:node==top/siteB/"+bed.Engines[engineOf["e3"]].Hostname, ref, "echo", "pulled"); got != "pulled" {
		t.Errorf("a run of the pulled image on e3 from world: %q", got)
	}
}
