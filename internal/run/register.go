package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/discovery"
)

// RegisterConfig is `shoal join --advertise`: an engine's entry in a
// key-value store discovery, kept alive while the command runs.
type RegisterConfig struct {
	Discovery     string   // etcd://, zk:// or consul:// URI
	DiscoveryOpts []string // --discovery-opt key=value entries
	Advertise     string   // the engine's address as managers dial it
	Heartbeat     time.Duration
	TTL           time.Duration
	Log           *slog.Logger
}

// Register keeps the engine registered until ctx ends, then removes the
// entry at once (it would expire TTL after the last refresh anyway).
func Register(ctx context.Context, c RegisterConfig) error {
	if c.Advertise == "" {
		return errors.New("--advertise is required: the engine's address as managers should dial it")
	}
	if _, _, err := net.SplitHostPort(strings.TrimPrefix(c.Advertise, "tcp://")); err != nil {
		return fmt.Errorf("--advertise %q: %v", c.Advertise, err)
	}
	if c.Heartbeat <= 0 || c.TTL <= c.Heartbeat {
		return fmt.Errorf("--ttl (%s) must be longer than --heartbeat (%s)", c.TTL, c.Heartbeat)
	}
	kv, err := openKV(c.Discovery, c.DiscoveryOpts, "join")
	if err != nil {
		return err
	}
	kv.SessionTTL = c.TTL
	defer kv.Close()
	c.Log.Info("joining", "discovery", kv.String(), "advertise", c.Advertise, "heartbeat", c.Heartbeat, "ttl", c.TTL)
	t := time.NewTicker(c.Heartbeat)
	defer t.Stop()
	(&registration{store: kv, cfg: c, tick: t.C}).Run(ctx)
	return nil
}

// openKV opens a key-value store discovery; other kinds are an error for
// the commands that need one.
func openKV(uri string, optEntries []string, what string) (*discovery.KV, error) {
	opts, err := discovery.ParseOptions(optEntries)
	if err != nil {
		return nil, err
	}
	d, err := discovery.Open(uri, opts)
	if err != nil {
		return nil, err
	}
	kv, ok := d.(*discovery.KV)
	if !ok {
		return nil, fmt.Errorf("%s needs a key-value store discovery (etcd://, zk://, consul://), not %q", what, uri)
	}
	return kv, nil
}

// registrar is the part of discovery.KV a registration uses.
type registrar interface {
	Register(ctx context.Context, addr string, ttl time.Duration) error
	Deregister(ctx context.Context, addr string) error
}

// registration refreshes one entry at every tick and removes it at the end.
type registration struct {
	store registrar
	cfg   RegisterConfig
	tick  <-chan time.Time
}

// Run registers now and at every tick until ctx ends, then deregisters.
func (r *registration) Run(ctx context.Context) {
	log, ok := r.cfg.Log, false
	for {
		if err := r.store.Register(ctx, r.cfg.Advertise, r.cfg.TTL); err != nil {
			if ctx.Err() != nil {
				break
			}
			log.Warn("registration failed; retrying at the next heartbeat", "error", err)
			ok = false
		} else if !ok {
			log.Info("registered", "advertise", r.cfg.Advertise)
			ok = true
		} else {
			log.Debug("refreshed", "advertise", r.cfg.Advertise)
		}
		select {
		case <-ctx.Done():
		case <-r.tick:
			continue
		}
		break
	}
	r.deregister()
}

// deregister removes the entry, with its own deadline: ctx has ended.
func (r *registration) deregister() {
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.store.Deregister(dctx, r.cfg.Advertise); err != nil {
		r.cfg.Log.Warn("deregistration failed; the entry expires by itself", "error", err)
	} else {
		r.cfg.Log.Info("deregistered", "advertise", r.cfg.Advertise)
	}
}
