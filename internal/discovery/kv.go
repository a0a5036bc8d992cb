package discovery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/go-connections/tlsconfig"
)

// Key layout of classic Swarm, so that stores it filled keep working.
const (
	nodesDir  = "docker/swarm/nodes"
	leaderDir = "docker/swarm/leader"
)

// ErrNoStore is returned when a key-value store cannot be reached.
var ErrNoStore = errors.New("discovery: store unreachable")

// kvStore is one key-value technology. Keys are relative to the URI's
// prefix ("docker/swarm/nodes/10.0.0.1:2375"); each adapter maps them to
// its own namespace.
type kvStore interface {
	// snapshot returns the values under dir and a wait function that returns
	// when they may have changed (or with an error, or when ctx ends).
	snapshot(ctx context.Context, dir string) ([]string, func(context.Context) error, error)
	// register creates or refreshes key=value, expiring ttl after the last
	// refresh (or when the registering session ends).
	register(ctx context.Context, key, value string, ttl time.Duration) error
	deregister(ctx context.Context, key string) error
	// elect campaigns for dir with value me and reports every leader it
	// observes, until ctx ends; then it gives up leadership.
	elect(ctx context.Context, dir, me string, ttl time.Duration, leader func(string)) error
	close() error
}

// KV is discovery through a key-value store: engines are the values under
// <prefix>/docker/swarm/nodes/, kept there by `shoal join`.
type KV struct {
	Scheme string   // etcd, zk or consul
	Hosts  []string // host:port of the store's servers
	Prefix string   // key prefix from the URI path, without slashes at the ends

	// Resync is how often the list is read again even without a change
	// notification (default 10s): it also catches up after an outage.
	Resync time.Duration
	// SessionTTL is how long a registration or a candidacy outlives its
	// process (zk: session timeout). Default 20s.
	SessionTTL time.Duration
	// OnError, if set, is told about store errors; the last known list stays.
	OnError func(error)

	tls   *tls.Config
	mu    sync.Mutex
	store kvStore
}

// ParseOptions turns --discovery-opt key=value entries into a map.
func ParseOptions(entries []string) (map[string]string, error) {
	m := map[string]string{}
	for _, e := range entries {
		k, v, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("discovery option %q: want key=value", e)
		}
		m[k] = v
	}
	return m, nil
}

var defaultPorts = map[string]string{"etcd": "2379", "zk": "2181", "consul": "8500"}

func openKV(scheme, rest string, opts map[string]string) (*KV, error) {
	hosts, prefix, _ := strings.Cut(rest, "/")
	kv := &KV{Scheme: scheme, Prefix: strings.Trim(prefix, "/")}
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, defaultPorts[scheme])
		}
		kv.Hosts = append(kv.Hosts, h)
	}
	if len(kv.Hosts) == 0 {
		return nil, fmt.Errorf("discovery %s://%s: no store address", scheme, rest)
	}
	var tlsOpts tlsconfig.Options
	for k, v := range opts {
		switch k {
		case "kv.cacertfile":
			tlsOpts.CAFile = v
		case "kv.certfile":
			tlsOpts.CertFile = v
		case "kv.keyfile":
			tlsOpts.KeyFile = v
		default:
			return nil, fmt.Errorf("discovery option %q: unknown (known: kv.cacertfile, kv.certfile, kv.keyfile)", k)
		}
	}
	if tlsOpts.CAFile != "" || tlsOpts.CertFile != "" || tlsOpts.KeyFile != "" {
		if (tlsOpts.CertFile == "") != (tlsOpts.KeyFile == "") {
			return nil, errors.New("discovery options: kv.certfile and kv.keyfile go together")
		}
		c, err := tlsconfig.Client(tlsOpts)
		if err != nil {
			return nil, fmt.Errorf("discovery TLS: %w", err)
		}
		kv.tls = c
	}
	return kv, nil
}

// String is the URI the store was opened with.
func (kv *KV) String() string {
	return kv.Scheme + "://" + strings.Join(kv.Hosts, ",") + "/" + kv.Prefix
}

func (kv *KV) key(parts ...string) string {
	if kv.Prefix == "" {
		return strings.Join(parts, "/")
	}
	return kv.Prefix + "/" + strings.Join(parts, "/")
}

