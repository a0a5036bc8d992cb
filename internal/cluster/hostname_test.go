package cluster

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// A node given no name takes its engine's (the host its containers run
// on), and this host's when the engine does not answer: a node whose shoal
// runs in another UTS namespace than its engine showed the wrong name in
// node ls, and constraint:node==<that name> matched no engine.
func TestNodeHostnameIsTheEngines(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/info" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ID":"x","Name":"engine-host","NCPU":2}`))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	c := &Cluster{cfg: Config{Engine: "unix://" + sock}}
	if got := c.nodeHostname(t.Context()); got != "engine-host" {
		t.Errorf("with an engine answering: %q, want engine-host", got)
	}
	own, _ := os.Hostname()
	c = &Cluster{cfg: Config{Engine: "unix://" + filepath.Join(t.TempDir(), "none.sock")}}
	if got := c.nodeHostname(t.Context()); got != own {
		t.Errorf("with no engine: %q, want this host's %q", got, own)
	}
	c.cfg.Hostname = "engine-host"
	if got := c.localNames(); len(got) != 2 || got[0] != "engine-host" || got[1] != own {
		t.Errorf("localNames %q", got)
	}
}
