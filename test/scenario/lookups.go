package scenario

import (
	"net/http"
	"testing"
)

// Lookups finds one container by every reference a client may use: full
// ID, a 12- and a 5-character prefix, name, /name, node/name and
// /node/name, with one container of the same kind on every node; an
// unknown reference is a 404 with dockerd's message. The containers are
// only created: lookups do not need them running.
func Lookups(t *testing.T, env Env) {
	c := newClient(t, env.Shoal(t))
	ids := map[string]string{} // node → ID
	nameOf := map[string]string{}
	for _, node := range env.Nodes {
		name := uniq("look")
		ids[node] = c.created(name, env.spec("constraint:node=="+node))
		nameOf[node] = name
	}
	node := env.Nodes[len(env.Nodes)-1]
	id, name := ids[node], nameOf[node]
	for _, ref := range []string{id, id[:12], id[:5], name, "/" + name, node + "/" + name, "/" + node + "/" + name} {
		st, in, b := c.inspect(ref)
		if st != http.StatusOK || in.ID != id {
			t.Errorf("inspect %q: %d %.200s, want %s", ref, st, b, id)
			continue
		}
		if in.Name != "/"+name || in.Node == nil || in.Node.Name != node {
			t.Errorf("inspect %q: name %q on %+v, want /%s on %s", ref, in.Name, in.Node, name, node)
		}
	}
	ref := uniq("nosuch")
	st, _, b := c.inspect(ref)
	if msg := message(t, st, b); st != http.StatusNotFound || msg != "No such container: "+ref {
		t.Errorf("inspect %s: %d %q, want 404 %q", ref, st, msg, "No such container: "+ref)
	}
}
