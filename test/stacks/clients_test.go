package stacks

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var reID25 = regexp.MustCompile(`\b[a-z0-9]{25}\b`)

// TestStackPython drives the network, secret and config API of
// docker-py 5.0.3 (testdata/objects.py under Debian's /usr/bin/python3)
// at API 1.41: create with labels, an attachable overlay network, get,
// list by filter, a name taken, removal refused while a service uses
// them (swarm mode's words), removal, and get after removal.
func TestStackPython(t *testing.T) {
	image := appImage(t)
	t.Cleanup(func() {
		docker(t, "service", "rm", "pysvc")
		docker(t, "secret", "rm", "pysec")
		docker(t, "config", "rm", "pyconf")
		docker(t, "network", "rm", "pynet")
	})
	cmd := exec.CommandContext(t.Context(), python, "testdata/objects.py", host, "1.41", image)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("objects.py: %v\n%s", err, e.String())
	}
	got := map[string]string{}
	sc := bufio.NewScanner(&o)
	for sc.Scan() {
		var s struct {
			Step string
			Val  any
		}
		if json.Unmarshal(sc.Bytes(), &s) != nil {
			continue
		}
		v, _ := json.Marshal(s.Val)
		got[s.Step] = reID25.ReplaceAllString(string(v), "<id>")
	}
	want := map[string]string{
		"network create":         `"pynet"`,
		"network get":            `{"Attachable":true,"Driver":"overlay","Labels":{"py":"1"},"Name":"pynet","Scope":"swarm"}`,
		"network list by label":  `["pynet"]`,
		"network list by driver": `["pynet"]`,
		"network create taken":   `"APIError 409: network with name pynet already exists"`,
		"secret create":          `"created"`,
		"secret get":             `{"Data":false,"Labels":{"py":"1"},"Name":"pysec"}`,
		"secret list by label":   `["pysec"]`,
		"secret create taken":    `"APIError 409: rpc error: code = AlreadyExists desc = secret pysec already exists"`,
		"config create":          `"created"`,
		"config get":             `{"Data":"az12","Labels":{"py":"1"},"Name":"pyconf"}`,
		"config list by name":    `["pyconf"]`,
		"service create":         `"pysvc"`,
		"network remove in use":  `"APIError 400: rpc error: code = FailedPrecondition desc = network <id> is in use by service <id>"`,
		"secret remove in use":   `"APIError 400: rpc error: code = InvalidArgument desc = secret 'pysec' is in use by the following service: pysvc"`,
		"config remove in use":   `"APIError 400: rpc error: code = InvalidArgument desc = config 'pyconf' is in use by the following service: pysvc"`,
		"service remove":         `true`,
		"network remove":         `"removed"`,
		"secret remove":          `true`,
		"config remove":          `true`,
		"network get removed":    `"NotFound 404: network pynet not found"`,
		"secret get removed":     `"NotFound 404: secret pysec not found"`,
		"config get removed":     `"NotFound 404: config pyconf not found"`,
	}
	for step, w := range want {
		if got[step] != w {
			t.Errorf("%s: %s, want %s", step, got[step], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d steps answered, want %d: %v\n%s", len(got), len(want), got, e.String())
	}
}

// TestStackCLI2010: the CLI 20.10 (API 1.41) creates, lists and removes
// an overlay network, a secret and a config, and deploys, lists and
// removes a stack using them.
func TestStackCLI2010(t *testing.T) {
	image := appImage(t)
	old := func(t *testing.T, args ...string) string {
		t.Helper()
		res := run(t.Context(), cli2010, host, args...)
		if res.Exit != 0 {
			t.Fatalf("docker 20.10 %s: exit %d: %s", strings.Join(args, " "), res.Exit, res.Err)
		}
		return strings.TrimSpace(res.Out)
	}
	t.Cleanup(func() {
		docker(t, "stack", "rm", "old")
		docker(t, "network", "rm", "oldnet")
		docker(t, "secret", "rm", "oldsec")
		docker(t, "config", "rm", "oldconf")
	})
	if id := old(t, "network", "create", "-d", "overlay", "--attachable", "--label", "v=20.10", "oldnet"); len(id) != 25 {
		t.Errorf("network create printed %q, want a 25-character ID", id)
	}
	if out := old(t, "network", "ls", "--filter", "label=v=20.10", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"); out != "oldnet overlay swarm" {
		t.Errorf("network ls: %q", out)
	}
	dir := t.TempDir()
	for name, body := range map[string]string{"s.txt": "old-secret", "c.txt": "old-config"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old(t, "secret", "create", "--label", "v=20.10", "oldsec", filepath.Join(dir, "s.txt"))
	old(t, "config", "create", "--label", "v=20.10", "oldconf", filepath.Join(dir, "c.txt"))
	if out := old(t, "secret", "ls", "--filter", "label=v=20.10", "--format", "{{.Name}} {{.Labels}}"); out != "oldsec v=20.10" {
		t.Errorf("secret ls: %q", out)
	}
	if out := old(t, "config", "ls", "--filter", "label=v=20.10", "--format", "{{.Name}} {{.Labels}}"); out != "oldconf v=20.10" {
		t.Errorf("config ls: %q", out)
	}

	stack := `version: "3.8"
services:
  s:
    image: ` + image + `
    command: ["sh", "-c", "trap exit TERM; sleep 600 & wait"]
    networks: [oldnet, own]
    secrets: [oldsec, mine]
    configs: [oldconf]
    deploy:
      replicas: 0
networks:
  oldnet:
    external: true
  own:
    driver: overlay
secrets:
  oldsec:
    external: true
  mine:
    file: ./s.txt
configs:
  oldconf:
    external: true
`
	if err := os.WriteFile(filepath.Join(dir, "stack.yml"), []byte(stack), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := runIn(t.Context(), dir, cli2010, host, "stack", "deploy", "-c", "stack.yml", "old"); res.Exit != 0 {
		t.Fatalf("docker 20.10 stack deploy: exit %d: %s%s", res.Exit, res.Out, res.Err)
	}
	if out := old(t, "stack", "ls", "--format", "{{.Name}} {{.Services}}"); out != "old 1" {
		t.Errorf("stack ls: %q", out)
	}
	if out := old(t, "stack", "services", "old", "--format", "{{.Name}} {{.Replicas}}"); out != "old_s 0/0" {
		t.Errorf("stack services: %q", out)
	}
	if out := old(t, "network", "ls", "--filter", "label=com.docker.stack.namespace=old", "--format", "{{.Name}} {{.Driver}}"); out != "old_own overlay" {
		t.Errorf("the stack's network: %q", out)
	}
	if res := run(t.Context(), cli2010, host, "secret", "rm", "oldsec"); res.Exit == 0 || !strings.Contains(res.Err, "is in use by the following service: old_s") {
		t.Errorf("secret rm of a secret in use: exit %d %s", res.Exit, res.Err)
	}
	old(t, "stack", "rm", "old")
	waitFor(t, 30*time.Second, "stack old gone", func() error {
		if out := old(t, "stack", "ls", "--format", "{{.Name}}"); strings.Contains(out, "old") {
			return fmt.Errorf("stack ls: %q", out)
		}
		return nil
	})
	waitGone(t, "old")
	old(t, "secret", "rm", "oldsec")
	old(t, "config", "rm", "oldconf")
	old(t, "network", "rm", "oldnet")
	for _, kind := range []string{"secret", "config", "network"} {
		if out := old(t, kind, "ls", "--filter", "label=v=20.10", "-q"); out != "" {
			t.Errorf("%s ls after rm: %q", kind, out)
		}
	}
}
