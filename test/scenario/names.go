package scenario

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
)

// NameRaces sends 20 creates of one new name at once: exactly one gets
// 201, every other 409 with dockerd's conflict message, and only one
// engine holds a container of that name. A second create of the name, on
// whichever node, is refused the same way.
func NameRaces(t *testing.T, env Env) {
	c := newClient(t, env.Shoal(t))
	name := uniq("race")
	type answer struct {
		status  int
		id, msg string
	}
	answers := make([]answer, 20)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			st, id, msg := c.create(name, env.spec())
			answers[i] = answer{st, id, msg}
		})
	}
	wg.Wait()
	var winner string
	for _, a := range answers {
		if a.status == http.StatusCreated {
			c.removeAtEnd(a.id)
			if winner != "" {
				t.Errorf("two creates of %s succeeded: %s and %s", name, winner, a.id)
			}
			winner = a.id
		}
	}
	if winner == "" {
		t.Fatalf("no create of %s succeeded: %+v", name, answers)
	}
	pending := 0
	for _, a := range answers {
		if a.status == http.StatusCreated {
			continue
		}
		// While the winner is still being created its ID is not known yet.
		if a.msg == conflict(name, "pending") {
			pending++
		}
		if a.status != http.StatusConflict || (a.msg != conflict(name, winner) && a.msg != conflict(name, "pending")) {
			t.Errorf("a losing create of %s: %d %q, want 409 %q", name, a.status, a.msg, conflict(name, winner))
		}
	}
	t.Logf("20 creates of %s: 1 created, 19 conflicts (%d while the winner was pending)", name, pending)
	if n := holders(t, env, name); n != 1 {
		t.Errorf("%d engines hold a container named %s, want 1", n, name)
	}
	for _, node := range env.Nodes {
		st, _, msg := c.create(name, env.spec("constraint:node=="+node))
		if st != http.StatusConflict || msg != conflict(name, winner) {
			t.Errorf("create of the taken name %s on %s: %d %q, want 409 %q", name, node, st, msg, conflict(name, winner))
		}
	}
}

// conflict is dockerd's answer to a create with a name in use.
func conflict(name, id string) string {
	return fmt.Sprintf("Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", name, id)
}

// holders counts the engines that hold a container called name.
func holders(t *testing.T, env Env, name string) int {
	n := 0
	for _, e := range env.Engines {
		if slices.Contains(names(t, e), "/"+name) {
			n++
		}
	}
	return n
}
