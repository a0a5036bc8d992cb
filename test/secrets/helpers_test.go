package secrets

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

// cliResult is one CLI run.
type cliResult = shoaltest.CLIResult

// runCLI runs the docker CLI 28 against host, with stdin when not nil.
func runCLI(ctx context.Context, host string, stdin io.Reader, args ...string) cliResult {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli28, args...)
	cmd.Env, cmd.Stdin = shoaltest.DockerEnv(host, cfgDir), stdin
	return shoaltest.RunCmd(cmd)
}

// mustDocker runs the CLI against tg and fails the test on an error.
func mustDocker(t *testing.T, tg *target, args ...string) string {
	t.Helper()
	res := runCLI(t.Context(), tg.Host, nil, args...)
	if res.Exit != 0 {
		t.Fatalf("%s: docker %s: exit %d: %s", tg.Name, strings.Join(args, " "), res.Exit, res.Err)
	}
	return res.Out
}

// apiResp is one raw HTTP call.
type apiResp = shoaltest.APIResp

// api sends a request to tg's API (a string body as is, else JSON).
func api(t *testing.T, tg *target, method, path string, body any) apiResp {
	t.Helper()
	return shoaltest.API(t, t.Context(), tg.Host, method, path, body)
}

// errForm is the status and normalised message of an answer.
func errForm(r apiResp) string {
	var m struct{ Message string }
	if json.Unmarshal(r.Body, &m) == nil && m.Message != "" {
		return fmt.Sprintf("%d %s", r.Status, norm(m.Message))
	}
	return fmt.Sprintf("%d %s", r.Status, norm(string(r.Body)))
}

var (
	reID25   = regexp.MustCompile(`\b[0-9a-z]{25}\b`)
	reID12   = regexp.MustCompile(`\b[0-9a-z]{12}\b`)
	reTime   = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	reAgo    = regexp.MustCompile(`(?i)\b(about an? \w+|less than a second|\d+ \w+) ago\b`)
	reSpaces = regexp.MustCompile(`[ \t]+`)
)

// norm makes output comparable: IDs, times, ages and runs of spaces.
func norm(s string) string {
	s = reID25.ReplaceAllString(s, "<id>")
	s = reID12.ReplaceAllStringFunc(s, func(w string) string {
		if strings.ContainsAny(w, "0123456789") {
			return "<id>"
		}
		return w
	})
	s = reTime.ReplaceAllString(s, "<time>")
	s = reAgo.ReplaceAllString(s, "<ago>")
	s = reSpaces.ReplaceAllString(s, " ")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// keyShape lists the JSON key paths of data (labels are data, not shape).
func keyShape(data []byte) string {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return "not JSON: " + norm(string(data))
	}
	return shoaltest.KeyPaths(v, 4, func(p string) bool { return strings.HasSuffix(p, ".Labels") })
}

// obs is one observed fact of a scenario, already normalised.
type obs = shoaltest.Obs

// rec collects a scenario's observations against one target.
type rec struct {
	t   *testing.T
	tg  *target
	obs []obs
}

func (r *rec) add(step, val string) { r.obs = shoaltest.AddStep(r.obs, step, val) }

// cli runs the CLI with stdin and records what is asked: e exit code, o
// stdout, r stderr, k JSON key shape of stdout.
func (r *rec) cli(what string, stdin string, args ...string) cliResult {
	r.t.Helper()
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	res := runCLI(r.t.Context(), r.tg.Host, in, args...)
	step := strings.Join(args, " ")
	for _, w := range what {
		switch w {
		case 'e':
			r.add(step+" [exit]", strconv.Itoa(res.Exit))
		case 'o':
			r.add(step+" [stdout]", norm(res.Out))
		case 'r':
			r.add(step+" [stderr]", norm(res.Err))
		case 'k':
			r.add(step+" [json keys]", keyShape([]byte(res.Out)))
		}
	}
	return res
}

// scenario runs fn against every target, then compares shoal's
// observations with swarm mode's: the live ones when swarm mode ran, else
// those recorded in testdata/swarm.
func scenario(t *testing.T, fn func(t *testing.T, r *rec)) {
	got := map[string][]obs{}
	for _, tg := range targets {
		t.Run(tg.Name, func(t *testing.T) {
			r := &rec{t: t, tg: tg}
			fn(t, r)
			got[tg.Name] = r.obs
		})
	}
	golden := filepath.Join("testdata", "swarm", strings.ReplaceAll(t.Name(), "/", "_")+".json")
	ref, live := got["swarm"]
	switch {
	case live && !t.Failed() && *update:
		data, err := json.MarshalIndent(ref, "", "  ")
		if err == nil {
			err = os.WriteFile(golden, append(data, '\n'), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	case !live:
		data, err := os.ReadFile(golden)
		if err == nil {
			err = json.Unmarshal(data, &ref)
		}
		if err != nil {
			t.Fatalf("no recorded swarm-mode observations (record them: SHOAL_COMPARE_SWARM=1 go test ./test/secrets -run '^%s$' -args -update): %v", t.Name(), err)
		}
	}
	compare(t, ref, got["shoal"])
}

// known lists the differences from swarm mode that are by design, keyed
// by step, with the reason; they are logged, not failed.
var known = map[string]string{}

// unordered lists the steps whose output is a list in no set order:
// `docker service create --secret a --secret b` builds the service's
// secret references from a map (the CLI's ParseSecrets), so their order
// in the spec differs from one create to the next, in swarm mode too.
var unordered = []string{"service inspect --format {{range .Spec.TaskTemplate.ContainerSpec.Secrets}}"}

// entry is one "name {json}" item of such a list.
var entry = regexp.MustCompile(`\S+ \{[^}]*\}`)

// canon is an observation with the items of an unordered list sorted.
func canon(step, val string) string {
	for _, p := range unordered {
		if strings.HasPrefix(step, p) {
			items := entry.FindAllString(val, -1)
			slices.Sort(items)
			return strings.Join(items, " ")
		}
	}
	return val
}

// compare fails each step where shoal's observation differs from swarm
// mode's.
func compare(t *testing.T, swarm, shoal []obs) {
	t.Helper()
	sm := map[string]string{}
	for _, o := range shoal {
		sm[o.Step] = o.Val
	}
	same := 0
	for _, o := range swarm {
		v, ok := sm[o.Step]
		switch {
		case ok && canon(o.Step, v) == canon(o.Step, o.Val):
			same++
		case known[o.Step] != "":
			t.Logf("KNOWN DIFF %s (%s)\n  swarm: %s\n  shoal: %s", o.Step, known[o.Step], o.Val, v)
		default:
			t.Errorf("DIFF %s\n  swarm: %s\n  shoal: %s", o.Step, o.Val, v)
		}
	}
	t.Logf("swarm vs shoal: %d of %d steps the same", same, len(swarm))
}

// waitFor polls f until it returns nil or within passes.
func waitFor(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	shoaltest.Poll(t, 200*time.Millisecond, within, what, f)
}
