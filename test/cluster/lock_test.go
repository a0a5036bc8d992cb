package cluster

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/test/shoaltest"
)

// unlock runs docker swarm unlock against api with key on its stdin, as
// an operator pastes it.
func unlock(t *testing.T, api, key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "swarm", "unlock")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+api, "DOCKER_CONFIG="+t.TempDir())
	cmd.Stdin = strings.NewReader(key + "\n")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// filesHolding lists the files under dir that contain s.
func filesHolding(t *testing.T, dir string, s []byte) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, s) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAutoLock: docker swarm update --autolock=true prints the unlock key,
// unlock-key --rotate replaces it; the manager, killed and started again, is locked (docker info says so,
// docker node ls is refused with dockerd's words) until docker swarm
// unlock gets the right key; and the CA key is nowhere in its data
// directory in clear.
func TestAutoLock(t *testing.T) {
	mgr, api := initManager(t, t.TempDir())
	caKey, err := os.ReadFile(filepath.Join(mgr.dir, "certificates", ca.RootKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(caKey)
	if block == nil {
		t.Fatal("the CA key file is not PEM before autolock")
	}
	caBody := bytes.Split(pem.EncodeToMemory(block), []byte("\n"))[1]

	out := docker(t, api, "swarm", "update", "--autolock=true")
	printed := regexp.MustCompile(`SWMKEY-1-\S+`).FindString(out)
	key := strings.TrimSpace(docker(t, api, "swarm", "unlock-key", "-q"))
	if printed == "" || printed != key {
		t.Fatalf("swarm update printed key %q, unlock-key -q gives %q:\n%s", printed, key, out)
	}
	rotated := strings.TrimSpace(docker(t, api, "swarm", "unlock-key", "--rotate", "-q"))
	if !strings.HasPrefix(rotated, "SWMKEY-1-") || rotated == key {
		t.Fatalf("unlock-key --rotate gave %q (was %q)", rotated, key)
	}
	old := key
	key = rotated

	mgr.p.Kill()
	if err := mgr.p.Restart(); err != nil {
		t.Fatal(err)
	}
	shoaltest.Eventually(t, 30*time.Second, "docker info shows the swarm locked", func() error {
		out, err := dockerErr(api, "info", "--format", "{{.Swarm.LocalNodeState}}")
		if err != nil || strings.TrimSpace(out) != "locked" {
			return fmt.Errorf("%v: %q", err, out)
		}
		return nil
	})
	if out, err := dockerErr(api, "node", "ls"); err == nil || !strings.Contains(out, `Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker swarm unlock" to unlock it.`) {
		t.Fatalf("docker node ls on a locked manager: %v: %s", err, out)
	}
	if f := filesHolding(t, mgr.dir, caBody); len(f) > 0 {
		t.Fatalf("the CA key is in clear in %v", f)
	}

	if out, err := unlock(t, api, old); err == nil || !strings.Contains(out, "swarm could not be unlocked: invalid key provided") {
		t.Fatalf("unlock with the key before rotation: %v: %s", err, out)
	}
	if out, err := unlock(t, api, key); err != nil {
		t.Fatalf("unlock with the right key: %v: %s", err, out)
	}
	out = docker(t, api, "node", "ls", "--format", "{{.Self}} {{.ManagerStatus}}")
	if !strings.Contains(out, "true Leader") {
		t.Fatalf("docker node ls after unlock: %q", out)
	}
	if out, err := unlock(t, api, key); err == nil || !strings.Contains(out, "swarm is not locked") {
		t.Fatalf("second unlock: %v: %s", err, out)
	}
}
