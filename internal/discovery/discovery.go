// Package discovery tells the manager which engines form the pool: a static
// list (nodes://), a watched file (file://), or the entries that `shoal join`
// keeps in a key-value store (etcd://, zk://, consul://), or the nodes of a
// Docker swarm (swarm://); the last two also elect the primary of
// replicated managers.
package discovery

import (
	"context"
	"fmt"
	"strings"
)

// Backend reports the current engine addresses to update, first at once
// and again whenever they change, until ctx ends.
type Backend interface {
	Watch(ctx context.Context, update func(addrs []string)) error
}

// Node is what some backends (swarm://) know of an engine beyond its
// address.
type Node struct {
	Addr         string
	Availability string // "active", "pause" or "drain"
}

// NodeWatcher is implemented by backends that report more than addresses;
// the manager prefers it to Watch when a backend has it.
type NodeWatcher interface {
	WatchNodes(ctx context.Context, update func(nodes []Node)) error
}

// New returns the backend for a discovery URI.
func New(uri string) (Backend, error) { return Open(uri, nil) }

// Open returns the backend for a discovery URI with options (--discovery-opt
// key=value; see ParseOptions). Key-value backends are *KV.
func Open(uri string, opts map[string]string) (Backend, error) {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		// Like classic Swarm: a bare list of addresses is nodes://.
		scheme, rest = "nodes", uri
	}
	switch scheme {
	case "nodes":
		addrs, err := ParseList(strings.Split(rest, ","))
		if err != nil {
			return nil, err
		}
		return Static(addrs), nil
	case "file":
		if rest == "" {
			return nil, fmt.Errorf("discovery %q: empty file path", uri)
		}
		return &File{Path: rest}, nil
	case "etcd", "zk", "consul":
		return openKV(scheme, rest, opts)
	case "swarm":
		return openSwarm(rest, opts)
	}
	return nil, fmt.Errorf("discovery %q: unsupported scheme %q (supported: nodes://, file://, etcd://, zk://, consul://, swarm://)", uri, scheme)
}

// Static is a fixed list of engines.
type Static []string

// Watch reports the list once and waits.
func (s Static) Watch(ctx context.Context, update func([]string)) error {
	update([]string(s))
	<-ctx.Done()
	return nil
}

// Lister is a backend whose current list can be read once (shoal list).
type Lister interface {
	List(ctx context.Context) ([]string, error)
}

// List returns the fixed list.
func (s Static) List(context.Context) ([]string, error) { return []string(s), nil }
