package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/docker/go-connections/tlsconfig"

	"github.com/shoal-dev/shoal/internal/discovery"
	"github.com/shoal-dev/shoal/internal/replica"
)

// openDiscovery opens manage's discovery with its --discovery-opt options
// and checks the --replication flags against it.
func (o *manageOpts) openDiscovery(uri string, log *slog.Logger) (discovery.Backend, error) {
	opts, err := discovery.ParseOptions(o.discoveryOpts)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.Open(uri, opts)
	if err != nil {
		return nil, err
	}
	kv, isKV := disc.(*discovery.KV)
	if isKV {
		kv.SessionTTL = o.replicationTTL
		kv.OnError = func(err error) {
			log.Warn("discovery store; keeping the last known engines", "store", kv.String(), "error", err)
		}
	}
	sw, isSwarm := disc.(*discovery.Swarm)
	if isSwarm {
		// The swarm's engines, the opening one included, use --engine-tls*.
		if sw.TLS, err = o.engineTLSConfig(); err != nil {
			return nil, fmt.Errorf("engine TLS: %w", err)
		}
		sw.TTL = o.replicationTTL
		sw.OnError = func(err error) {
			log.Warn("swarm discovery; keeping the last known engines", "swarm", sw.String(), "error", err)
		}
	}
	if !o.replication {
		return disc, nil
	}
	if !isKV && !isSwarm {
		return nil, fmt.Errorf("--replication needs a key-value store discovery (etcd://, zk://, consul://) or swarm://, not %q", uri)
	}
	if o.advertise == "" {
		return nil, errors.New("--replication needs --advertise: the host:port other managers reach this one's API at")
	}
	if _, _, err := net.SplitHostPort(o.advertise); err != nil {
		return nil, fmt.Errorf("--advertise %q: %v", o.advertise, err)
	}
	return disc, nil
}

// replicate wraps the API handler for --replication: run starts the
// election, and the handler forwards to the primary while this manager is
// a replica. Without --replication it returns api as it is.
func (o *manageOpts) replicate(api http.Handler, disc discovery.Backend, log *slog.Logger, run func(string, func(context.Context) error)) (http.Handler, error) {
	if !o.replication {
		return api, nil
	}
	var fwdTLS *tls.Config
	if o.tls || o.tlsVerify {
		// Replicas reach the primary as a client of the same API: with the
		// managers' own certificate, verified against --tlscacert.
		c, err := tlsconfig.Client(tlsconfig.Options{
			CAFile: o.tlsCA, CertFile: o.tlsCert, KeyFile: o.tlsKey, InsecureSkipVerify: o.tlsCA == "",
		})
		if err != nil {
			return nil, fmt.Errorf("replication TLS: %w", err)
		}
		fwdTLS = c
	}
	h := replica.New(api, o.advertise, fwdTLS, log)
	if sw, ok := disc.(*discovery.Swarm); ok {
		// The shoal on the swarm leader's node is primary; one that stops
		// answering is passed over after --replication-ttl.
		sw.Probe = discovery.PingProbe(fwdTLS)
		log.Info("replication: primary follows the swarm leader", "advertise", o.advertise, "swarm", sw.String(), "ttl", o.replicationTTL)
		run("replication", func(ctx context.Context) error { return h.Run(ctx, sw) })
		return h, nil
	}
	kv := disc.(*discovery.KV)
	log.Info("replication: campaigning for primary", "advertise", o.advertise, "store", kv.String(), "ttl", o.replicationTTL)
	run("replication", func(ctx context.Context) error { return h.Run(ctx, kv) })
	return h, nil
}
