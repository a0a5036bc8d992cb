package dockerapi

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"

	"github.com/shoal-dev/shoal/internal/backend"
)

type fakeUnlocker struct {
	key      string
	unlocked bool
}

func (f *fakeUnlocker) Unlock(_ context.Context, key string) error {
	switch {
	case key == "bad":
		return errdefs.ErrInvalidArgument.WithMessage("invalid key string")
	case key != f.key:
		return errdefs.ErrUnauthenticated.WithMessage("swarm could not be unlocked: invalid key provided")
	}
	f.unlocked = true
	return nil
}

func (f *fakeUnlocker) Unlocked() bool { return f.unlocked }

// TestLockedAPI: a locked manager says so in info, answers every other
// call with dockerd's 503, and unlocks with the right key only.
func TestLockedAPI(t *testing.T) {
	s := NewLocked(&fakeUnlocker{key: "SWMKEY-1-right"}, LockedNode{Hostname: "m0", NodeAddr: "10.0.0.1"}, "test", nil)
	if rec := call(s, "GET", "/_ping", ""); rec.Code != 200 || rec.Header().Get("Swarm") != "locked/worker" {
		t.Errorf("_ping: %d, Swarm header %q", rec.Code, rec.Header().Get("Swarm"))
	}
	if rec := call(s, "GET", "/v1.50/version", ""); rec.Code != 200 {
		t.Errorf("version: %d", rec.Code)
	}
	rec := call(s, "GET", "/v1.50/info", "")
	var info system.Info
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &info) != nil || info.Swarm.LocalNodeState != swarm.LocalNodeStateLocked || info.Swarm.NodeAddr != "10.0.0.1" || info.Name != "m0" {
		t.Errorf("info: %d %s", rec.Code, rec.Body.String())
	}
	locked := `Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker swarm unlock" to unlock it.`
	for _, c := range [][2]string{{"GET", "/v1.50/nodes"}, {"GET", "/swarm"}, {"POST", "/containers/create"}, {"DELETE", "/nodes/x"}, {"GET", "/swarm/unlockkey"}} {
		wantError(t, call(s, c[0], c[1], "{}"), 503, locked)
	}
	wantError(t, call(s, "POST", "/swarm/unlock", "{"), 400, "invalid unlock request")
	wantError(t, call(s, "POST", "/swarm/unlock", `{"UnlockKey":"bad"}`), 400, "invalid key string")
	wantError(t, call(s, "POST", "/v1.50/swarm/unlock", `{"UnlockKey":"SWMKEY-1-wrong"}`), 401, "swarm could not be unlocked: invalid key provided")
	if rec := call(s, "POST", "/v1.50/swarm/unlock", `{"UnlockKey":"SWMKEY-1-right"}`); rec.Code != 200 {
		t.Errorf("unlock with the right key: %d %s", rec.Code, rec.Body.String())
	}
	// Unlocked, still starting (waiting for a quorum): pending, not locked.
	rec = call(s, "GET", "/info", "")
	if json.Unmarshal(rec.Body.Bytes(), &info) != nil || info.Swarm.LocalNodeState != swarm.LocalNodeStatePending {
		t.Errorf("info while starting: %s", rec.Body.String())
	}
	wantError(t, call(s, "GET", "/nodes", ""), 503, "This manager is unlocked and starting")
}

// fakeLockSwarm is a swarm backend with autolock.
type fakeLockSwarm struct{ key string }

func (f *fakeLockSwarm) Swarm(context.Context) (*swarm.Swarm, error) { return &swarm.Swarm{}, nil }

func (f *fakeLockSwarm) UpdateSwarm(context.Context, backend.SwarmUpdate) error { return nil }

func (f *fakeLockSwarm) SwarmStatus() (string, bool) { return string(swarm.LocalNodeStateActive), true }

func (f *fakeLockSwarm) LeaveSwarm(context.Context, bool) error { return nil }

func (f *fakeLockSwarm) UnlockKey(context.Context) (string, error) { return f.key, nil }

// TestLockRoutes: unlock-key, and an unlock of a manager that is not locked.
func TestLockRoutes(t *testing.T) {
	f := &fakeLockSwarm{key: "SWMKEY-1-abc"}
	s := NewServer(Backends{Swarm: f}, "test", nil)
	rec := call(s, "GET", "/v1.50/swarm/unlockkey", "")
	if rec.Code != 200 || rec.Body.String() != `{"UnlockKey":"SWMKEY-1-abc"}`+"\n" {
		t.Errorf("unlockkey: %d %s", rec.Code, rec.Body.String())
	}
	wantError(t, call(s, "POST", "/swarm/unlock", `{"UnlockKey":"x"}`), 409, "swarm is not locked")
	wantError(t, call(NewServer(Backends{}, "test", nil), "GET", "/swarm/unlockkey", ""), 503, "This node is not a swarm manager.")
}
