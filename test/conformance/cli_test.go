package conformance

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var clis = []struct{ name, bin, prefix string }{
	{"cli28", cli28, "c28"},
	{"cli20.10", cli2010, "c20"},
}

// cliRec wraps rec with a docker CLI binary.
type cliRec struct {
	*rec
	bin string
	dir string
}

func (c *cliRec) run(stdin string, args ...string) cliResult {
	ctx := ctxT(c.t, 60*time.Second)
	return runCLI(ctx, c.bin, c.tg.Host, stdin, args...)
}

// do runs the CLI and records what is asked: e exit code, o stdout, s
// stdout as sorted lines, r stderr, k JSON key shape of stdout, 1 first line.
func (c *cliRec) do(what string, args ...string) cliResult {
	return c.doIn(what, "", args...)
}

func (c *cliRec) doIn(what, stdin string, args ...string) cliResult {
	res := c.run(stdin, args...)
	step := strings.ReplaceAll(strings.Join(args, " "), c.dir, "<dir>")
	for _, w := range what {
		switch w {
		case 'e':
			c.add(step+" [exit]", itoa(res.Exit))
		case 'o':
			c.add(step+" [stdout]", norm(res.Out))
		case 's':
			c.add(step+" [stdout sorted]", sortedLines(res.Out))
		case 'r':
			c.add(step+" [stderr]", norm(res.Err))
		case 'k':
			c.add(step+" [json keys]", keyShape([]byte(res.Out), 2))
		case '1':
			c.add(step+" [first line]", norm(strings.SplitN(res.Out, "\n", 2)[0]))
		}
	}
	if res.Exit != 0 && !strings.ContainsRune(what, 'r') {
		c.t.Logf("%s %s on %s: exit %d: %s", filepath.Base(c.bin), step, c.tg.Name, res.Exit, strings.TrimSpace(res.Err))
	}
	return res
}

func itoa(i int) string { return strconv.Itoa(i) }

func forCLIs(t *testing.T, scenario string, fn func(c *cliRec, p string)) {
	for _, cl := range clis {
		t.Run(cl.name, func(t *testing.T) {
			conform(t, cl.name, scenario, func(r *rec) {
				c := &cliRec{rec: r, bin: cl.bin, dir: t.TempDir()}
				fn(c, cl.prefix)
			})
		})
	}
}

