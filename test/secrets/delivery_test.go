package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSecretDelivery: a service's tasks on the built-in cluster's two
// nodes read a secret at /run/secrets/<name> and at an absolute target
// with the uid, gid and mode given, and a config at its target with its
// mode; the secret's bytes are nowhere on the engines' data roots nor in
// shoal's data directories (outside the agents' tmpfs); --secret-rm and
// --secret-add roll the tasks; the files go when the tasks' containers do;
// a secret driver is refused. Shoal only (delivery is not an API shape).
func TestSecretDelivery(t *testing.T) {
	tg := cluster
	t0 := time.Now()
	marker := randomMarker(t)
	t.Cleanup(func() {
		runCLI(t.Context(), tg.Host, nil, "service", "rm", "deliv")
		waitNoTaskContainers(t, tg)
		runCLI(t.Context(), tg.Host, nil, "secret", "rm", "dsec", "dsec2")
		runCLI(t.Context(), tg.Host, nil, "config", "rm", "dconf")
	})
	mustDockerIn(t, tg, marker, "secret", "create", "dsec", "-")
	mustDockerIn(t, tg, "second-"+marker, "secret", "create", "dsec2", "-")
	mustDockerIn(t, tg, "port=1\n", "config", "create", "dconf", "-")
	mustDocker(t, tg, append([]string{"service", "create", "-d", "--quiet", "--name", "deliv", "--replicas", "2",
		"--update-parallelism", "2", "--update-delay", "0s", "--update-monitor", "1s", "--stop-grace-period", "1s",
		"--secret", "dsec", "--secret", "source=dsec,target=/etc/app/key,uid=1000,gid=1001,mode=0400",
		"--config", "source=dconf,target=/etc/c.conf,mode=0440", "busybox"}, sleeper...)...)
	ids := waitTasks(t, tg, "deliv", 2, func(string) error { return nil })
	t.Logf("2 tasks running with their files: %s", time.Since(t0).Round(time.Millisecond))
	// One exec per container (each costs a CLI run): the secret at both
	// targets with their owners and modes, the config, and the secret's
	// mount read-only.
	check := "cat /run/secrets/dsec; echo; cat /etc/app/key; echo; stat -c '%a %u %g' /etc/app/key /run/secrets/dsec; " +
		"stat -c %a /etc/c.conf; cat /etc/c.conf; grep -c ' /run/secrets/dsec ' /proc/mounts; " +
		"echo x > /run/secrets/dsec 2>/dev/null || echo read-only"
	want := marker + "\n" + marker + "\n400 1000 1001\n444 0 0\n440\nport=1\n1\nread-only"
	for _, id := range ids {
		expect(t, tg, id, check, want)
	}
	// Each task's files are in its node's agent's tmpfs.
	for _, id := range ids {
		task := strings.TrimSpace(mustDocker(t, tg, "inspect", "--format", `{{index .Config.Labels "com.docker.swarm.task.id"}}`, id))
		if dir := taskFilesDir(tg, task); dir == "" {
			t.Errorf("task %s: no files in any agent's task-files", task)
		} else if fs := (syscall.Statfs_t{}); syscall.Statfs(dir, &fs) != nil || fs.Type != 0x01021994 {
			t.Errorf("%s is not on a tmpfs (type %#x)", dir, fs.Type)
		}
	}
	for _, needle := range []string{marker, base64.StdEncoding.EncodeToString([]byte(marker))} {
		for _, e := range tg.Engines {
			if where := grepSameDevice(t, e.DataRoot, needle); where != "" {
				t.Errorf("the secret is in clear under %s's data root: %s", e.Hostname, where)
			}
		}
		if where := grepSameDevice(t, tg.DataDir, needle); where != "" {
			t.Errorf("the secret is in clear in shoal's data: %s", where)
		}
	}

	mustDocker(t, tg, "service", "update", "-d", "--secret-rm", "dsec", "--secret-add", "dsec2", "deliv")
	t1 := time.Now()
	ids = waitTasks(t, tg, "deliv", 2, func(id string) error {
		return execOut(t, tg, id, "cat /run/secrets/dsec2; echo; test ! -e /run/secrets/dsec && echo gone", "second-"+marker+"\ngone")
	})
	t.Logf("secret-rm/secret-add rolled in %s", time.Since(t1).Round(time.Millisecond))
	expect(t, tg, ids[0], "cat /etc/c.conf", "port=1")

	res := runCLI(t.Context(), tg.Host, nil, "secret", "create", "--driver", "vault", "dvault")
	if res.Exit == 0 || !strings.Contains(res.Err, "secret driver vault is not supported") {
		t.Errorf("a secret driver: exit %d %s", res.Exit, res.Err)
	}

	mustDocker(t, tg, "service", "rm", "deliv")
	waitNoTaskContainers(t, tg)
	waitFor(t, 30*time.Second, "the agents' task files removed", func() error {
		for _, e := range tg.Engines {
			dir := filepath.Join(tg.DataDir, e.Hostname, "task-files")
			if left, _ := os.ReadDir(dir); len(left) > 0 {
				return fmt.Errorf("%s: %d left", dir, len(left))
			}
		}
		return nil
	})
	t.Logf("TestSecretDelivery took %s", time.Since(t0).Round(time.Millisecond))
}

