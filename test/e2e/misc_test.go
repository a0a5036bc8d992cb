package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestMiscCLI covers smaller commands and error paths through shoal.
func TestMiscCLI(t *testing.T) {
	a, b := uniq("misca"), uniq("miscb")
	rmf(t, a, b)
	dk(t, "run", "-d", "--name", a, "--label", "team=e2e", "-e", "FOO=bar", "busybox", "sleep", "300")
	dk(t, "create", "--name", b, "busybox", "true")
	// Renaming onto a taken name is a conflict, on any node.
	if e := dkFail(t, "rename", b, a); !strings.Contains(e.stderr, "Conflict") && !strings.Contains(strings.ToLower(e.stderr), "already in use") {
		t.Errorf("rename onto a taken name: %q", e.stderr)
	}
	// Exec in a stopped container fails with the engine's message.
	if e := dkFail(t, "exec", b, "true"); !strings.Contains(strings.ToLower(e.stderr), "not running") {
		t.Errorf("exec in a created container: %q", e.stderr)
	}
	// start of an unknown container.
	if e := dkFail(t, "start", "nosuchcontainer-misc"); !strings.Contains(e.stderr, "No such container") {
		t.Errorf("start unknown: %q", e.stderr)
	}
	// Template fields from the engine pass through.
	if out := dk(t, "inspect", "-f", `{{index .Config.Labels "team"}} {{range .Config.Env}}{{.}} {{end}}`, a); !strings.Contains(out, "e2e") || !strings.Contains(out, "FOO=bar") {
		t.Errorf("inspect labels/env: %q", out)
	}
	if out := dk(t, "ps", "--filter", "label=team=e2e", "--format", "{{.Label \"team\"}}"); !strings.Contains(out, "e2e") {
		t.Errorf("ps --format .Label: %q", out)
	}
	// ps --size and --no-trunc work on the merged list.
	if out := dk(t, "ps", "-a", "--size", "--filter", "name="+b, "--format", "{{.Size}}"); strings.TrimSpace(out) == "" {
		t.Errorf("ps --size: %q", out)
	}
	// wait --condition=removed via the API (CLI has no flag): run --rm uses it.
	st, _, body, err := sh.Do(context.Background(), "POST", "/containers/"+b+"/wait?condition=not-running", nil, nil)
	if err != nil || st != 200 {
		t.Errorf("wait not-running on a created container: %d %v %s", st, err, body)
	}
	// docker container inspect of two refs on two nodes at once.
	out := dk(t, "inspect", "--type", "container", "-f", "{{.Name}}", a, b)
	if len(lines(out)) != 2 {
		t.Errorf("inspect two: %q", out)
	}
	// The image inspect of an unknown image is a 404.
	if e := dkFail(t, "image", "inspect", "e2e/nosuchimage:x"); !strings.Contains(strings.ToLower(e.stderr), "no such image") {
		t.Errorf("image inspect unknown: %q", e.stderr)
	}
	// top with ps args.
	if out := dk(t, "top", a, "-o", "pid,comm"); !strings.Contains(out, "sleep") {
		t.Errorf("top -o: %q", out)
	}
	// run -d --rm: removed when it exits, and gone from ps.
	c := uniq("miscrm")
	dk(t, "run", "-d", "--rm", "--name", c, "busybox", "sh", "-c", "sleep 0.5")
	if err := waitFor(ctxT(t, 20*time.Second), 15*time.Second, func() error {
		out, _ := runDocker(context.Background(), dockerCmd{host: sh.Host, args: []string{"ps", "-a", "--format", "{{.Names}}"}})
		if strings.Contains(out, "/"+c+"\n") {
			return errString("still listed")
		}
		return nil
	}); err != nil {
		t.Errorf("run -d --rm container %s still in ps -a: %v", c, err)
	}
	// The name of an auto-removed container can be reused at once.
	dk(t, "run", "--rm", "--name", c, "busybox", "true")
	// Containers without a name get one from the engine; ps shows node/name.
	id := strings.TrimSpace(dk(t, "create", "busybox", "true"))
	rmf(t, id)
	var cs []struct{ Names []string }
	_, _, body, _ = sh.Do(context.Background(), "GET", "/containers/json?all=1&filters="+`{"id":["`+id+`"]}`, nil, nil)
	if err := json.Unmarshal(body, &cs); err != nil || len(cs) != 1 || len(cs[0].Names) == 0 || strings.Count(cs[0].Names[0], "/") != 2 {
		t.Errorf("API list of an unnamed container: %v %s", err, body)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
