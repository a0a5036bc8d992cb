package federation

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

// docker-compose 1.29 brings a two-service project up and down at the top.
func TestCompose(t *testing.T) {
	dir := t.TempDir()
	yml := "version: \"2.4\"\nservices:\n  web:\n    image: busybox\n    command: httpd -f -p 8080\n    stop_signal: SIGKILL\n" +
		"  client:\n    image: busybox\n    command: sleep 1d\n    stop_signal: SIGKILL\n"
	if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	dc := func(args ...string) result { return dcIn(t.Context(), dir, args...) }
	t.Cleanup(func() { dcIn(context.Background(), dir, "down", "-v") })
	if r := dc("up", "-d"); r.Exit != 0 {
		t.Fatalf("docker-compose up -d at the top: exit %d %s", r.Exit, r.Err)
	}
	ps := dc("ps")
	if n := strings.Count(ps.Out, " Up "); ps.Exit != 0 || n != 2 {
		t.Errorf("docker-compose ps: exit %d, %d up; want 2\n%s", ps.Exit, n, ps.Out)
	}
	// The client reaches web by its service name: both on the project's network.
	// (busybox httpd answers 404 for a directory without index.html: the
	// answer is what matters, not what it says.)
	if r := dc("exec", "-T", "client", "sh", "-c", "wget -q -O /dev/null http://web:8080/ 2>&1; true"); r.Exit != 0 || !strings.Contains(r.Out, "404") {
		t.Errorf("client → web by name: exit %d %q %s", r.Exit, r.Out, r.Err)
	}
	if r := dc("down", "-v"); r.Exit != 0 {
		t.Fatalf("docker-compose down at the top: exit %d %s", r.Exit, r.Err)
	}
	if left := names(t, top.Host, "--filter", "label=com.docker.compose.project=fedapp"); len(left) != 0 {
		t.Errorf("after down: %v", left)
	}
}

// dcIn runs docker-compose on project fedapp in dir against the top.
func dcIn(ctx context.Context, dir string, args ...string) result {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, compose, append([]string{"-p", "fedapp", "--ansi", "never"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(shoaltest.DockerEnv(top.Host, cfgDir), "COMPOSE_INTERACTIVE_NO_CLI=1")
	return shoaltest.RunCmd(cmd)
}

// docker-py runs a container at world, reads its logs and removes it.
func TestDockerPy(t *testing.T) {
	script := `
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1], version="auto")
ct = c.containers.run("busybox", ["sh", "-c", "echo py-through-levels"], detach=True, name="fpy",
                      environment=["constraint:region==us"])
ct.wait(timeout=60)
sys.stdout.write(ct.logs().decode())
ct.remove()
print("removed", len(c.containers.list(all=True, filters={"name": "fpy"})))
`
	removeAt(t, "fpy")
	cmd := exec.CommandContext(t.Context(), python, "-c", script, world.Host)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker-py at world: %v\n%s", err, e.String())
	}
	if got := strings.TrimSpace(o.String()); got != "py-through-levels\nremoved 0" {
		t.Errorf("docker-py output %q", got)
	}
}
