package services

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"golang.org/x/crypto/bcrypt"
)

// TestServiceRegistryAuth runs a service whose image is in a real
// registry that needs a password (Debian's docker-registry with htpasswd
// auth, on the bed's bridge: the engines run with --insecure-registry
// 10.213.0.0/16). `docker service create --with-registry-auth` sends the
// CLI's credentials; the node the task lands on, which lacks the image,
// pulls it with them (by the digest the CLI pinned). Without them the
// task on a node lacking the image is rejected with "No such image", as swarm mode shows it; shoal refuses
// the create at once when no node has the image, with the registry's
// words.
func TestServiceRegistryAuth(t *testing.T) {
	t0 := time.Now()
	reg := startAuthRegistry(t, "shoal", "reg-pass-42")
	ref := reg + "/svc/busybox:v1"
	withAuth := credsConfig(t, reg, "shoal", "reg-pass-42")
	noAuth := t.TempDir()
	forTargets(t, func(t *testing.T, tg *target) {
		t.Cleanup(func() { untagRegistryImages(t, tg, reg+"/svc/busybox") }) // after the services are gone
		cleanup(t, tg)
		pushImage(t, tg, withAuth, ref)

		create := func(cfg, name, node string, auth bool) cliResult {
			args := []string{"service", "create", "-d", "--quiet", "--name", name, "--constraint", "node.hostname==" + node, "--stop-grace-period", "1s"}
			if auth {
				args = append(args, "--with-registry-auth")
			}
			return runCLIConfig(t, cfg, tg.Host, append(append(args, ref), sleeper...)...)
		}
		if !tg.Swarm {
			res := create(noAuth, "regnone", "node2", false)
			if res.Exit == 0 || !strings.Contains(res.Err, "no node could pull it") || !strings.Contains(res.Err, "no basic auth credentials") {
				t.Fatalf("%s: create without auth of an image no node has: exit %d, %q; want refused with the registry's words", tg.Name, res.Exit, res.Err)
			}
		}

		if res := create(withAuth, "regauth", "node2", true); res.Exit != 0 {
			t.Fatalf("%s: service create --with-registry-auth: %s", tg.Name, res.Err)
		}
		waitRunning(t, tg, "regauth", 1, time.Minute)
		// The CLI pinned the image's digest: node2 pulled it by digest.
		if out := engineDocker(t, tg, 1, "images", "--digests", "--format", "{{.Repository}}@{{.Digest}}").Out; !strings.Contains(out, reg+"/svc/busybox@sha256:") {
			t.Errorf("%s: node2 does not hold %s after the task ran: %q", tg.Name, ref, out)
		}

		// node1 holds the image (tagged there), node3 lacks it and has no
		// credentials to pull it with.
		if res := engineDocker(t, tg, 0, "tag", "busybox", ref); res.Exit != 0 {
			t.Fatalf("tag: %s", res.Err)
		}
		if res := create(noAuth, "regnoauth", "node3", false); res.Exit != 0 {
			t.Fatalf("%s: service create without auth (node1 holds the image): %s", tg.Name, res.Err)
		}
		waitFor(t, time.Minute, tg.Name+": the task without auth rejected", func() error {
			for _, x := range tasks(t, tg, "regnoauth") {
				if x.Status.State == "rejected" && strings.Contains(x.Status.Err, "No such image: "+reg+"/svc/busybox:v1") {
					return nil
				}
			}
			return fmt.Errorf("tasks %+v", tasks(t, tg, "regnoauth"))
		})
		ps := mustDocker(t, tg, "service", "ps", "--no-trunc", "--format", "{{.CurrentState}} {{.Error}}", "regnoauth")
		if !strings.Contains(ps, "Rejected") || !strings.Contains(ps, "No such image") {
			t.Errorf("%s: service ps of the task without auth:\n%s", tg.Name, ps)
		}
	})
	t.Logf("registry auth end to end: %s", time.Since(t0).Round(100*time.Millisecond))
}

// untagRegistryImages removes the references to repo from the target's
// engines (the image itself is the bed's busybox, which stays).
func untagRegistryImages(t *testing.T, tg *target, repo string) {
	for i := range tg.Engines {
		out := engineDocker(t, tg, i, "images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}").Out
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) != 3 || f[0] != repo {
				continue
			}
			var refs []string
			if f[1] != "<none>" {
				refs = append(refs, f[0]+":"+f[1])
			}
			if f[2] != "<none>" {
				refs = append(refs, f[0]+"@"+f[2])
			}
			for _, r := range refs {
				if res := engineDocker(t, tg, i, "rmi", r); res.Exit != 0 && !strings.Contains(res.Err, "No such image") {
					t.Errorf("%s: node%d: rmi %s: %s", tg.Name, i+1, r, res.Err)
				}
			}
		}
	}
}

// startAuthRegistry runs docker-registry with htpasswd auth for user on
// the bed's bridge and returns its address (host:port).
func startAuthRegistry(t *testing.T, user, pass string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return bed.StartRegistry(t, user+":"+string(hash)+"\n")
}

func mustWrite(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// credsConfig is a DOCKER_CONFIG whose config.json holds user's password
// for reg, as `docker login` writes it.
func credsConfig(t *testing.T, reg, user, pass string) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(map[string]any{"auths": map[string]any{reg: map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}}})
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(dir, "config.json"), string(b))
	return dir
}

// pushImage puts the bed's busybox in the registry as ref, from the
// target's node1, and untags it there: no engine holds ref then.
func pushImage(t *testing.T, tg *target, cfg, ref string) {
	t.Helper()
	host := tg.engine(0).TCPAddr
	if res := runCLIConfig(t, cfg, host, "tag", "busybox", ref); res.Exit != 0 {
		t.Fatalf("tag: %s", res.Err)
	}
	if res := runCLIConfig(t, t.TempDir(), host, "push", ref); res.Exit == 0 || !strings.Contains(res.Err, "no basic auth credentials") {
		t.Errorf("a push without credentials: exit %d, %q; want the registry to refuse it", res.Exit, res.Err)
	}
	if res := runCLIConfig(t, cfg, host, "push", ref); res.Exit != 0 {
		t.Fatalf("push: %s", res.Err)
	}
	if res := runCLIConfig(t, cfg, host, "rmi", ref); res.Exit != 0 {
		t.Fatalf("rmi: %s", res.Err)
	}
}

// runCLIConfig runs the CLI 28 against host with DOCKER_CONFIG cfg.
func runCLIConfig(t *testing.T, cfg, host string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli28, args...)
	cmd.Env = []string{"DOCKER_HOST=" + host, "DOCKER_CONFIG=" + cfg, "DOCKER_CLI_HINTS=false", "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	return shoaltest.RunCmd(cmd)
}
