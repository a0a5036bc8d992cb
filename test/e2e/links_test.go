package e2e

import (
	"strings"
	"testing"
)

// `docker rm --link /web/db` removes the link on the engine holding web
// (the path names a parent and an alias, not a node and a container), and
// leaves both containers in place.
func TestRemoveLinkCLI(t *testing.T) {
	db, web := uniq("lkdb"), uniq("lkweb")
	rmf(t, web, db)
	dk(t, "run", "-d", "--name", db, "busybox", "sleep", "300")
	dk(t, "run", "-d", "--name", web, "--link", db+":db", "busybox", "sleep", "300")
	if out := dk(t, "inspect", "-f", "{{.HostConfig.Links}}", web); !strings.Contains(out, "/"+web+"/db") {
		t.Fatalf("links of %s before: %s", web, out)
	}
	dk(t, "rm", "--link", "/"+web+"/db")
	if out := dk(t, "inspect", "-f", "{{.HostConfig.Links}}", web); strings.Contains(out, "/db") {
		t.Errorf("links of %s after rm --link: %s", web, out)
	}
	for _, c := range []string{db, web} {
		if st := inspect(t, c).State.Status; st != "running" {
			t.Errorf("%s after rm --link: %s", c, st)
		}
	}
	// No such parent: the engine's 404, in its words.
	if e := dkFail(t, "rm", "--link", "/nosuch"+web+"/db"); !strings.Contains(e.stderr, "No such container") {
		t.Errorf("rm --link of a missing parent: %v", e)
	}
}
