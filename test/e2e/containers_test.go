package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunRmAndStdin(t *testing.T) {
	out := dk(t, "run", "--rm", "busybox", "echo", "hello shoal")
	if strings.TrimSpace(out) != "hello shoal" {
		t.Errorf("run --rm echo: %q", out)
	}
	out = dkIn(t, "data from stdin\nline 2\n", "run", "-i", "--rm", "busybox", "cat")
	if out != "data from stdin\nline 2\n" {
		t.Errorf("run -i cat: %q", out)
	}
	// --rm leaves nothing behind.
	e := dkFail(t, "run", "--rm", "busybox", "sh", "-c", "exit 7")
	if e.code != 7 {
		t.Errorf("run --rm exit 7: exit code %d", e.code)
	}
}

// scriptCmd runs cmdline under `script` (a pty) against host.
func scriptCmd(ctx context.Context, host, cmdline string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "script", "-qec", cmdline, "/dev/null")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host, "DOCKER_CONFIG="+dockerConfigDir(), "DOCKER_CLI_HINTS=false")
	cmd.WaitDelay = 2 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

func TestRunTTYAndDetachKeys(t *testing.T) {
	out, err := scriptCmd(ctxT(t, 30*time.Second), sh.Host, cli28+" run -it --rm busybox sh -c 'tty'").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "/dev/pts/") {
		t.Errorf("run -it tty: %v: %q", err, out)
	}
	// Detach with custom keys: the client returns, the container keeps running.
	// First against an engine directly (control), then through shoal. Over
	// unix sockets: over TCP the CLI 28 itself hangs on detach, even against
	// dockerd directly (its io.Copy goes through TCPConn.ReadFrom, which wraps
	// the term.EscapeError in a *net.OpError, so it is not recognised and
	// the CLI then waits for the container to exit).
	for _, tc := range []struct{ name, host string }{{"engine-unix", bed.Engines[0].UnixHost()}, {"shoal-unix", "unix://" + sh.Unix}} {
		t.Run(tc.name, func(t *testing.T) {
			name := uniq("detach")
			defer runDocker(context.Background(), dockerCmd{host: tc.host, args: []string{"rm", "-f", name}})
			ctx := ctxT(t, 25*time.Second)
			cmd := scriptCmd(ctx, tc.host, cli28+" run -it --detach-keys ctrl-x,x --name "+name+" busybox sh")
			pw, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var outb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &outb, &outb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() {
				waitFor(ctx, 15*time.Second, func() error {
					o, err := runDocker(ctx, dockerCmd{host: tc.host, args: []string{"inspect", "-f", "{{.State.Running}}", name}})
					if err != nil || strings.TrimSpace(o) != "true" {
						return io.EOF
					}
					return nil
				})
				time.Sleep(500 * time.Millisecond)
				pw.Write([]byte("echo typed-$((6*7))\r"))
				time.Sleep(500 * time.Millisecond)
				pw.Write([]byte{0x18})
				time.Sleep(100 * time.Millisecond)
				pw.Write([]byte{'x'})
			}()
			err = cmd.Wait()
			pw.Close()
			if err != nil {
				t.Errorf("docker run -it with detach keys did not return cleanly: %v: %q", err, outb.String())
			}
			if !strings.Contains(outb.String(), "typed-42") {
				t.Errorf("tty session output %q lacks typed-42", outb.String())
			}
			o, _ := runDocker(context.Background(), dockerCmd{host: tc.host, args: []string{"inspect", "-f", "{{.State.Running}}", name}})
			if strings.TrimSpace(o) != "true" {
				t.Errorf("after detach the container's Running=%q, want true", o)
			}
		})
	}
}

