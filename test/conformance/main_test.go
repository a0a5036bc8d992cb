// Package conformance runs the same scenarios, with real clients nobody here
// wrote, against one Docker engine directly and against shoal in front of two
// other engines, and reports where the two differ.
//
// Layout: one Bed of three engines. node1 is the reference engine, used
// directly; node2 and node3 form shoal's pool. Every scenario runs once per
// target and records observations (exit codes, normalised stdout/stderr,
// status codes, JSON key sets); the two lists are compared step by step.
// The docker-py, compose and CLI 28 scenarios also run against a built-in
// cluster (shoal init + shoal join --token) over node2 and node3, compared
// with the engine the same way (cluster_test.go).
// A difference fails the test unless it is listed in known (with the reason),
// and every comparison ends up in a Markdown summary written after the run
// (path in $SHOAL_CONFORMANCE_SUMMARY, default $TMPDIR/shoal-conformance.md).
//
// Clients: the docker CLI 28 (/usr/local/bin/docker, API 1.50), Debian's
// docker.io CLI 20.10 (/usr/bin/docker, API 1.41), docker-compose 1.29.2,
// python3-docker 5.0.3 (driven through testdata/sdk.py with /usr/bin/python3),
// the moby Go client, and raw HTTP. streams_test.go holds the concurrency test.
package conformance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

const (
	cli28   = "/usr/local/bin/docker"
	cli2010 = "/usr/bin/docker"
	python  = "/usr/bin/python3" // Debian's, with python3-docker 5.0.3 (not a pyenv one on PATH)
	compose = "/usr/bin/docker-compose"
)

// target is one Docker endpoint a scenario runs against.
type target struct {
	Name  string // "engine", "shoal" or "cluster"
	Host  string // DOCKER_HOST form: tcp://ip:port
	Shoal bool
}

var (
	bed    *testbed.Bed
	sh     *shoaltest.Shoal // shoal over node2, node3
	direct target           // node1
	pool   target           // shoal
	clus   target           // the built-in cluster over node2, node3
	cfgDir string           // DOCKER_CONFIG for the CLIs
)

func TestMain(m *testing.M) { os.Exit(mainRun(m)) }

func mainRun(m *testing.M) int {
	code := testbed.Main(m, testbed.MainOptions{Options: testbed.Options{Engines: 3, Prefix: "cnf"}}, func(tb testing.TB, b *testbed.Bed) {
		bed = b
		cfgDir = tb.TempDir()
		direct = target{Name: "engine", Host: bed.Engines[0].TCPAddr}
		sh = shoaltest.Manage(tb, poolNodes(), append([]string{"--debug"}, shoaltest.FastFlags...)...)
		pool = target{Name: "shoal", Host: sh.Host, Shoal: true}
		clus = startCluster(tb)
	})
	writeSummary()
	return code
}

