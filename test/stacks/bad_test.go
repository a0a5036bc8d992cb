package stacks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStackBadInput: what shoal refuses comes back as a clear error,
// with dockerd's words where dockerd has some, and leaves nothing behind:
// overlapping subnets, a network in use, a secret name taken, a secret
// over dockerd's 500 KiB, and stack files with options the CLI ignores
// or shoal refuses.
func TestStackBadInput(t *testing.T) {
	began := time.Now()
	image := appImage(t)
	t.Cleanup(func() {
		docker(t, "service", "rm", "inuse")
		docker(t, "secret", "rm", "taken")
		docker(t, "network", "rm", "ov1", "ov2")
	})
	refused := func(t *testing.T, res result, want string) {
		t.Helper()
		if res.Exit == 0 || !strings.Contains(res.Err, want) {
			t.Errorf("exit %d, stderr %q; want refused with %q", res.Exit, res.Err, want)
		}
	}
	gone := func(t *testing.T, kind, name string) {
		t.Helper()
		if out := docker(t, kind, "ls", "--format", "{{.Name}}", "--filter", "name="+name).Out; strings.Contains(out, name) {
			t.Errorf("%s %s left after its refusal: %q", kind, name, out)
		}
	}

	t.Run("overlapping subnets", func(t *testing.T) {
		must(t, "network", "create", "-d", "overlay", "--subnet", "10.77.0.0/16", "ov1")
		refused(t, docker(t, "network", "create", "-d", "overlay", "--subnet", "10.77.1.0/24", "ov2"),
			"Pool overlaps with other one on this address space")
		gone(t, "network", "ov2")
	})
	t.Run("network in use", func(t *testing.T) {
		// no task: a service holds its networks by its spec (TestStackApp's
		// rm removes networks while tasks stop)
		must(t, "service", "create", "-d", "--quiet", "--name", "inuse", "--network", "ov1", "--replicas", "0",
			image, "sh", "-c", "trap exit TERM; sleep 600 & wait")
		refused(t, docker(t, "network", "rm", "ov1"), "rpc error: code = FailedPrecondition desc = network ")
		if out := must(t, "network", "ls", "--filter", "name=ov1", "--format", "{{.Name}}"); out != "ov1" {
			t.Errorf("ov1 gone after a refused rm: %q", out)
		}
		// Once the service is removed the network goes, as on swarm mode.
		must(t, "service", "rm", "inuse")
		must(t, "network", "rm", "ov1")
		gone(t, "network", "ov1")
	})
	t.Run("secret name taken", func(t *testing.T) {
		if res := stdin(t, "first", "secret", "create", "taken", "-"); res.Exit != 0 {
			t.Fatalf("secret create: %s", res.Err)
		}
		refused(t, stdin(t, "again", "secret", "create", "taken", "-"), "rpc error: code = AlreadyExists desc = secret taken already exists")
		if out := must(t, "secret", "ls", "--format", "{{.Name}}"); out != "taken" {
			t.Errorf("secret ls: %q", out)
		}
	})
	t.Run("secret too large", func(t *testing.T) {
		// dockerd (swarmkit's MaxSecretSize): 400, "less than 500 KiB"
		refused(t, stdin(t, strings.Repeat("x", 500*1024), "secret", "create", "big", "-"),
			"rpc error: code = InvalidArgument desc = secret data must be larger than 0 and less than 512000 bytes")
		gone(t, "secret", "big")
		if res := stdin(t, strings.Repeat("x", 500*1024-1), "secret", "create", "big", "-"); res.Exit != 0 {
			t.Errorf("a secret of 500 KiB - 1: %s", res.Err)
		}
		docker(t, "secret", "rm", "big")
	})

	// The CLI drops what swarm mode cannot do (build, network_mode...)
	// with a warning and deploys the rest.
	t.Run("stack options the CLI ignores", func(t *testing.T) {
		res := deployFile(t, "ign", `version: "3.8"
services:
  s:
    image: `+image+`
    build: .
    network_mode: host
    container_name: fixed
    deploy:
      replicas: 0
`)
		if res.Exit != 0 || !strings.Contains(res.Err, "Ignoring unsupported options: build") {
			t.Errorf("deploy: exit %d, %s", res.Exit, res.Err)
		}
		if out := must(t, "service", "inspect", "ign_s", "--format", "{{.Spec.Name}} {{.Spec.Mode.Replicated.Replicas}}"); out != "ign_s 0" {
			t.Errorf("ign_s: %q", out)
		}
		must(t, "stack", "rm", "ign")
		waitGone(t, "ign")
	})
	// What reaches shoal and it does not do is a 4xx naming it; refused
	// at the stack's first object, nothing is left.
	t.Run("stack network with an IPAM driver", func(t *testing.T) {
		res := deployFile(t, "badnet", `version: "3.8"
services:
  s:
    image: `+image+`
    networks: [good, n]
networks:
  good:
    driver: overlay
  n:
    driver: overlay
    ipam:
      driver: custom-ipam
`)
		refused(t, res, "shoal: only the default IPAM driver is supported on overlay networks")
		waitGone(t, "badnet")
	})
	t.Run("stack secret with a driver", func(t *testing.T) {
		must(t, "network", "create", "-d", "overlay", "ov2")
		res := deployFile(t, "badsec", `version: "3.8"
services:
  s:
    image: `+image+`
    networks: [outside]
    secrets: [vaulted]
networks:
  outside:
    external: true
    name: ov2
secrets:
  vaulted:
    driver: vault
`)
		refused(t, res, "secret driver vault is not supported")
		waitGone(t, "badsec")
	})
	// A service refused after the CLI made the stack's network and
	// secret: the CLI does not undo what it made before; shoal does, for
	// a stack that has no service yet (swarm mode leaves them).
	t.Run("stack service refused", func(t *testing.T) {
		res := deployFile(t, "badsvc", `version: "3.8"
services:
  s:
    image: `+image+`
    ports: ["8081:80"]
    secrets: [pw]
    deploy:
      endpoint_mode: dnsrr
secrets:
  pw:
    file: ./stack.yml
`)
		refused(t, res, "EndpointSpec: port published with ingress mode can't be used with dnsrr mode")
		if !strings.Contains(res.Out, "Creating network badsvc_default") || !strings.Contains(res.Out, "Creating secret badsvc_pw") {
			t.Errorf("the CLI did not make the network and secret first: %s", res.Out)
		}
		waitGone(t, "badsvc")
	})
	t.Logf("TestStackBadInput took %s", time.Since(began).Round(100*time.Millisecond))
}

// stdin runs the CLI 28 against the cluster with in on its stdin.
func stdin(t *testing.T, in string, args ...string) result {
	t.Helper()
	f := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(f, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return runStdin(t, r, args...)
}

// deployFile writes body as a stack file and deploys it as stack name.
func deployFile(t *testing.T, name, body string) result {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "stack.yml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return runIn(t.Context(), dir, cli28, host, "stack", "deploy", "-c", "stack.yml", name)
}
