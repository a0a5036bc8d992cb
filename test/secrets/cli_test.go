package secrets

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// sleeper stops at once on SIGTERM (a bare sleep as PID 1 ignores it).
var sleeper = []string{"sh", "-c", "trap exit TERM; sleep 3600 & wait"}

// TestSecretsCLI: secret and config create, ls, inspect, update (API),
// rm, and the refusals (a name taken, a bad name, data too large, an
// unknown one, one in use by a service) through the CLI 28 and the API,
// compared with swarm mode.
func TestSecretsCLI(t *testing.T) {
	big := strings.Repeat("x", 500*1024) // swarm mode's limit is "less than 500 KiB"
	scenario(t, func(t *testing.T, r *rec) {
		tg := r.tg
		t.Cleanup(func() {
			runCLI(t.Context(), tg.Host, nil, "service", "rm", "sweb")
			runCLI(t.Context(), tg.Host, nil, "secret", "rm", "pw", "other")
			runCLI(t.Context(), tg.Host, nil, "config", "rm", "conf")
		})
		r.cli("eo", "hunter2", "secret", "create", "--label", "env=prod", "pw", "-")
		r.cli("eo", "s3", "secret", "create", "other", "-")
		r.cli("er", "again", "secret", "create", "pw", "-")
		r.cli("er", "x", "secret", "create", "bad_", "-")
		r.cli("er", "x", "secret", "create", strings.Repeat("a", 65), "-")
		r.cli("er", big, "secret", "create", "big", "-")
		r.add("secret ls [header]", norm(strings.SplitN(r.cli("e", "", "secret", "ls").Out, "\n", 2)[0]))
		r.cli("eo", "", "secret", "ls", "--format", "{{.Name}} {{.Driver}} {{.Labels}}")
		r.cli("eo", "", "secret", "ls", "--filter", "name=p", "--format", "{{.Name}}")
		r.cli("eo", "", "secret", "ls", "--filter", "label=env=prod", "--format", "{{.Name}}")
		r.cli("ek", "", "secret", "inspect", "pw")
		r.cli("eo", "", "secret", "inspect", "--format", "{{json .Spec}}", "pw")
		r.cli("er", "", "secret", "inspect", "nope")

		r.cli("eo", "a=1\n", "config", "create", "--label", "k=v", "conf", "-")
		r.cli("er", "b", "config", "create", "conf", "-")
		r.cli("eo", "", "config", "ls", "--format", "{{.Name}} {{.Labels}}")
		r.cli("ek", "", "config", "inspect", "conf")
		r.cli("eo", "", "config", "inspect", "--format", "{{json .Spec}}", "conf")

		var sec struct {
			ID      string
			Version struct{ Index uint64 }
		}
		res := api(t, tg, "GET", "/v1.41/secrets/pw", nil)
		if err := json.Unmarshal(res.Body, &sec); err != nil {
			t.Fatalf("inspect pw: %s", res.Body)
		}
		upd := "/v1.41/secrets/" + sec.ID + "/update?version="
		r.add("update data", errForm(api(t, tg, "POST", upd+strconv.FormatUint(sec.Version.Index, 10), map[string]any{"Name": "pw", "Data": "eHg="})))
		r.add("update labels", errForm(api(t, tg, "POST", upd+strconv.FormatUint(sec.Version.Index, 10), map[string]any{"Name": "pw", "Labels": map[string]string{"env": "dev"}})))
		r.add("update stale", errForm(api(t, tg, "POST", upd+strconv.FormatUint(sec.Version.Index, 10), map[string]any{"Name": "pw"})))
		r.add("update bad version", errForm(api(t, tg, "POST", upd+"x", map[string]any{"Name": "pw"})))
		r.cli("eo", "", "secret", "inspect", "--format", "{{json .Spec.Labels}}", "pw")
		r.add("list bad filter", errForm(api(t, tg, "GET", `/v1.41/secrets?filters={"nope":["x"]}`, nil)))

		create := append([]string{"service", "create", "-d", "--quiet", "--name", "sweb", "--secret", "pw", "--secret", "source=other,target=o2",
			"--config", "src=conf,target=/etc/c.conf,mode=0440", "busybox"}, sleeper...)
		r.cli("e", "", create...)
		r.cli("er", "", "secret", "rm", "pw")
		r.cli("er", "", "config", "rm", "conf")
		r.cli("eo", "", "service", "inspect", "--format", "{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{.SecretName}} {{json .File}} {{end}}{{range .Spec.TaskTemplate.ContainerSpec.Configs}}{{.ConfigName}} {{json .File}}{{end}}", "sweb")
		r.cli("e", "", "service", "rm", "sweb")
		r.cli("eo", "", "secret", "rm", "pw", "other")
		r.cli("eo", "", "config", "rm", "conf")
		r.cli("er", "", "secret", "rm", "pw")
		r.cli("eo", "", "secret", "ls", "-q")
	})
}