func (kv *KV) ttl() time.Duration {
	if kv.SessionTTL > 0 {
		return kv.SessionTTL
	}
	return 20 * time.Second
}

// conn connects to the store on first use.
func (kv *KV) conn() (kvStore, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if kv.store != nil {
		return kv.store, nil
	}
	var s kvStore
	var err error
	switch kv.Scheme {
	case "etcd":
		s, err = newEtcd(kv.Hosts, kv.tls)
	case "zk":
		s, err = newZK(kv.Hosts, kv.tls, kv.ttl())
	case "consul":
		s, err = newConsul(kv.Hosts, kv.tls)
	default:
		err = fmt.Errorf("discovery: unknown store %q", kv.Scheme)
	}
	if err != nil {
		return nil, err
	}
	kv.store = s
	return s, nil
}

// Close releases the store connection; registrations of a zk session go.
func (kv *KV) Close() error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if kv.store == nil {
		return nil
	}
	err := kv.store.close()
	kv.store = nil
	return err
}

func (kv *KV) fail(err error) {
	if kv.OnError != nil && err != nil {
		kv.OnError(err)
	}
}

// nodeKey is the key of one engine: the address itself, as classic Swarm
// wrote it, escaped only if it holds a slash (unix:///...).
func nodeKey(addr string) string {
	if strings.Contains(addr, "/") {
		return url.PathEscape(addr)
	}
	return addr
}

// List returns the registered engines, sorted.
func (kv *KV) List(ctx context.Context) ([]string, error) {
	s, err := kv.conn()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, _, err := s.snapshot(ctx, kv.key(nodesDir))
	return list, err
}

// Watch reports the registered engines at once and after every change. When
// the store cannot be reached the last list stands (update is not called);
// the list is read again when the store is back.
func (kv *KV) Watch(ctx context.Context, update func([]string)) error {
	resync := kv.Resync
	if resync <= 0 {
		resync = 10 * time.Second
	}
	var last []string
	first := true
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		s, err := kv.conn()
		var list []string
		var wait func(context.Context) error
		if err == nil {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			list, wait, err = s.snapshot(sctx, kv.key(nodesDir))
			cancel()
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			kv.fail(err)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		if first || !slices.Equal(list, last) {
			update(list)
			last, first = list, false
		}
		wctx, cancel := context.WithTimeout(ctx, resync)
		err = wait(wctx)
		timedOut := wctx.Err() != nil
		cancel()
		if err != nil && !timedOut && ctx.Err() == nil {
			kv.fail(err)
			sleep(ctx, backoff)
		}
	}
	return nil
}

// Register creates or refreshes the entry of an engine; it expires ttl
// after the last refresh.
func (kv *KV) Register(ctx context.Context, addr string, ttl time.Duration) error {
	s, err := kv.conn()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.register(ctx, kv.key(nodesDir, nodeKey(addr)), addr, ttl)
}

// Deregister removes the entry of an engine at once.
func (kv *KV) Deregister(ctx context.Context, addr string) error {
	s, err := kv.conn()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return s.deregister(ctx, kv.key(nodesDir, nodeKey(addr)))
}

// Elect campaigns to be the primary manager as me (its API address) under
// <prefix>/docker/swarm/leader and calls leader with each primary it
// observes, itself included, until ctx ends; then it steps down so that
// another manager takes over at once. A candidacy lapses SessionTTL after
// its process dies. While the store cannot be reached, leader is not called:
// the last known primary stands.
func (kv *KV) Elect(ctx context.Context, me string, leader func(addr string)) error {
	var last string
	report := func(l string) {
		if l != last {
			last = l
			leader(l)
		}
	}
	for ctx.Err() == nil {
		s, err := kv.conn()
		if err == nil {
			err = s.elect(ctx, kv.key(leaderDir), me, kv.ttl(), report)
		}
		if ctx.Err() != nil {
			break
		}
		kv.fail(fmt.Errorf("election: %w", err))
		sleep(ctx, time.Second)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// sortedValues sorts and deduplicates.
func sortedValues(v []string) []string {
	sort.Strings(v)
	return slices.Compact(v)
}

var (
	_ Lister  = Static(nil)
	_ Lister  = (*File)(nil)
	_ Lister  = (*KV)(nil)
	_ Backend = (*KV)(nil)
)