func TestCLIContainers(t *testing.T) {
	forCLIs(t, "containers", func(c *cliRec, p string) {
		a, b, x := p+"-a", p+"-b", p+"-x"
		c.run("", "rm", "-f", a, b, x)
		defer c.run("", "rm", "-f", a, b, x)
		c.do("eor", "run", "--rm", "busybox", "echo", "hi")
		c.do("eor", "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
		c.doIn("eo", "line1\nline2\n", "run", "-i", "--rm", "busybox", "cat")
		c.do("eo", "run", "-d", "--name", a, "-l", "cnf=1", "busybox", "sh", "-c", "echo started; sleep 300")
		c.do("eo", "ps", "--filter", "name="+a, "--format", "{{.Names}} {{.Image}} {{.Command}} {{.State}} {{.Labels}}")
		c.do("eo", "ps", "-a", "--filter", "label=cnf=1", "--format", "{{.Names}}")
		c.do("eo", "inspect", "-f", "{{.Name}} {{.State.Running}} {{.Config.Image}} {{.HostConfig.NetworkMode}}", a)
		c.do("ek", "inspect", a)
		c.do("eo", "logs", a)
		c.do("eor", "logs", "--tail", "1", "--timestamps=false", a)
		c.do("eor", "exec", a, "echo", "in-exec")
		c.doIn("eo", "piped\n", "exec", "-i", a, "cat")
		c.do("eor", "exec", a, "sh", "-c", "echo e >&2; exit 4")
		c.do("e1", "top", a)
		f := filepath.Join(c.dir, "in.txt")
		os.WriteFile(f, []byte("copied\n"), 0o644)
		c.do("eor", "cp", f, a+":/tmp/in.txt")
		c.do("eo", "exec", a, "cat", "/tmp/in.txt")
		out := filepath.Join(c.dir, "out.txt")
		res := c.run("", "cp", a+":/tmp/in.txt", out)
		got, _ := os.ReadFile(out)
		c.add("cp container→host [exit, content]", itoa(res.Exit)+" "+string(got))
		c.do("er", "cp", a+":/nonexistent", filepath.Join(c.dir, "x"))
		c.do("eo", "pause", a)
		c.do("eo", "inspect", "-f", "{{.State.Status}}", a)
		c.do("er", "exec", a, "true")
		c.do("eo", "unpause", a)
		c.do("eor", "rm", a)
		c.do("eor", "rename", a, b)
		c.do("eo", "inspect", "-f", "{{.Name}}", b)
		c.do("eo", "stats", "--no-stream", "--format", "{{.Name}}", b)
		c.do("eor", "update", "--cpu-shares", "512", b)
		c.do("eo", "stop", "-t", "1", b)
		c.do("eo", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", b)
		c.do("eor", "stop", b)
		c.do("eo", "start", b)
		c.do("eo", "restart", "-t", "1", b)
		c.do("eo", "kill", b)
		c.do("eo", "wait", b)
		c.do("es", "diff", b)
		c.do("eor", "export", "-o", filepath.Join(c.dir, "exp.tar"), b)
		c.do("eo", "rm", b)
		c.do("eor", "create", "--name", x, "busybox", "true")
		c.do("er", "create", "--name", x, "busybox", "true")
		c.do("er", "run", "--rm", "--name", x, "busybox", "true")
		c.do("eor", "start", "-a", x)
		c.do("eo", "rm", "-v", x)
		for _, args := range [][]string{
			{"inspect", "nosuch"}, {"container", "inspect", "nosuch"}, {"rm", "nosuch"}, {"logs", "nosuch"},
			{"start", "nosuch"}, {"stop", "nosuch"}, {"exec", "nosuch", "true"}, {"kill", "nosuch"},
			{"port", "nosuch"}, {"wait", "nosuch"}, {"create", "--name", "bad/name", "busybox"},
			{"run", "--rm", "busybox", "/no/such/binary"},
		} {
			c.do("eor", args...)
		}
	})
}

func TestCLIImages(t *testing.T) {
	forCLIs(t, "images", func(c *cliRec, p string) {
		tag := p + "-img:1"
		c.do("eo", "images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}", "busybox")
		c.do("eo", "image", "inspect", "-f", "{{.Os}} {{.Architecture}} {{.RepoTags}}", "busybox")
		c.do("ek", "image", "inspect", "busybox")
		c.do("eor", "tag", "busybox", tag)
		c.do("eo", "images", "--format", "{{.Repository}}:{{.Tag}}", p+"-img")
		c.do("eo", "history", "--format", "{{.CreatedBy}}", "busybox")
		c.do("eor", "save", "-o", filepath.Join(c.dir, "bb.tar"), "busybox")
		c.do("eor", "load", "-i", filepath.Join(c.dir, "bb.tar"))
		c.do("eor", "rmi", tag)
		c.do("eor", "rmi", "nosuch:1")
		c.do("eor", "image", "inspect", "nosuch")
		c.do("eor", "history", "nosuch")
		c.do("eor", "tag", "nosuch", "x:1")
		// import --change: the output is the new image's ID alone, which
		// finds the image.
		imp := filepath.Join(c.dir, "imp.tar")
		writeTar(c.t, imp, "imp.txt", "imported\n")
		res := c.do("eor", "import", "--change", `CMD ["cat", "/imp.txt"]`, imp, p+"-imp:1")
		got := c.run("", "image", "inspect", "-f", "{{.Config.Cmd}} {{.RepoTags}}", strings.TrimSpace(res.Out))
		c.add("image inspect <import's output> [exit, stdout]", itoa(got.Exit)+" "+norm(got.Out))
		c.do("eor", "import", imp, p+"-imp:2")
		c.run("", "rmi", p+"-imp:1", p+"-imp:2")
	})
}

// writeTar writes a tar archive holding one file.
func writeTar(t *testing.T, path, name, content string) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content))})
	tw.Write([]byte(content))
	tw.Close()
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// hasLine reports whether out has a line that is exactly want.
func hasLine(out, want string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == want {
			return true
		}
	}
	return false
}

