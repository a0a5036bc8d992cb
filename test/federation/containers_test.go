package federation

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

// A container's life through two and three levels: run at the top on an
// inner node by its stacked name, seen under its stacked name at every
// level and plainly on its engine; logs -f, exec (with a tty), cp both
// ways, stats, attach, create/start/stop/rm from world, and the events of
// both levels naming the stacked node.
func TestContainerThroughLevels(t *testing.T) {
	since := time.Now().Add(-time.Second).Format(time.RFC3339Nano)
	removeAt(t, "fweb", "fcre")
	dk(t, top.Host, "run", "-d", "--name", "fweb", "-e", "constraint:node==siteA/"+e1Name, "busybox",
		"sh", "-c", "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.2; done")
	for _, c := range []struct{ host, want string }{
		{world.Host, "top/siteA/e1/fweb"}, {top.Host, "siteA/e1/fweb"}, {siteA.Host, "e1/fweb"}, {eng("e1"), "fweb"},
	} {
		if got := names(t, c.host, "--filter", "name=fweb"); len(got) != 1 || got[0] != c.want {
			t.Errorf("ps at %s: %v; want [%s]", c.host, got, c.want)
		}
	}
	for _, ref := range []string{"fweb", "top/siteA/e1/fweb"} {
		if got := dk(t, world.Host, "inspect", "-f", "{{.Name}}", ref); got != "/fweb" {
			t.Errorf("inspect %s at world: %q", ref, got)
		}
	}

	t.Run("logs -f", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli28, "logs", "-f", "--tail", "1", "fweb")
		cmd.Env = shoaltest.DockerEnv(world.Host, cfgDir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); cmd.Wait() }()
		sc, n := bufio.NewScanner(out), 0
		for n < 5 && sc.Scan() { // lines written after logs -f began: it follows
			if strings.HasPrefix(sc.Text(), "line") {
				n++
			}
		}
		if n < 5 {
			t.Fatalf("logs -f through world: %d lines followed; want 5 (%v)", n, sc.Err())
		}
	})

	t.Run("exec", func(t *testing.T) {
		if got := dk(t, world.Host, "exec", "fweb", "hostname"); got == "" {
			t.Error("exec hostname through world: empty")
		}
		// -it needs a terminal: script(1) gives the CLI one.
		cmd := exec.CommandContext(t.Context(), "script", "-qec", cli28+" exec -it fweb sh -c 'tty; echo tty-ok'", "/dev/null")
		cmd.Env = shoaltest.DockerEnv(world.Host, cfgDir)
		res := shoaltest.RunCmd(cmd)
		if res.Exit != 0 || !strings.Contains(res.Out, "/dev/pts/") || !strings.Contains(res.Out, "tty-ok") {
			t.Errorf("exec -it through world: exit %d %q %s", res.Exit, res.Out, res.Err)
		}
	})

	t.Run("cp", func(t *testing.T) {
		dir := t.TempDir()
		in := filepath.Join(dir, "in.txt")
		if err := os.WriteFile(in, []byte("through-three-levels\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		dk(t, world.Host, "cp", in, "fweb:/tmp/in.txt")
		if got := dk(t, eng("e1"), "exec", "fweb", "cat", "/tmp/in.txt"); got != "through-three-levels" {
			t.Errorf("file copied in through world, on e1: %q", got)
		}
		dk(t, world.Host, "cp", "fweb:/tmp/in.txt", filepath.Join(dir, "out.txt"))
		if b, _ := os.ReadFile(filepath.Join(dir, "out.txt")); string(b) != "through-three-levels\n" {
			t.Errorf("file copied out through world: %q", b)
		}
	})

	t.Run("stats", func(t *testing.T) {
		out := dk(t, top.Host, "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", "fweb")
		if !strings.HasPrefix(out, "fweb ") || strings.Contains(out, "0B / 0B") {
			t.Errorf("stats --no-stream at the top: %q", out)
		}
	})

	t.Run("attach", func(t *testing.T) {
		res := run(t.Context(), world.Host, strings.NewReader("hello-attach\n"), "run", "-i", "--rm", "-e", "constraint:region==us", "busybox", "cat")
		if res.Exit != 0 || strings.TrimSpace(res.Out) != "hello-attach" {
			t.Errorf("run -i through world: exit %d %q %s", res.Exit, res.Out, res.Err)
		}
	})

	t.Run("create start stop rm", func(t *testing.T) {
		dk(t, world.Host, "create", "--name", "fcre", "-e", "constraint:node==top/siteB/e3", "busybox", "sleep", "1d")
		if got := names(t, eng("e3"), "--filter", "name=fcre"); len(got) != 1 {
			t.Fatalf("fcre on e3: %v", got)
		}
		dk(t, world.Host, "start", "fcre")
		if st := dk(t, top.Host, "inspect", "-f", "{{.State.Status}}", "siteB/e3/fcre"); st != "running" {
			t.Errorf("fcre after start: %s", st)
		}
		dk(t, world.Host, "stop", "-t", "0", "fcre")
		if st := dk(t, eng("e3"), "inspect", "-f", "{{.State.Status}}", "fcre"); st != "exited" {
			t.Errorf("fcre after stop, on e3: %s", st)
		}
		dk(t, world.Host, "rm", "fcre")
		if got := names(t, eng("e3"), "--filter", "name=fcre"); len(got) != 0 {
			t.Errorf("fcre after rm, on e3: %v", got)
		}
	})

	t.Run("events", func(t *testing.T) {
		until := time.Now().Add(time.Second).Format(time.RFC3339Nano)
		for _, c := range []struct{ host, want string }{{top.Host, "siteB/e3"}, {world.Host, "top/siteB/e3"}} {
			out := dk(t, c.host, "events", "--since", since, "--until", until, "--filter", "container=fcre", "--filter", "event=create",
				"--format", `{{index .Actor.Attributes "node.name"}}`)
			if out != c.want {
				t.Errorf("create event of fcre at %s names node %q; want %q", c.host, out, c.want)
			}
		}
	})
}

// Constraints from the top reach inner nodes: by stacked name, by a
// member's label, by an inner engine's label; a container no single inner
// node can hold is refused at the top, naming why; names are unique
// across the federation.
func TestConstraintsAndNames(t *testing.T) {
	removeAt(t, "fus", "fssd", "fuq")
	dk(t, top.Host, "create", "--name", "fus", "-e", "constraint:region==us", "busybox", "true")
	dk(t, top.Host, "create", "--name", "fssd", "-e", "constraint:disk==ssd", "-e", "constraint:region==eu", "busybox", "true")
	for name, at := range map[string]string{"fus": "e3", "fssd": "e2"} {
		if got := names(t, eng(at), "--filter", "name="+name); len(got) != 1 {
			t.Errorf("%s not on %s: %v", name, at, got)
		}
	}
	// Each member's memory is the sum of its engines'; a container bigger
	// than any one engine fits no node, whatever the sums say.
	mem := info(t.Context(), eng("e1")).MemTotal
	res := run(t.Context(), world.Host, nil, "create", "--name", "fbig", "-m", strconv.FormatInt(mem+mem/2, 10), "busybox", "true")
	if res.Exit == 0 || !strings.Contains(res.Err, "memory") {
		t.Errorf("create of 1.5× an engine's memory through world: exit %d %s; want refused, naming memory", res.Exit, res.Err)
	}
	for _, e := range []string{"e1", "e2", "e3"} {
		if got := names(t, eng(e), "--filter", "name=fbig"); len(got) != 0 {
			t.Errorf("refused fbig is on %s", e)
		}
	}
	dk(t, top.Host, "create", "--name", "fuq", "-e", "constraint:region==eu", "busybox", "true")
	for _, host := range []string{top.Host, world.Host} {
		res := run(t.Context(), host, nil, "create", "--name", "fuq", "-e", "constraint:region==us", "busybox", "true")
		if res.Exit == 0 || !strings.Contains(res.Err, "already in use") {
			t.Errorf("a second fuq (on siteB) at %s: exit %d %s; want refused as in use", host, res.Exit, res.Err)
		}
	}
}
