package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// DockerCLI is the docker client binary used by Bed.Docker.
var DockerCLI = "/usr/local/bin/docker"

// Docker runs the docker CLI against host (e.g. an Engine's TCPAddr, a
// "unix://..." address, or shoal's address) with DOCKER_CONFIG pointing at a
// private empty dir. If host is one of the Bed's TLS addresses, or tcp://...:2376
// while the Bed has TLS, the generated client certificate is used.
func (b *Bed) Docker(ctx context.Context, host string, args ...string) (stdout, stderr string, err error) {
	return b.DockerStdin(ctx, nil, host, args...)
}

// DockerStdin is Docker with stdin.
func (b *Bed) DockerStdin(ctx context.Context, stdin io.Reader, host string, args ...string) (stdout, stderr string, err error) {
	cfg := filepath.Join(b.Dir, "dockercfg")
	if err := os.MkdirAll(cfg, 0o700); err != nil {
		return "", "", err
	}
	cmd := exec.CommandContext(ctx, DockerCLI, args...)
	env := []string{"DOCKER_HOST=" + host, "DOCKER_CONFIG=" + cfg, "DOCKER_CLI_HINTS=false"}
	if b.TLS != nil && b.isTLSHost(host) {
		env = append(env, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH="+b.TLS.ClientDir)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.Stdin = stdin
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("docker %s (DOCKER_HOST=%s): %w: %s", strings.Join(args, " "), host, err, strings.TrimSpace(e.String()))
	}
	return o.String(), e.String(), err
}

func (b *Bed) isTLSHost(host string) bool {
	for _, e := range b.Engines {
		if e.TLSAddr != "" && host == e.TLSAddr {
			return true
		}
	}
	return strings.HasPrefix(host, "tcp://") && strings.HasSuffix(host, fmt.Sprintf(":%d", TLSPort))
}

// Client returns an HTTP client that talks to engine i over its unix socket;
// use URLs like "http://docker/_ping".
func (b *Bed) Client(i int) *http.Client { return unixClient(b.Engines[i].Socket) }

// Info returns engine i's GET /info (over its unix socket) decoded into a map.
func (b *Bed) Info(ctx context.Context, i int) (map[string]any, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://docker/info", nil)
	resp, err := b.Client(i).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET /info: %s: %s", resp.Status, body)
	}
	var m map[string]any
	return m, json.NewDecoder(resp.Body).Decode(&m)
}

// BusyboxTag is the tag LoadBusybox gives the image.
const BusyboxTag = "busybox:latest"

// BusyboxPath writes (once) the busybox image archive into the Bed's dir and
// returns its path.
func (b *Bed) BusyboxPath() (string, error) {
	p := filepath.Join(b.Dir, "busybox.tar")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := BusyboxTar(p, BusyboxTag); err != nil {
		return "", err
	}
	return p, nil
}

// LoadBusybox loads the busybox image (tagged busybox:latest) into engine i
// through its unix socket (POST /images/load).
func (b *Bed) LoadBusybox(ctx context.Context, i int) error {
	p, err := b.BusyboxPath()
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://docker/images/load?quiet=1", f)
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := b.Client(i).Do(req)
	if err != nil {
		return fmt.Errorf("testbed: load busybox into engine %d: %w", i, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || bytes.Contains(body, []byte(`"error"`)) {
		return fmt.Errorf("testbed: load busybox into engine %d: %s: %s", i, resp.Status, body)
	}
	return nil
}

// LoadBusyboxAll loads the busybox image into every engine.
func (b *Bed) LoadBusyboxAll(ctx context.Context) error {
	for i := range b.Engines {
		if err := b.LoadBusybox(ctx, i); err != nil {
			return err
		}
	}
	return nil
}