func TestCLINetworksVolumes(t *testing.T) {
	forCLIs(t, "networks-volumes", func(c *cliRec, p string) {
		net, vol, web := p+"-net", p+"-vol", p+"-web"
		c.run("", "rm", "-f", web)
		c.run("", "network", "rm", net)
		c.run("", "volume", "rm", vol)
		defer func() {
			c.run("", "rm", "-f", web)
			c.run("", "network", "rm", net)
			c.run("", "volume", "rm", vol)
		}()
		c.do("eor", "network", "create", net)
		c.do("er", "network", "create", net)
		c.do("eo", "network", "ls", "--filter", "name="+net, "--format", "{{.Name}} {{.Driver}} {{.Scope}}")
		// Found by the exact name it was created with (scripts grep for it).
		c.add("network ls --format {{.Name}} [has <net>]", strconv.FormatBool(hasLine(c.run("", "network", "ls", "--format", "{{.Name}}").Out, net)))
		c.do("eo", "network", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Scope}}", net)
		c.do("ek", "network", "inspect", net)
		c.do("eor", "volume", "create", vol)
		c.do("eor", "volume", "create", vol)
		c.do("eo", "volume", "ls", "--filter", "name="+vol, "--format", "{{.Name}} {{.Driver}}")
		c.add("volume ls --format {{.Name}} [has <vol>]", strconv.FormatBool(hasLine(c.run("", "volume", "ls", "--format", "{{.Name}}").Out, vol)))
		c.do("eo", "volume", "inspect", "-f", "{{.Name}} {{.Driver}}", vol)
		c.do("ek", "volume", "inspect", vol)
		c.do("eo", "run", "-d", "--name", web, "--network", net, "busybox", "sh", "-c", "mkdir /www; echo hello-web > /www/index.html; exec httpd -f -p 80 -h /www")
		c.do("eor", "run", "--rm", "--network", net, "busybox", "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -T 2 -O- http://"+web+"/ && exit 0; sleep 0.3; done; exit 1")
		c.do("eor", "run", "--rm", "-v", vol+":/data", "busybox", "sh", "-c", "echo persisted > /data/f")
		c.do("eor", "run", "--rm", "-v", vol+":/data", "busybox", "cat", "/data/f")
		c.do("eor", "run", "--rm", "--network", net, "-v", vol+":/data", "busybox", "sh", "-c", "cat /data/f; wget -q -T 2 -O- http://"+web+"/")
		c.do("eor", "network", "disconnect", net, web)
		c.do("eo", "inspect", "-f", "{{len .NetworkSettings.Networks}}", web)
		c.do("eor", "network", "connect", net, web)
		c.do("eor", "network", "connect", net, web)
		c.do("eor", "network", "rm", net)
		c.do("eor", "volume", "rm", vol)
		c.do("eo", "rm", "-f", web)
		c.do("eor", "network", "rm", net)
		c.do("eor", "volume", "rm", vol)
		for _, args := range [][]string{
			{"network", "inspect", "nosuch"}, {"network", "rm", "nosuch"}, {"volume", "inspect", "nosuch"},
			{"volume", "rm", "nosuch"}, {"run", "--rm", "--network", "nosuch", "busybox", "true"},
			{"network", "connect", "nosuch", "nosuch"},
		} {
			c.do("eor", args...)
		}
	})
}

func TestCLISystem(t *testing.T) {
	forCLIs(t, "system", func(c *cliRec, p string) {
		c.do("e", "version")
		c.do("ek", "version", "--format", "{{json .}}")
		c.do("ek", "info", "--format", "{{json .}}")
		c.do("e1", "system", "df")
		c.do("ek", "system", "df", "--format", "{{json .}}")
		c.do("e", "ps", "-a")
		c.do("e1", "ps", "-a", "--no-trunc")
		c.do("e1", "images")
		c.do("e1", "network", "ls")
		c.do("e1", "volume", "ls")
		// A name of this target's own: shoal and the cluster share node2
		// and node3, and the window (since is whole seconds, up to two
		// before the run) can hold the previous target's run of the same
		// name: its start, die and destroy, its create just before.
		name := p + "-ev-" + c.tg.Name
		since := time.Now().Add(-time.Second).Unix()
		run := c.run("", "run", "--rm", "--name", name, "busybox", "true")
		c.add("run --rm --name <name> busybox true [exit]", itoa(run.Exit))
		time.Sleep(1500 * time.Millisecond)
		until := time.Now().Unix()
		res := c.run("", "events", "--since", itoa(int(since)), "--until", itoa(int(until)), "--filter", "container="+name, "--format", "{{.Type}} {{.Action}}")
		c.add("events --since <t0> --until <t1> --filter container=<name> [exit, stdout]", itoa(res.Exit)+"\n"+norm(res.Out))
		c.do("eor", "events", "--since", "nonsense", "--until", "1")
		c.do("eor", "container", "prune", "-f", "--filter", "label=nosuch-label")
		c.do("eor", "volume", "prune", "-f", "--filter", "label=nosuch-label")
		c.do("eor", "network", "prune", "-f", "--filter", "label=nosuch-label")
	})
}
