package run

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// shoal manage with a data directory holding no store starts none until a
// call needs it (the first secret, config, service or task call); once the
// directory holds one, a restart starts it at once, before any call, so
// the kept services are served and orchestrated from the start.
func TestManageStoreStartsLazily(t *testing.T) {
	fleet, err := enginesim.StartFleet(1, func(int) enginesim.Options { return enginesim.Options{} })
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	dir := t.TempDir()
	run := func() (addr string, stop func()) {
		addr = freeAddr(t)
		c := manageConfig([]string{"tcp://" + addr}, fleet.NodesURI())
		c.DataDir = dir
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Manage(ctx, c) }()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := get("http://" + addr + "/_ping"); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("manage does not answer")
			}
		}
		return addr, func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Manage: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Manage did not return")
			}
		}
	}
	storeUp := func(addr string) bool {
		body, err := get("http://" + addr + "/metrics")
		return err == nil && strings.Contains(body, "shoal_store_is_leader 1")
	}

	addr, stop := run()
	if _, err := os.Stat(filepath.Join(dir, localDataDir)); err == nil {
		t.Error("a data directory without a store has one before any service call")
	}
	if storeUp(addr) {
		t.Error("the store runs before any call needed it")
	}
	resp, err := http.Post("http://"+addr+"/secrets/create", "application/json",
		strings.NewReader(`{"Name":"kept","Data":"c2VjcmV0"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("secret create: %s", resp.Status)
	}
	if !storeUp(addr) {
		t.Error("the store does not run after a secret call")
	}
	stop()

	addr, stop = run()
	defer stop()
	// No call yet: the store holding data started with shoal.
	if !storeUp(addr) {
		t.Error("after a restart, the store holding data did not start with shoal")
	}
	body, err := get("http://" + addr + "/secrets")
	if err != nil || !strings.Contains(body, `"kept"`) {
		t.Errorf("secrets after a restart: %q %v", body, err)
	}
}
