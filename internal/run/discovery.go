package run

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/shoal-dev/shoal/internal/discovery"
)

// openDiscovery opens manage's discovery with its --discovery-opt options
// and checks the --replication flags against it.
func (c *ManageConfig) openDiscovery(log *slog.Logger) (discovery.Backend, error) {
	opts, err := discovery.ParseOptions(c.DiscoveryOpts)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.Open(c.Discovery, opts)
	if err != nil {
		return nil, err
	}
	kv, isKV := disc.(*discovery.KV)
	if isKV {
		kv.SessionTTL = c.ReplicationTTL
		kv.OnError = func(err error) {
			log.Warn("discovery store; keeping the last known engines", "store", kv.String(), "error", err)
		}
	}
	sw, isSwarm := disc.(*discovery.Swarm)
	if isSwarm {
		// The swarm's engines, the opening one included, use --engine-tls*.
		if sw.TLS, err = c.EngineTLS.engineClient(); err != nil {
			return nil, fmt.Errorf("engine TLS: %w", err)
		}
		sw.TTL = c.ReplicationTTL
		sw.OnError = func(err error) {
			log.Warn("swarm discovery; keeping the last known engines", "swarm", sw.String(), "error", err)
		}
	}
	if f, ok := disc.(*discovery.File); ok {
		f.OnError = func(err error) { log.Warn("discovery file", "path", f.Path, "error", err) }
	}
	if !c.Replication {
		return disc, nil
	}
	if !isKV && !isSwarm {
		return nil, fmt.Errorf("--replication needs a key-value store discovery (etcd://, zk://, consul://) or swarm://, not %q", c.Discovery)
	}
	if c.Advertise == "" {
		return nil, errors.New("--replication needs --advertise: the host:port other managers reach this one's API at")
	}
	if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
		return nil, fmt.Errorf("--advertise %q: %v", c.Advertise, err)
	}
	return disc, nil
}
