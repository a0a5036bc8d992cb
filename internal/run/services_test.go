package run

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/engine"
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

// The orchestrator waits for the pool to hold engines that have answered
// once: before that every node would look lost.
func TestAfterContact(t *testing.T) {
	sim, err := enginesim.Start(enginesim.Options{Name: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	// A listener that never answers keeps its engine in first contact.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	p := engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond, Timeout: 2 * time.Second}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	start := time.Now()
	if !waitContact(ctx, p, 150*time.Millisecond) || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("an empty pool: waited %s, want the whole limit", time.Since(start))
	}

	p.Update([]string{sim.Addr(), mute.Addr().String()})
	ran := make(chan time.Time, 1)
	s := &stack{pool: p, log: slog.New(slog.DiscardHandler)}
	c := s.afterContact(Func(func(context.Context) error { ran <- time.Now(); return nil }))
	start = time.Now()
	go c.Run(ctx)
	select {
	case at := <-ran:
		if at.Sub(start) < time.Second {
			t.Errorf("started after %s, while an engine was in its first contact (timeout 2s)", at.Sub(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("never started")
	}
	if !settled(p) && time.Since(start) < contactWait(p) {
		t.Error("started before the pool settled or the wait ran out")
	}

	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if waitContact(cctx, engine.NewPool(engine.Options{}, nil), time.Hour) {
		t.Error("waitContact after its context ended = true")
	}
}
