package shoaltest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// CLIResult is one run of a client command.
type CLIResult struct {
	Out, Err string
	Exit     int
}

// RunCmd runs cmd, capturing its output: Exit is its exit code, or -1
// (the reason appended to Err) when it gave none, as when it could not
// start.
func RunCmd(cmd *exec.Cmd) CLIResult {
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		e.WriteString(err.Error())
	}
	return CLIResult{o.String(), e.String(), code}
}

// DockerEnv is the environment of a docker CLI run against host with the
// config dir cfg: the test's own environment without any DOCKER_ variable
// of the caller's (they would change what the CLI does), and no hints.
func DockerEnv(host, cfg string) []string {
	env := []string{"DOCKER_HOST=" + host, "DOCKER_CONFIG=" + cfg, "DOCKER_CLI_HINTS=false"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			env = append(env, kv)
		}
	}
	return env
}

// APIResp is one raw HTTP call.
type APIResp struct {
	Status int
	Body   []byte
}

var apiClient = &http.Client{Timeout: time.Minute}

// API sends a request to the API at host (tcp://addr or addr): body is
// marshalled unless it is a string (sent as is). A call that gets no
// answer is Status -1 with the error as Body.
func API(tb testing.TB, ctx context.Context, host, method, path string, body any) APIResp {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+strings.TrimPrefix(host, "tcp://")+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return APIResp{Status: -1, Body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return APIResp{resp.StatusCode, b}
}
