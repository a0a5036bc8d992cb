// Package discovery tells the manager which engines form the pool: a static
// list (nodes://), a watched file (file://), or the entries that `shoal join`
// keeps in a key-value store (etcd://, zk://, consul://), or the nodes of a
// Docker swarm (swarm://); the last two also elect the primary of
// replicated managers.
package discovery

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
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

var rangeRe = regexp.MustCompile(`\[([0-9]+):([0-9]+)\]`)

// ParseList expands entries: blank ones and '#' comments are skipped,
// "10.0.0.[11:13]:2375" stands for .11, .12 and .13.
func ParseList(entries []string) ([]string, error) {
	var out []string
	for _, e := range entries {
		if i := strings.IndexByte(e, '#'); i >= 0 {
			e = e[:i]
		}
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		x, err := expand(e)
		if err != nil {
			return nil, err
		}
		out = append(out, x...)
	}
	return out, nil
}

func expand(e string) ([]string, error) {
	loc := rangeRe.FindStringSubmatchIndex(e)
	if loc == nil {
		if strings.ContainsAny(e, "[]") {
			return nil, fmt.Errorf("address %q: malformed range (want [start:end])", e)
		}
		return []string{e}, nil
	}
	a, b := e[loc[2]:loc[3]], e[loc[4]:loc[5]]
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || lo > hi {
		return nil, fmt.Errorf("address %q: bad range [%s:%s]", e, a, b)
	}
	if hi-lo > 65535 {
		return nil, fmt.Errorf("address %q: range too large", e)
	}
	width := 0
	if len(a) > 1 && a[0] == '0' {
		width = len(a)
	}
	var out []string
	for i := lo; i <= hi; i++ {
		n := fmt.Sprintf("%0*d", width, i)
		rest, err := expand(e[loc[1]:])
		if err != nil {
			return nil, err
		}
		for _, r := range rest {
			out = append(out, e[:loc[0]]+n+r)
		}
	}
	return out, nil
}

// Lister is a backend whose current list can be read once (shoal list).
type Lister interface {
	List(ctx context.Context) ([]string, error)
}

// List returns the fixed list.
func (s Static) List(context.Context) ([]string, error) { return []string(s), nil }