func TestContainerLifecycle(t *testing.T) {
	name := uniq("life")
	rmf(t, name, name+"-new")
	id := strings.TrimSpace(dk(t, "run", "-d", "--name", name, "busybox", "sleep", "300"))
	if len(id) != 64 {
		t.Fatalf("run -d printed %q, want a 64-char ID", id)
	}
	c := inspect(t, name)
	if c.ID != id || !c.State.Running {
		t.Fatalf("inspect: %+v", c)
	}
	if c.Node == nil || c.Node.ID == "" || c.Node.Name == "" || c.Node.Addr == "" || c.Node.IP == "" {
		t.Errorf("inspect: Node object incomplete: %+v", c.Node)
	} else {
		i := engineOf(t, bed, c.Node.IP)
		if c.Node.Name != bed.Engines[i].Hostname {
			t.Errorf("Node.Name %q, want %q", c.Node.Name, bed.Engines[i].Hostname)
		}
		// The engine really has it.
		out := dkOn(t, bed.Engines[i].UnixHost(), "inspect", "-f", "{{.Name}}", id)
		if strings.TrimSpace(out) != "/"+name {
			t.Errorf("engine %d has name %q", i, out)
		}
	}
	state := func(want string) {
		t.Helper()
		if c := inspect(t, name); c.State.Status != want {
			t.Errorf("state %q, want %q", c.State.Status, want)
		}
	}
	dk(t, "pause", name)
	state("paused")
	dk(t, "unpause", name)
	state("running")
	dk(t, "stop", "-t", "1", name)
	state("exited")
	dk(t, "start", name)
	state("running")
	dk(t, "restart", "-t", "1", name)
	state("running")
	dk(t, "kill", name)
	state("exited")
	dk(t, "start", name)
	dk(t, "update", "--memory", "64m", "--memory-swap", "128m", "--cpu-shares", "512", name)
	c = inspect(t, name)
	if c.HostConfig.Memory != 64<<20 || c.HostConfig.CPUShares != 512 {
		t.Errorf("after update: Memory=%d CPUShares=%d", c.HostConfig.Memory, c.HostConfig.CPUShares)
	}
	dk(t, "rename", name, name+"-new")
	if c := inspect(t, name+"-new"); c.ID != id {
		t.Errorf("after rename, %s-new is %s, want %s", name, c.ID, id)
	}
	if e := dkFail(t, "inspect", "--type", "container", name); !strings.Contains(e.stderr, "No such container") {
		t.Errorf("old name after rename: %q", e.stderr)
	}
	out := dk(t, "ps", "--filter", "id="+id, "--format", "{{.Names}}")
	if !strings.HasSuffix(strings.TrimSpace(out), "/"+name+"-new") {
		t.Errorf("ps after rename: %q", out)
	}
	out = dk(t, "top", name+"-new")
	if !strings.Contains(out, "sleep 300") {
		t.Errorf("top: %q", out)
	}
	out = dk(t, "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", name+"-new")
	if !strings.Contains(out, name+"-new") || !strings.Contains(out, "MiB") && !strings.Contains(out, "KiB") {
		t.Errorf("stats: %q", out)
	}
	dk(t, "rm", "-f", "-v", name+"-new")
	if e := dkFail(t, "inspect", "--type", "container", id); !strings.Contains(e.stderr, "No such container") {
		t.Errorf("after rm -f: %q", e.stderr)
	}
}

func TestWaitAndRm(t *testing.T) {
	name := uniq("wait")
	rmf(t, name)
	dk(t, "run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 1; exit 5")
	out := dk(t, "wait", name)
	if strings.TrimSpace(out) != "5" {
		t.Errorf("wait: %q, want 5", out)
	}
	dk(t, "rm", "-v", name)
	out = dk(t, "ps", "-a", "-q", "--filter", "name="+name)
	if strings.TrimSpace(out) != "" {
		t.Errorf("ps after rm: %q", out)
	}
	// rm of a running container needs -f.
	dk(t, "run", "-d", "--name", name, "busybox", "sleep", "60")
	if e := dkFail(t, "rm", name); !strings.Contains(strings.ToLower(e.stderr), "running") {
		t.Errorf("rm of a running container: %q", e.stderr)
	}
	dk(t, "rm", "-f", name)
}

func TestLogs(t *testing.T) {
	name := uniq("logs")
	rmf(t, name)
	dk(t, "run", "-d", "--name", name, "busybox", "sh", "-c", "echo err1 >&2; for i in 1 2 3 4 5; do echo line$i; sleep 0.3; done")
	// --follow returns when the container exits, with every line.
	out, err := runDocker(ctxT(t, 30*time.Second), dockerCmd{host: sh.Host, args: []string{"logs", "--follow", name}})
	if err != nil {
		t.Fatalf("logs -f: %v", err)
	}
	if got := lines(out); strings.Join(got, ",") != "line1,line2,line3,line4,line5" {
		t.Errorf("logs -f stdout: %q", out)
	}
	if c := inspect(t, name); c.State.Running {
		t.Errorf("logs -f returned while the container still runs")
	}
	out = dk(t, "logs", "--tail", "2", name)
	if got := lines(out); strings.Join(got, ",") != "line4,line5" {
		t.Errorf("logs --tail 2: %q", out)
	}
	out = dk(t, "logs", "--timestamps", "--tail", "1", name)
	if f := strings.Fields(out); len(f) != 2 || f[1] != "line5" {
		t.Errorf("logs --timestamps: %q", out)
	} else if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
		t.Errorf("logs --timestamps: bad timestamp %q: %v", f[0], err)
	}
	out = dk(t, "logs", "--since", time.Now().Add(time.Hour).Format(time.RFC3339), name)
	if strings.TrimSpace(out) != "" {
		t.Errorf("logs --since (future): %q", out)
	}
	out = dk(t, "logs", "--since", "10m", name)
	if len(lines(out)) != 5 {
		t.Errorf("logs --since 10m: %q", out)
	}
	// stderr stays stderr.
	res, err := runDocker(ctxT(t, 30*time.Second), dockerCmd{host: sh.Host, args: []string{"logs", name}})
	if err != nil || len(lines(res)) != 5 {
		t.Errorf("logs: %v %q", err, res)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctxT(t, 20*time.Second), cli28, "logs", name)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+sh.Host, "DOCKER_CONFIG="+dockerConfigDir())
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || strings.TrimSpace(stderr.String()) != "err1" {
		t.Errorf("logs: stderr %q (%v), want err1", stderr.String(), err)
	}
}

