package shoaltest

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestRunCmd(t *testing.T) {
	res := RunCmd(exec.Command("sh", "-c", "echo out; echo err >&2; exit 3"))
	if res.Out != "out\n" || res.Err != "err\n" || res.Exit != 3 {
		t.Errorf("got %+v, want out, err and exit 3", res)
	}
	res = RunCmd(exec.Command("/nonexistent/shoaltest-cli"))
	if res.Exit != -1 || !strings.Contains(res.Err, "no such file") {
		t.Errorf("a command that cannot start: got %+v, want exit -1 and the reason", res)
	}
}

func TestDockerEnv(t *testing.T) {
	t.Setenv("DOCKER_TLS_VERIFY", "1")
	t.Setenv("SHOALTEST_KEPT", "yes")
	env := DockerEnv("tcp://h:1", "/cfg")
	for _, want := range []string{"DOCKER_HOST=tcp://h:1", "DOCKER_CONFIG=/cfg", "DOCKER_CLI_HINTS=false", "SHOALTEST_KEPT=yes"} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %s: %v", want, env)
		}
	}
	if slices.Contains(env, "DOCKER_TLS_VERIFY=1") {
		t.Errorf("the caller's DOCKER_ variables are kept: %v", env)
	}
}

func TestAPI(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
		}
		w.Write([]byte(r.Method + " " + r.URL.Path))
	}))
	defer srv.Close()
	host := "tcp://" + strings.TrimPrefix(srv.URL, "http://")
	if r := API(t, t.Context(), host, "POST", "/x", map[string]int{"a": 1}); r.Status != 200 || string(r.Body) != "POST /x" {
		t.Errorf("got %d %s", r.Status, r.Body)
	}
	srv.Close()
	if r := API(t, t.Context(), host, "GET", "/x", nil); r.Status != -1 || len(r.Body) == 0 {
		t.Errorf("no answer: got %d %s, want -1 and the error", r.Status, r.Body)
	}
}