// taskFilesDir is the directory of a task's files on the node that has
// them, "" if none has.
func taskFilesDir(tg *target, task string) string {
	for _, e := range tg.Engines {
		dir := filepath.Join(tg.DataDir, e.Hostname, "task-files", task)
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
	}
	return ""
}

func randomMarker(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "marker-" + hex.EncodeToString(b)
}

func mustDockerIn(t *testing.T, tg *target, stdin string, args ...string) {
	t.Helper()
	if res := runCLI(t.Context(), tg.Host, strings.NewReader(stdin), args...); res.Exit != 0 {
		t.Fatalf("docker %s: exit %d: %s", strings.Join(args, " "), res.Exit, res.Err)
	}
}

// execOut runs sh -c cmd in container id through shoal and compares its
// output with want.
func execOut(t *testing.T, tg *target, id, cmd, want string) error {
	res := runCLI(t.Context(), tg.Host, nil, "exec", id, "sh", "-c", cmd)
	if got := strings.TrimSpace(res.Out); res.Exit != 0 || got != want {
		return fmt.Errorf("exec %q in %s: exit %d %q %s, want %q", cmd, id, res.Exit, got, res.Err, want)
	}
	return nil
}

func expect(t *testing.T, tg *target, id, cmd, want string) {
	t.Helper()
	if err := execOut(t, tg, id, cmd, want); err != nil {
		t.Error(err)
	}
}

// waitTasks waits until the service has n running containers, each
// passing check, and returns their IDs.
func waitTasks(t *testing.T, tg *target, service string, n int, check func(id string) error) []string {
	t.Helper()
	var ids []string
	waitFor(t, 90*time.Second, fmt.Sprintf("%d running tasks of %s", n, service), func() error {
		out := runCLI(t.Context(), tg.Host, nil, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+service).Out
		ids = strings.Fields(out)
		if len(ids) != n {
			return fmt.Errorf("%d running containers", len(ids))
		}
		for _, id := range ids {
			if err := check(id); err != nil {
				return err
			}
		}
		return nil
	})
	return ids
}

// waitNoTaskContainers waits until no task container is left anywhere.
func waitNoTaskContainers(t *testing.T, tg *target) {
	t.Helper()
	waitFor(t, 60*time.Second, "task containers removed", func() error {
		out := runCLI(t.Context(), tg.Host, nil, "ps", "-aq", "--filter", "label=com.docker.swarm.task.id").Out
		if ids := strings.Fields(out); len(ids) > 0 {
			return fmt.Errorf("left: %v", ids)
		}
		return nil
	})
}

// grepSameDevice is the first file under root, on root's own file system
// (not under another mounted there: a running container's rootfs, the
// agents' tmpfs), that holds needle; "" if none.
func grepSameDevice(t *testing.T, root, needle string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(root, &st); err != nil {
		t.Fatalf("stat %s: %v", root, err)
	}
	dev := st.Dev
	found := ""
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || found != "" {
			return nil
		}
		var s syscall.Stat_t
		if syscall.Lstat(path, &s) != nil || s.Dev != dev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, []byte(needle)) {
			found = path
		}
		return nil
	})
	return found
}
