package scenario

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

// Rescheduling kills the first engine under a shoal that reschedules after
// 2 s: a container that asks for it (label form) and only prefers that node
// is recreated and started on another node; one that asks for it (env form)
// but is pinned there by a hard constraint, and one that does not ask, stay
// put. It needs env.Kill and two engines or more. It returns the name of
// the moved container and the node it moved to, for callers that go on
// (e.g. bring the engine back).
func Rescheduling(t *testing.T, env Env) (name, node string) {
	if env.Kill == nil || len(env.Nodes) < 2 {
		t.Fatal("Rescheduling needs env.Kill and two engines or more")
	}
	c := newClient(t, env.Shoal(t, append([]string{"--reschedule-after", "2s"}, shoaltest.FastFlags...)...))
	first := env.Nodes[0]
	pinned, plain, mover := uniq("rs"), uniq("plain"), uniq("rs2")
	c.run(pinned, env.spec("reschedule:on-node-failure", "constraint:node=="+first))
	c.run(plain, env.spec("constraint:node=="+first))
	s := env.spec("constraint:node==~" + first)
	s.Labels = map[string]string{"com.docker.swarm.reschedule-policies": `["on-node-failure"]`}
	if got := c.nodeOf(c.run(mover, s)); got != first {
		t.Fatalf("%s placed on %s, want %s (its soft preference)", mover, got, first)
	}

	env.Kill(t, 0)
	start := time.Now()
	var moved string
	shoaltest.Eventually(t, 40*time.Second, mover+" running on another node", func() error {
		var err error
		moved, err = runningElsewhere(c, mover, first)
		return err
	})
	t.Logf("%s rescheduled to %s %v after its engine was killed", mover, moved, time.Since(start).Round(100*time.Millisecond))
	c.removeAtEnd(moved + "/" + mover)
	for i, e := range env.Engines[1:] {
		have := names(t, e)
		for _, n := range []string{pinned, plain} {
			if slices.Contains(have, "/"+n) {
				t.Errorf("%s was recreated on %s", n, env.Nodes[i+1])
			}
		}
	}
	return mover, moved
}

// runningElsewhere returns the node, other than not, where shoal lists a
// running container called name.
func runningElsewhere(c *client, name, not string) (string, error) {
	f, _ := json.Marshal(map[string][]string{"name": {name}})
	st, b := c.do(http.MethodGet, "/containers/json?all=1&filters="+url.QueryEscape(string(f)), nil)
	if st != http.StatusOK {
		return "", fmt.Errorf("ps: %d %s", st, b)
	}
	var cs []struct {
		Names []string
		State string
	}
	if err := json.Unmarshal(b, &cs); err != nil {
		return "", err
	}
	for _, x := range cs {
		for _, n := range x.Names {
			node, rest, ok := strings.Cut(strings.TrimPrefix(n, "/"), "/")
			if ok && rest == name && node != not && x.State == "running" {
				return node, nil
			}
		}
	}
	return "", fmt.Errorf("ps: %s", b)
}