func TestAttach(t *testing.T) {
	// Control against the engine directly, then through shoal (tcp and
	// unix). Closing the attach's stdin does not close the container's
	// (StdinOnce is false for `run -d -i`), so the client is stopped by us
	// once it has shown the echoed lines.
	for _, tc := range []struct{ name, host string }{
		{"engine", bed.Engines[1].TCPAddr}, {"shoal-tcp", sh.Host}, {"shoal-unix", "unix://" + sh.Unix},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := uniq("att")
			defer runDocker(context.Background(), dockerCmd{host: tc.host, args: []string{"rm", "-f", name}})
			dkOn(t, tc.host, "run", "-d", "-i", "--name", name, "busybox", "sh", "-c", "echo ready; while read l; do echo got:$l; done")
			ctx := ctxT(t, 20*time.Second)
			cmd := exec.CommandContext(ctx, cli28, "attach", name)
			cmd.Env = append(os.Environ(), "DOCKER_HOST="+tc.host, "DOCKER_CONFIG="+dockerConfigDir())
			cmd.WaitDelay = time.Second
			in, _ := cmd.StdinPipe()
			outp, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer cmd.Process.Kill()
			got := make(chan string, 10)
			go func() {
				sc := bufio.NewScanner(outp)
				for sc.Scan() {
					got <- sc.Text()
				}
				close(got)
			}()
			for i, l := range []string{"one", "two"} {
				fmt.Fprintln(in, l)
				select {
				case line, ok := <-got:
					if !ok || line != "got:"+l {
						t.Fatalf("line %d through attach: %q (open %v), want got:%s", i, line, ok, l)
					}
				case <-ctx.Done():
					t.Fatalf("no echo of %q through attach", l)
				}
			}
		})
	}
}

