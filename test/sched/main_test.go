// Package sched tests placement end to end: real engines with labels, the
// real shoal binary, the real docker CLI.
package sched

import (
	"context"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

// bed is shared by the tests that do not stop engines: node1 zone=a
// storage=ssd, node2 zone=b storage=disk, node3 zone=c storage=ssd.
var bed *testbed.Bed

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	return testbed.Main(m, testbed.MainOptions{Options: testbed.Options{
		Engines: 3, Prefix: "sch",
		Labels: []map[string]string{{"zone": "a", "storage": "ssd"}, {"zone": "b", "storage": "disk"}, {"zone": "c", "storage": "ssd"}},
	}}, func(_ testing.TB, b *testbed.Bed) { bed = b })
}

func nodes(b *testbed.Bed) string { return "nodes://" + strings.Join(b.Hosts(), ",") }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// run runs `docker run -d` through s and fails the test if it fails.
func mustRun(t *testing.T, s *shoaltest.Shoal, args ...string) string {
	t.Helper()
	out, errOut, err := s.Docker(ctxT(t), append([]string{"run", "-d"}, args...)...)
	if err != nil {
		t.Fatalf("docker run %v: %v: %s", args, err, errOut)
	}
	return strings.TrimSpace(out)
}

// nodeOf says which node a container runs on, from shoal's inspect.
func nodeOf(t *testing.T, s *shoaltest.Shoal, ref string) string {
	t.Helper()
	out, errOut, err := s.Docker(ctxT(t), "inspect", "-f", "{{.Node.Name}}", ref)
	if err != nil {
		t.Fatalf("inspect %s: %v: %s", ref, err, errOut)
	}
	return strings.TrimSpace(out)
}

// cleanup removes every container through shoal when the test ends.
func cleanup(t *testing.T, s *shoaltest.Shoal) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, _, _ := s.Docker(ctx, "ps", "-aq")
		if ids := strings.Fields(out); len(ids) > 0 {
			if _, e, err := s.Docker(ctx, append([]string{"rm", "-f"}, ids...)...); err != nil {
				t.Logf("cleanup: %v %s", err, e)
			}
		}
	})
}

// counts returns how many containers each node holds, sorted descending.
func counts(t *testing.T, s *shoaltest.Shoal, refs []string) []int {
	t.Helper()
	per := map[string]int{}
	for _, r := range refs {
		per[nodeOf(t, s, r)]++
	}
	var c []int
	for _, n := range []string{"node1", "node2", "node3"} {
		c = append(c, per[n])
	}
	sort.Sort(sort.Reverse(sort.IntSlice(c)))
	return c
}

func runFails(t *testing.T, s *shoaltest.Shoal, want string, args ...string) {
	t.Helper()
	out, errOut, err := s.Docker(ctxT(t), append([]string{"run", "-d"}, args...)...)
	if err == nil {
		t.Fatalf("docker run %v succeeded (%s); want failure %q", args, out, want)
	}
	if !strings.Contains(errOut, want) {
		t.Fatalf("docker run %v: stderr %q does not contain %q", args, errOut, want)
	}
}