func poolNodes() string {
	return "nodes://" + bed.Engines[1].TCPAddr + "," + bed.Engines[2].TCPAddr
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ---- observations and comparison ----

// obs is one observed fact of a scenario step, already normalised.
type obs struct{ Step, Val string }

// rec collects a scenario's observations against one target.
type rec struct {
	t   *testing.T
	tg  target
	obs []obs
}

func (r *rec) add(step, val string) { r.obs = append(r.obs, obs{step, val}) }

// row is one line of the summary.
type row struct {
	Client, Scenario, Step, Status, Engine, Shoal, Note string
	Target                                              string // "shoal" (manage) or "cluster"
}

var (
	repMu sync.Mutex
	rep   []row
)

// known lists differences that are by design, keyed "client/scenario/step"
// (a trailing * matches a prefix). A known difference is logged, not failed.
// A * matches any run of characters.
var known = map[string]string{
	"*/containers/inspect * [json keys]":                 "shoal adds \"Node\" to container inspect (as classic Swarm did): where the container runs",
	"*/images/load -i <dir>/bb.tar [stdout]":             "load goes to every healthy node; the progress names each node (docs/api.md)",
	"*/networks-volumes/network create * [stderr]":       "network names are unique in the cluster; the conflict says which node holds the name",
	"api/version/GET /v1.12/version":                     "shoal's minimum API version is 1.40 (dockerd 20.10 accepts 1.12)",
	"api/version/GET /v9.99/version":                     "the error names shoal's maximum API version (1.56), not the engine's",
	"api/*/POST /containers/create (bad json) *":         "shoal answers 400 for malformed JSON as current dockerd does; dockerd 20.10 answered 500",
	"api/*/GET /containers/json?filters=bad *":           "shoal answers 400 for malformed filters as current dockerd does; dockerd 20.10 answered 500",
	"api/*/POST /networks/create (same name) [error]":    "network names are unique in the cluster; the conflict says which node holds the name",
	"api/*/GET /containers/{id}/json?size=1 [json keys]": "shoal adds \"Node\" to container inspect (as classic Swarm did)",
	"python-sdk/*/networks.create duplicate":             "network names are unique in the cluster; the conflict says which node holds the name",
	"moby/*/ContainerInspect [json keys]":                "shoal adds \"Node\" to container inspect (as classic Swarm did)",
	"python-sdk/*/container.attrs [json keys]":           "shoal adds \"Node\" to container inspect (as classic Swarm did)",
	"api/*/GET /containers/{id}/json [json keys]":        "shoal adds \"Node\" to container inspect (as classic Swarm did)",
	"api/*/GET /events?since=bad *":                      "shoal answers 400 for a malformed since/until before streaming; dockerd 20.10 answered 500 with Go's strconv error",
	"api/*/GET /networks [json keys]":                    "shoal adds \"Node\" to each listed network and volume: the node it is on (its Name stays the engine's; docs/api.md)",
}

// knownOnCluster lists the differences by design of the built-in cluster
// only (its target is a swarm manager), keyed as known.
var knownOnCluster = map[string]string{
	"python-sdk/*/leave_swarm() outside a swarm":           "a built-in cluster's manager is in a swarm: leaving without force is refused with swarm mode's 503 for a manager",
	"python-sdk/*/swarm.leave(force=True) outside a swarm": "not run against a built-in cluster: forced, its manager would leave it, as on swarm mode",
	"cli28/system/info --format {{json .}} [json keys]":    "a built-in cluster's manager is in a swarm: docker info's Swarm section has Cluster, Managers and Nodes, as on a swarm mode manager",
}

func knownReason(key string) (string, bool) {
	return knownIn(known, key)
}

func knownIn(known map[string]string, key string) (string, bool) {
	for k, r := range known {
		re := "^" + strings.ReplaceAll(regexp.QuoteMeta(k), `\*`, ".*") + "$"
		if regexp.MustCompile(re).MatchString(key) {
			return r, true
		}
	}
	return "", false
}

// conform runs scenario against the engine, then against shoal (and the
// built-in cluster, see onCluster), and compares each with the engine.
func conform(t *testing.T, client, scenario string, fn func(r *rec)) {
	t.Helper()
	tgs := []target{direct, pool}
	if runsOnCluster(client, scenario) {
		tgs = append(tgs, clus)
	}
	res := make([][]obs, len(tgs))
	for i, tg := range tgs {
		r := &rec{t: t, tg: tg}
		fn(r)
		res[i] = r.obs
	}
	for i := 1; i < len(tgs); i++ {
		compare(t, client, scenario, tgs[i].Name, res[0], res[i])
	}
}

func compare(t *testing.T, client, scenario, tname string, e, s []obs) {
	t.Helper()
	em := map[string]string{}
	var order []string
	for _, o := range e {
		if _, dup := em[o.Step]; !dup {
			order = append(order, o.Step)
		}
		em[o.Step] = o.Val
	}
	sm := map[string]string{}
	for _, o := range s {
		if _, ok := em[o.Step]; !ok {
			if _, dup := sm[o.Step]; !dup {
				order = append(order, o.Step)
			}
		}
		sm[o.Step] = o.Val
	}
	pass, ndiff := 0, 0
	for _, step := range order {
		ev, eok := em[step]
		sv, sok := sm[step]
		if !eok {
			ev = "(not observed)"
		}
		if !sok {
			sv = "(not observed)"
		}
		r := row{Client: client, Scenario: scenario, Step: step, Engine: ev, Shoal: sv, Target: tname}
		key := client + "/" + scenario + "/" + step
		switch {
		case eok && sok && ev == sv:
			r.Status = "same"
			pass++
		default:
			ndiff++
			why, ok := knownReason(key)
			if !ok && tname == clus.Name {
				why, ok = knownIn(knownOnCluster, key)
			}
			if ok {
				r.Status, r.Note = "known", why
				if strings.HasSuffix(step, "[json keys]") {
					r.Engine, r.Shoal = setDiff(ev, sv), setDiff(sv, ev)
					ev, sv = "only here: "+r.Engine, "only here: "+r.Shoal
				}
				t.Logf("KNOWN DIFF (%s) %s: %s\n  engine: %s\n  %s: %s", tname, key, why, short(ev), tname, short(sv))
			} else {
				r.Status = "DIFF"
				t.Errorf("DIFF (%s) %s\n  engine: %s\n  %s: %s", tname, key, short(ev), tname, short(sv))
				if strings.HasSuffix(step, "[json keys]") {
					r.Engine, r.Shoal = setDiff(ev, sv), setDiff(sv, ev)
					t.Errorf("  keys only on the engine: %s\n  keys only through %s: %s", r.Engine, tname, r.Shoal)
				}
			}
		}
		repMu.Lock()
		rep = append(rep, r)
		repMu.Unlock()
	}
	t.Logf("%s/%s (%s): %d steps the same, %d different", client, scenario, tname, pass, ndiff)
}

// label is the summary's client column: the client, and the target when
// it is the built-in cluster.
func (r row) label() string {
	if r.Target == "cluster" {
		return r.Client + " (cluster)"
	}
	return r.Client
}

// setDiff lists the space-separated words of a that b lacks.
func setDiff(a, b string) string {
	in := map[string]bool{}
	for _, w := range strings.Fields(b) {
		in[w] = true
	}
	var out []string
	for _, w := range strings.Fields(a) {
		if !in[w] {
			out = append(out, w)
		}
	}
	if len(out) == 0 {
		return "(none)"
	}
	return strings.Join(out, " ")
}

func short(s string) string {
	if len(s) > 600 {
		return s[:600] + "…"
	}
	return s
}

// note records a result that is not an engine-vs-shoal comparison (streams).
func note(client, scenario, step, status, detail string) {
	repMu.Lock()
	defer repMu.Unlock()
	rep = append(rep, row{Client: client, Scenario: scenario, Step: step, Status: status, Shoal: detail})
}

func writeSummary() {
	repMu.Lock()
	defer repMu.Unlock()
	path := os.Getenv("SHOAL_CONFORMANCE_SUMMARY")
	if path == "" {
		path = filepath.Join(os.TempDir(), "shoal-conformance.md")
	}
	type agg struct{ same, known, diff int }
	per := map[string]*agg{}
	var clients []string
	for _, r := range rep {
		a := per[r.label()]
		if a == nil {
			a = &agg{}
			per[r.label()] = a
			clients = append(clients, r.label())
		}
		switch r.Status {
		case "same", "ok":
			a.same++
		case "known":
			a.known++
		default:
			a.diff++
		}
	}
	sort.Strings(clients)
	var b strings.Builder
	fmt.Fprintf(&b, "# shoal conformance summary (%s)\n\n", time.Now().UTC().Format(time.RFC3339))
	b.WriteString("| client | same/ok | known differences | differences |\n|---|---|---|---|\n")
	for _, c := range clients {
		a := per[c]
		fmt.Fprintf(&b, "| %s | %d | %d | %d |\n", c, a.same, a.known, a.diff)
	}
	b.WriteString("\n## Differences\n\n| client | scenario | step | status | engine | shoal | note |\n|---|---|---|---|---|---|---|\n")
	cell := func(s string) string {
		s = strings.ReplaceAll(short(s), "|", "\\|")
		return strings.ReplaceAll(s, "\n", "⏎")
	}
	for _, r := range rep {
		if r.Status == "same" || r.Status == "ok" {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.label(), r.Scenario, r.Step, r.Status, cell(r.Engine), cell(r.Shoal), cell(r.Note))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "conformance: summary:", err)
	}
	fmt.Fprintf(os.Stderr, "conformance summary written to %s\n", path)
	fmt.Fprintln(os.Stderr, strings.SplitN(b.String(), "\n## Differences", 2)[0])
}