func TestExec(t *testing.T) {
	name := uniq("exec")
	rmf(t, name)
	dk(t, "run", "-d", "--name", name, "busybox", "sleep", "300")
	out := dk(t, "exec", name, "sh", "-c", "echo out; echo err >&2")
	if strings.TrimSpace(out) != "out" {
		t.Errorf("exec stdout: %q", out)
	}
	e := dkFail(t, "exec", name, "sh", "-c", "exit 3")
	if e.code != 3 {
		t.Errorf("exec exit 3: exit code %d (%v)", e.code, e)
	}
	out = dkIn(t, "piped\n", "exec", "-i", name, "cat")
	if out != "piped\n" {
		t.Errorf("exec -i cat: %q", out)
	}
	out = dk(t, "exec", "-e", "FOO=bar", "-w", "/tmp", name, "sh", "-c", "echo $FOO $(pwd)")
	if strings.TrimSpace(out) != "bar /tmp" {
		t.Errorf("exec -e -w: %q", out)
	}
	// With a tty.
	ctx := ctxT(t, 30*time.Second)
	o, err := scriptCmd(ctx, sh.Host, cli28+" exec -t "+name+" sh -c 'tty; exit 4'").CombinedOutput()
	if !strings.Contains(string(o), "/dev/pts/") {
		t.Errorf("exec -t tty: %v %q", err, o)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 {
		t.Errorf("exec -t exit 4: %v", err)
	}
	// exec create/start/inspect through the API, as a plain HTTP client
	// (no Upgrade header: dockerd answers 200 and streams the output raw).
	id := inspect(t, name).ID
	for _, tc := range []struct {
		name string
		c    *http.Client
		base string
	}{{"engine", bed.Client(engineOf(t, bed, inspect(t, name).Node.IP)), "http://docker"}, {"shoal", httpc, "http://" + sh.Addr}} {
		t.Run("api-"+tc.name, func(t *testing.T) {
			post := func(path, body string) (int, string) {
				req, _ := http.NewRequestWithContext(ctx, "POST", tc.base+path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := tc.c.Do(req)
				if err != nil {
					t.Fatalf("POST %s: %v", path, err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			st, body := post("/containers/"+id+"/exec", `{"Cmd":["sh","-c","echo via-api; exit 9"],"AttachStdout":true}`)
			if st != 201 {
				t.Fatalf("exec create: %d %s", st, body)
			}
			var cr struct{ Id string }
			jsonUnmarshal(t, []byte(body), &cr)
			st, body = post("/exec/"+cr.Id+"/start", `{"Detach":false,"Tty":false}`)
			if st != 200 || !strings.Contains(body, "via-api") {
				t.Errorf("exec start without Upgrade header: status %d body %q, want 200 with the output (what dockerd does)", st, body)
			}
			var ei struct {
				ExitCode    int
				Running     bool
				ContainerID string
			}
			if err := waitFor(ctx, 10*time.Second, func() error {
				req, _ := http.NewRequestWithContext(ctx, "GET", tc.base+"/exec/"+cr.Id+"/json", nil)
				resp, err := tc.c.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 {
					return fmt.Errorf("%d %s", resp.StatusCode, b)
				}
				jsonUnmarshal(t, b, &ei)
				if ei.Running {
					return io.EOF
				}
				return nil
			}); err != nil {
				t.Fatalf("exec inspect: %v", err)
			}
			if ei.ExitCode != 9 || ei.ContainerID != id {
				t.Errorf("exec inspect: %+v", ei)
			}
		})
	}
}

func TestCpExportDiff(t *testing.T) {
	name := uniq("cp")
	rmf(t, name)
	dk(t, "run", "-d", "--name", name, "busybox", "sh", "-c", "echo inside > /tmp/in.txt; mkdir /newdir; sleep 300")
	dir := t.TempDir()
	src := filepath.Join(dir, "host.txt")
	os.WriteFile(src, []byte("from host\n"), 0o644)
	dk(t, "cp", src, name+":/tmp/host.txt")
	if out := dk(t, "exec", name, "cat", "/tmp/host.txt"); out != "from host\n" {
		t.Errorf("cp host→container: %q", out)
	}
	waitFor(ctxT(t, 10*time.Second), 5*time.Second, func() error {
		_, err := runDocker(context.Background(), dockerCmd{host: sh.Host, args: []string{"exec", name, "test", "-d", "/newdir"}})
		return err
	})
	dst := filepath.Join(dir, "back.txt")
	dk(t, "cp", name+":/tmp/in.txt", dst)
	if b, _ := os.ReadFile(dst); string(b) != "inside\n" {
		t.Errorf("cp container→host: %q", b)
	}
	// cp to stdout is a tar.
	out := dk(t, "cp", name+":/tmp/in.txt", "-")
	tr := tar.NewReader(strings.NewReader(out))
	if h, err := tr.Next(); err != nil || h.Name != "in.txt" {
		t.Errorf("cp to -: %v %+v", err, h)
	}
	out = dk(t, "diff", name)
	for _, want := range []string{"A /newdir", "C /tmp", "A /tmp/in.txt", "A /tmp/host.txt"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q: %q", want, out)
		}
	}
	exp := filepath.Join(dir, "exp.tar")
	dk(t, "export", "-o", exp, name)
	f, err := os.Open(exp)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	tr = tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		seen[strings.TrimPrefix(h.Name, "./")] = true
	}
	for _, want := range []string{"bin/busybox", "tmp/in.txt", "tmp/host.txt", "newdir/"} {
		if !seen[want] {
			t.Errorf("export lacks %s (%d entries)", want, len(seen))
		}
	}
}

func TestContainerPrune(t *testing.T) {
	keep := uniq("keep")
	rmf(t, keep)
	var gone []string
	for i := 0; i < 3; i++ {
		n := uniq("prune")
		gone = append(gone, n)
		dk(t, "run", "--name", n, "busybox", "true")
	}
	rmf(t, gone...)
	dk(t, "run", "-d", "--name", keep, "busybox", "sleep", "300")
	out := dk(t, "container", "prune", "-f")
	for _, n := range gone {
		if _, err := runDocker(ctxT(t, 30*time.Second), dockerCmd{host: sh.Host, args: []string{"inspect", "--type", "container", n}}); err == nil {
			t.Errorf("container %s still there after prune; prune said %q", n, out)
		}
	}
	if !strings.Contains(out, "Total reclaimed space") {
		t.Errorf("prune output: %q", out)
	}
	if c := inspect(t, keep); !c.State.Running {
		t.Errorf("prune touched running container %s", keep)
	}
}

func jsonUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := jsonDecode(b, v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}
