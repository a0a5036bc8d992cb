package run

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// Which manage configurations open a store of their own.
func TestOpenManageStore(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		c       ManageConfig
		wantErr error
		wantSt  bool
	}{
		{"no data dir", ManageConfig{}, nil, false},
		{"replication, default dir", ManageConfig{Replication: true, DataDir: dir}, nil, false},
		{"replication, --data-dir", ManageConfig{Replication: true, DataDir: dir, DataDirSet: true}, ErrDataDirReplication, false},
		{"data dir", ManageConfig{DataDir: filepath.Join(dir, "a")}, nil, true},
	} {
		st, err := tc.c.openManageStore(ctx, log)
		if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.wantErr)
		}
		if (st != nil) != tc.wantSt {
			t.Errorf("%s: store %v, want one: %v", tc.name, st, tc.wantSt)
		}
		if st != nil {
			st.Close()
		}
	}
	// A --data-dir that cannot be made is an error, not a run without services.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := ManageConfig{DataDir: filepath.Join(file, "sub"), DataDirSet: true}
	if st, err := c.openManageStore(ctx, log); err == nil {
		st.Close()
		t.Error("a --data-dir under a file opened")
	}
}

// shoal manage with a data directory says it is an active swarm manager
// in /info, and a second one on the same directory is refused.
func TestManageDataDir(t *testing.T) {
	fleet, err := enginesim.StartFleet(1, func(int) enginesim.Options { return enginesim.Options{} })
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	dir := t.TempDir()
	addr := freeAddr(t)
	c := manageConfig([]string{"tcp://" + addr}, fleet.NodesURI())
	c.DataDir = dir
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Manage(ctx, c) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Manage did not return")
		}
	}()
	var info struct {
		Swarm struct {
			LocalNodeState   string
			ControlAvailable bool
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		body, err := get("http://" + addr + "/info")
		if err == nil && json.Unmarshal([]byte(body), &info) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("info: %q %v", body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if info.Swarm.LocalNodeState != "active" || !info.Swarm.ControlAvailable {
		t.Errorf("info Swarm %+v, want an active manager", info.Swarm)
	}
	second := manageConfig([]string{"tcp://" + freeAddr(t)}, fleet.NodesURI())
	second.DataDir = dir
	if err := Manage(context.Background(), second); !errors.Is(err, ErrDataDirLocked) {
		t.Errorf("a second manage on %s: %v, want ErrDataDirLocked", dir, err)
	}
}
