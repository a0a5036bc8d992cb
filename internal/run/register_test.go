package run

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRegistry records registrations; the first fails of them fail.
type fakeRegistry struct {
	mu           sync.Mutex
	fails        int
	registered   []string
	deregistered []string
	ttl          time.Duration
}

func (f *fakeRegistry) Register(_ context.Context, addr string, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return errors.New("store unreachable")
	}
	f.registered, f.ttl = append(f.registered, addr), ttl
	return nil
}

func (f *fakeRegistry) Deregister(_ context.Context, addr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deregistered = append(f.deregistered, addr)
	return nil
}

func (f *fakeRegistry) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.registered), len(f.deregistered)
}

// TestRegistrationHeartbeats: registered at once, refreshed at each
// heartbeat, retried after a failure, removed when stopped.
func TestRegistrationHeartbeats(t *testing.T) {
	store := &fakeRegistry{fails: 1}
	tick := make(chan time.Time)
	r := &registration{store: store, tick: tick, cfg: RegisterConfig{
		Advertise: "10.0.0.11:2375", TTL: time.Minute, Log: slog.New(slog.DiscardHandler),
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	for range 3 {
		tick <- time.Now()
	}
	cancel()
	<-done
	if reg, _ := store.counts(); reg != 3 {
		t.Fatalf("%d registrations after a failure and 3 heartbeats, want 3", reg)
	}
	if _, dereg := store.counts(); dereg != 1 || store.deregistered[0] != "10.0.0.11:2375" || store.ttl != time.Minute {
		t.Errorf("deregistered %v (ttl %v), want the entry once", store.deregistered, store.ttl)
	}
}

func TestRegisterChecksFlags(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		c    RegisterConfig
		want string
	}{
		{RegisterConfig{Heartbeat: time.Second, TTL: time.Minute}, "--advertise is required"},
		{RegisterConfig{Advertise: "nohost", Heartbeat: time.Second, TTL: time.Minute}, `--advertise "nohost"`},
		{RegisterConfig{Advertise: "10.0.0.1:2375", Heartbeat: time.Minute, TTL: time.Second}, "--ttl (1s) must be longer than --heartbeat (1m0s)"},
		{RegisterConfig{Advertise: "10.0.0.1:2375", Heartbeat: time.Second, TTL: time.Minute, Discovery: "nodes://10.0.0.1:2375"}, "join needs a key-value store discovery"},
	} {
		tc.c.Log = log
		if err := Register(context.Background(), tc.c); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Register(%+v) = %v, want %q", tc.c, err, tc.want)
		}
	}
}
