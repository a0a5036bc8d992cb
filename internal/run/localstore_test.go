package run

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

func openLocalT(t *testing.T, dir string) *localStore {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	st, err := openLocalStore(ctx, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Logf("local store opened in %s", time.Since(start).Round(time.Millisecond))
	return st
}

// A service written to manage's store is there after a restart from the
// same directory, on new ports, with the CA made the first time.
func TestLocalStoreSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manage")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st := openLocalT(t, dir)
	firstURL := st.Client().Endpoints()[0]
	if _, err := store.NewServices(st.Store).Create(ctx, "svc1", swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "web"}}, time.Now()); err != nil {
		t.Fatalf("create: %v", err)
	}
	caBefore, err := os.ReadFile(filepath.Join(dir, localCADir, "swarm-root-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	// Hold the first client port so the restart cannot reuse it.
	if l, err := net.Listen("tcp", strings.TrimPrefix(firstURL, "https://")); err == nil {
		defer l.Close()
	}
	st = openLocalT(t, dir)
	defer st.Close()
	if st.Client().Endpoints()[0] == firstURL {
		t.Fatalf("restart reused client URL %s while it was taken", firstURL)
	}
	got, err := store.NewServices(st.Store).Get(ctx, "svc1")
	if err != nil || got.Spec.Name != "web" {
		t.Fatalf("after restart: get = %+v, %v", got, err)
	}
	caAfter, _ := os.ReadFile(filepath.Join(dir, localCADir, "swarm-root-ca.crt"))
	if string(caAfter) != string(caBefore) {
		t.Error("the store's CA was made anew at restart")
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
}

// A second shoal on the same directory is refused at once, naming the flag.
func TestLocalStoreLocked(t *testing.T) {
	dir := t.TempDir()
	st := openLocalT(t, dir)
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := openLocalStore(ctx, dir, slog.New(slog.DiscardHandler))
	if !errors.Is(err, ErrDataDirLocked) {
		t.Fatalf("second open: %v, want ErrDataDirLocked", err)
	}
	if !strings.Contains(err.Error(), "--data-dir") || !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q should name --data-dir and %s", err, dir)
	}
	if ctx.Err() != nil {
		t.Error("the second open waited instead of failing at once")
	}
}

// The lock goes with Close: the next shoal may use the directory.
func TestLocalStoreReleasedOnClose(t *testing.T) {
	dir := t.TempDir()
	openLocalT(t, dir).Close()
	openLocalT(t, dir).Close()
}

func TestDefaultManageDataDir(t *testing.T) {
	d := DefaultManageDataDir()
	if os.Geteuid() == 0 {
		if d != "/var/lib/shoal/manage" {
			t.Errorf("root: %q", d)
		}
		return
	}
	t.Setenv("XDG_STATE_HOME", "/x/state")
	if d := DefaultManageDataDir(); d != "/x/state/shoal/manage" {
		t.Errorf("XDG_STATE_HOME: %q", d)
	}
}
