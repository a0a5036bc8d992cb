package discovery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SwarmManagerLabel is the swarm node label under which a shoal manager
// with --replication publishes its API address on the node of the engine
// it is backed by; the primary is the one found on the swarm leader's node.
const SwarmManagerLabel = "com.shoal.manager.addr"

// Swarm is discovery from Docker's swarm mode: the pool is the nodes that
// a swarm-mode manager engine lists (GET /nodes), each node's engine API at
// <Status.Addr>:<Port>. The list is kept current from the engine's node
// events and read again every Resync. Paused and drained nodes keep their
// availability; nodes that are not Ready (down, disconnected, unknown) stay
// in the pool as "drain", so nothing new is placed there while their
// containers stay visible (the pool's own health checks say whether the
// engine is reachable). Nodes removed from the swarm leave the pool.
//
// When the engine it was opened with cannot answer (stopped, demoted to
// worker, no quorum), the other managers of the last list are asked, at
// <addr>:<Port> like every engine.
type Swarm struct {
	Endpoint string // the manager engine: unix:///path, tcp://host:port or host:port
	Port     string // engine API port of every node (--discovery-opt swarm.port), default 2375
	// TLS is used for tcp engines (the endpoint and the other managers);
	// the CLI sets it from --engine-tls*.
	TLS *tls.Config
	// Resync is how often the node list is read even without events
	// (default 10s).
	Resync time.Duration
	// Poll is how often Elect reads the managers and the leader (default 1s).
	Poll time.Duration
	// TTL is how long a primary that does not answer Probe keeps its role
	// (default 15s).
	TTL time.Duration
	// Probe, if set, tells whether another manager's API answers (Elect
	// passes over dead primaries); nil trusts every published address.
	Probe func(ctx context.Context, addr string) error
	// OnError, if set, is told about errors; the last known list stays.
	OnError func(error)

	mu       sync.Mutex
	clients  map[string]*swarmClient
	managers []string // engine addresses of the managers seen last, for fallback
}

func openSwarm(rest string, opts map[string]string) (*Swarm, error) {
	rest = strings.TrimSpace(rest)
	if rest == "" {
		return nil, errors.New("discovery swarm://: no engine address (swarm://unix:///var/run/docker.sock, swarm://host:2375)")
	}
	s := &Swarm{Endpoint: rest, Port: "2375"}
	for k, v := range opts {
		switch k {
		case "swarm.port":
			if p, err := strconv.Atoi(v); err != nil || p <= 0 || p > 65535 {
				return nil, fmt.Errorf("discovery option swarm.port=%q: want a port number", v)
			}
			s.Port = v
		default:
			return nil, fmt.Errorf("discovery option %q: unknown for swarm:// (known: swarm.port)", k)
		}
	}
	if _, err := s.client(rest); err != nil {
		return nil, err
	}
	s.clients = nil // made again on first use, with the TLS set by then
	return s, nil
}

// String is the URI the backend was opened with.
func (s *Swarm) String() string { return "swarm://" + s.Endpoint }

func (s *Swarm) fail(err error) {
	if s.OnError != nil && err != nil {
		s.OnError(err)
	}
}

func (s *Swarm) resync() time.Duration {
	if s.Resync > 0 {
		return s.Resync
	}
	return 10 * time.Second
}

func (s *Swarm) poll() time.Duration {
	if s.Poll > 0 {
		return s.Poll
	}
	return time.Second
}

func (s *Swarm) ttl() time.Duration {
	if s.TTL > 0 {
		return s.TTL
	}
	return 15 * time.Second
}

func (s *Swarm) port() string {
	if s.Port == "" {
		return "2375"
	}
	return s.Port
}

// ---------------------------------------------------------------- HTTP

// swarmClient reaches one engine.
type swarmClient struct {
	base string // http://docker, http(s)://host:port
	hc   *http.Client
}

func (s *Swarm) client(addr string) (*swarmClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clients[addr]; c != nil {
		return c, nil
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second, TLSHandshakeTimeout: 10 * time.Second}
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	c := &swarmClient{hc: &http.Client{Transport: tr}}
	switch {
	case strings.HasPrefix(addr, "unix://"):
		p := strings.TrimPrefix(addr, "unix://")
		if p == "" {
			return nil, fmt.Errorf("discovery swarm://%s: empty socket path", addr)
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", p) }
		c.base = "http://docker"
	default:
		hp := addr
		for _, pre := range []string{"tcp://", "http://", "https://"} {
			hp = strings.TrimPrefix(hp, pre)
		}
		if strings.Contains(hp, "://") || strings.Contains(hp, "/") {
			return nil, fmt.Errorf("discovery swarm://%s: want unix:///path, tcp://host:port or host:port", addr)
		}
		if _, _, err := net.SplitHostPort(hp); err != nil {
			hp = net.JoinHostPort(hp, s.port())
		}
		tr.DialContext = d.DialContext
		scheme := "http"
		if s.TLS != nil || strings.HasPrefix(addr, "https://") {
			scheme = "https"
			tr.TLSClientConfig = s.TLS
		}
		c.base = scheme + "://" + hp
	}
	if s.clients == nil {
		s.clients = map[string]*swarmClient{}
	}
	s.clients[addr] = c
	return c, nil
}

// engineError is a non-2xx answer of an engine.
type engineError struct {
	code int
	msg  string
}

func (e *engineError) Error() string { return fmt.Sprintf("%d: %s", e.code, e.msg) }

func (c *swarmClient) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var m struct{ Message string }
		if json.Unmarshal(b, &m) == nil && m.Message != "" {
			b = []byte(m.Message)
		}
		return &engineError{code: resp.StatusCode, msg: strings.TrimSpace(string(b))}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// endpoints is the engine the backend was opened with, then the managers
// seen last.
func (s *Swarm) endpoints() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []string{s.Endpoint}
	for _, m := range s.managers {
		if m != s.Endpoint && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// call asks the endpoint, then each other known manager, until one answers.
// Answers other than "not a manager / no quorum / unreachable" are final.
func (s *Swarm) call(ctx context.Context, method, path string, body, out any) error {
	var errs []error
	for _, ep := range s.endpoints() {
		c, err := s.client(ep)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = c.do(rctx, method, path, body, out)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ee *engineError
		if errors.As(err, &ee) && ee.code != http.StatusServiceUnavailable && ee.code < 500 {
			return fmt.Errorf("%s %s on %s: %w", method, path, ep, err)
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
	}
	return fmt.Errorf("swarm %s %s: %w", method, path, errors.Join(errs...))
}

// ---------------------------------------------------------------- nodes

// swarmNode is the part of a swarm-mode node (GET /nodes) shoal reads.
type swarmNode struct {
	ID      string
	Version struct{ Index uint64 }
	Spec    struct {
		Role         string
		Availability string
		Labels       map[string]string
	}
	Description struct{ Hostname string }
	Status      struct{ State, Addr string }
	// ManagerStatus is set on managers.
	ManagerStatus *struct {
		Leader       bool
		Reachability string
		Addr         string
	}
}

// host is the node's address: its Status.Addr, or its manager address when
// that is unset (some versions say 0.0.0.0 for the first manager).
func (n *swarmNode) host() string {
	h := n.Status.Addr
	if (h == "" || h == "0.0.0.0" || h == "::") && n.ManagerStatus != nil {
		if mh, _, err := net.SplitHostPort(n.ManagerStatus.Addr); err == nil {
			h = mh
		}
	}
	if h == "0.0.0.0" || h == "::" {
		return ""
	}
	return h
}

func (s *Swarm) engineAddr(n *swarmNode) string {
	h := n.host()
	if h == "" {
		return ""
	}
	return net.JoinHostPort(h, s.port())
}

func (s *Swarm) readNodes(ctx context.Context, filter string) ([]swarmNode, error) {
	path := "/nodes"
	if filter != "" {
		path += "?filters=" + url.QueryEscape(filter)
	}
	var ns []swarmNode
	if err := s.call(ctx, http.MethodGet, path, nil, &ns); err != nil {
		return nil, err
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i].ID < ns[j].ID })
	return ns, nil
}

// nodes turns swarm nodes into pool entries and remembers the managers.
func (s *Swarm) nodes(ns []swarmNode) []Node {
	var out []Node
	var managers []string
	seen := map[string]bool{}
	for i := range ns {
		n := &ns[i]
		addr := s.engineAddr(n)
		if addr == "" || seen[addr] {
			continue
		}
		seen[addr] = true
		avail := strings.ToLower(n.Spec.Availability)
		switch avail {
		case "active", "pause", "drain":
		default:
			avail = "active"
		}
		if !strings.EqualFold(n.Status.State, "ready") {
			avail = "drain"
		}
		out = append(out, Node{Addr: addr, Availability: avail})
		if n.ManagerStatus != nil && n.ManagerStatus.Reachability != "unreachable" {
			managers = append(managers, addr)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	if len(managers) > 0 {
		s.mu.Lock()
		s.managers = managers
		s.mu.Unlock()
	}
	return out
}

// ListNodes reads the swarm's nodes once.
func (s *Swarm) ListNodes(ctx context.Context) ([]Node, error) {
	ns, err := s.readNodes(ctx, "")
	if err != nil {
		return nil, err
	}
	return s.nodes(ns), nil
}

// List returns the engine addresses of the swarm's nodes.
func (s *Swarm) List(ctx context.Context) ([]string, error) {
	nodes, err := s.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Addr
	}
	return out, nil
}

// Watch reports the engine addresses (see WatchNodes).
func (s *Swarm) Watch(ctx context.Context, update func([]string)) error {
	return s.WatchNodes(ctx, func(nodes []Node) {
		addrs := make([]string, len(nodes))
		for i, n := range nodes {
			addrs[i] = n.Addr
		}
		update(addrs)
	})
}

// WatchNodes reports the swarm's nodes at once, after every node event of
// the engine (create, update, remove), every Resync (the report is repeated
// even when nothing changed), and when the event stream reconnects. While
// no manager answers, the last list stands.
func (s *Swarm) WatchNodes(ctx context.Context, update func([]Node)) error {
	poke := make(chan struct{}, 1)
	go s.followEvents(ctx, poke)
	tick := time.NewTicker(s.resync())
	defer tick.Stop()
	var last []Node
	first, periodic := true, false
	backoff := 200 * time.Millisecond
	retryT := time.NewTimer(time.Hour)
	defer retryT.Stop()
	for ctx.Err() == nil {
		nodes, err := s.ListNodes(ctx)
		var retry <-chan time.Time
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			s.fail(err)
			retryT.Reset(backoff)
			retry = retryT.C
			backoff = min(2*backoff, 5*time.Second)
		} else {
			backoff = 200 * time.Millisecond
			if first || periodic || !slices.Equal(nodes, last) {
				update(nodes)
				last, first = nodes, false
			}
		}
		periodic = false
		select {
		case <-ctx.Done():
		case <-poke:
		case <-retry:
		case <-tick.C:
			periodic = true
		}
	}
	return nil
}

// followEvents pokes on every node event of the endpoint (or of another
// manager when it cannot be reached) and on every (re)connection.
func (s *Swarm) followEvents(ctx context.Context, poke chan<- struct{}) {
	signal := func() {
		select {
		case poke <- struct{}{}:
		default:
		}
	}
	filter := url.QueryEscape(`{"type":["node"]}`)
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		for _, ep := range s.endpoints() {
			c, err := s.client(ep)
			if err != nil {
				continue
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/events?filters="+filter, nil)
			if err != nil {
				continue
			}
			resp, err := c.hc.Do(req)
			if err != nil {
				continue
			}
			if resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				continue
			}
			backoff = 200 * time.Millisecond
			signal() // catch up on what happened while disconnected
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				signal()
			}
			resp.Body.Close()
			break
		}
		sleep(ctx, backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

// ---------------------------------------------------------------- election

// swarmInfo is the part of GET /info the election reads.
type swarmInfo struct {
	Swarm struct {
		NodeID           string
		LocalNodeState   string
		ControlAvailable bool
	}
}

// Elect publishes me on the swarm node of the engine this backend was
// opened with (label com.shoal.manager.addr) and reports as primary the
// address published on the swarm leader's node: the shoal whose engine
// leads the swarm is primary, so managers agree with the swarm on who
// leads. When the leader's node has no shoal, or its shoal has not answered
// Probe for TTL, the next reachable manager node (by node ID) with a live
// shoal is primary; failing all, this manager. While no swarm manager
// answers, the last primary stands. When ctx ends, the label is removed so
// that another manager takes over at once.
func (s *Swarm) Elect(ctx context.Context, me string, leader func(addr string)) error {
	var last string
	reported := false
	report := func(l string) {
		if !reported || l != last {
			last, reported = l, true
			leader(l)
		}
	}
	var nodeID string
	lastOK := map[string]time.Time{}
	defer func() {
		if nodeID != "" {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.setLabel(cctx, nodeID, me, ""); err != nil {
				s.fail(fmt.Errorf("election: remove %s from node %s: %w", SwarmManagerLabel, nodeID, err))
			}
		}
	}()
	for ctx.Err() == nil {
		primary, id, err := s.electOnce(ctx, nodeID, me, lastOK)
		if id != "" {
			nodeID = id
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			s.fail(fmt.Errorf("election: %w", err))
		} else {
			report(primary)
		}
		sleep(ctx, s.poll())
	}
	return nil
}

func (s *Swarm) electOnce(ctx context.Context, nodeID, me string, lastOK map[string]time.Time) (string, string, error) {
	// Which swarm node this shoal stands for: always the opening engine's.
	c, err := s.client(s.Endpoint)
	if err != nil {
		return "", "", err
	}
	var info swarmInfo
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = c.do(ictx, http.MethodGet, "/info", nil, &info)
	cancel()
	switch {
	case err == nil && info.Swarm.NodeID != "":
		nodeID = info.Swarm.NodeID
	case err == nil:
		return "", "", fmt.Errorf("engine %s is not in a swarm (state %q)", s.Endpoint, info.Swarm.LocalNodeState)
	case nodeID == "":
		return "", "", err
	}
	managers, err := s.readNodes(ctx, `{"role":["manager"]}`)
	if err != nil {
		return "", nodeID, err
	}
	var own *swarmNode
	for i := range managers {
		if managers[i].ID == nodeID {
			own = &managers[i]
		}
	}
	if own == nil || own.Spec.Labels[SwarmManagerLabel] != me {
		if err := s.setLabel(ctx, nodeID, "", me); err != nil {
			s.fail(fmt.Errorf("election: publish %s=%s on node %s: %w", SwarmManagerLabel, me, nodeID, err))
		}
	}
	// Candidates: the leader, then the reachable managers by node ID.
	var cands []*swarmNode
	for i := range managers {
		if m := &managers[i]; m.ManagerStatus != nil && m.ManagerStatus.Leader {
			cands = append(cands, m)
		}
	}
	for i := range managers {
		m := &managers[i]
		if m.ManagerStatus != nil && !m.ManagerStatus.Leader && m.ManagerStatus.Reachability == "reachable" {
			cands = append(cands, m)
		}
	}
	for _, m := range cands {
		addr := m.Spec.Labels[SwarmManagerLabel]
		if m.ID == nodeID {
			addr = me // our own label may not be visible yet
		}
		switch {
		case addr == "":
		case addr == me:
			return me, nodeID, nil
		case s.alive(ctx, addr, lastOK):
			return addr, nodeID, nil
		}
	}
	return me, nodeID, nil
}

// alive reports whether the shoal at addr answered Probe now or within TTL.
func (s *Swarm) alive(ctx context.Context, addr string, lastOK map[string]time.Time) bool {
	if s.Probe == nil {
		return true
	}
	pctx, cancel := context.WithTimeout(ctx, min(2*time.Second, s.ttl()))
	err := s.Probe(pctx, addr)
	cancel()
	if err == nil {
		lastOK[addr] = time.Now()
		return true
	}
	t, ok := lastOK[addr]
	return ok && time.Since(t) < s.ttl()
}

// setLabel sets the manager label of node id to want (removes it when want
// is ""), only if it is now had ("" for any other value). It retries on
// version conflicts.
func (s *Swarm) setLabel(ctx context.Context, id, had, want string) error {
	for attempt := 0; ; attempt++ {
		var n struct {
			Version struct{ Index uint64 }
			Spec    map[string]any
		}
		if err := s.call(ctx, http.MethodGet, "/nodes/"+url.PathEscape(id), nil, &n); err != nil {
			return err
		}
		if n.Spec == nil {
			n.Spec = map[string]any{}
		}
		labels, _ := n.Spec["Labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
		}
		cur, _ := labels[SwarmManagerLabel].(string)
		if cur == want || (had != "" && cur != had) {
			return nil
		}
		if want == "" {
			delete(labels, SwarmManagerLabel)
		} else {
			labels[SwarmManagerLabel] = want
		}
		n.Spec["Labels"] = labels
		path := fmt.Sprintf("/nodes/%s/update?version=%d", url.PathEscape(id), n.Version.Index)
		err := s.call(ctx, http.MethodPost, path, n.Spec, nil)
		if err == nil {
			return nil
		}
		// "update out of sequence": someone else updated the node first.
		if attempt >= 4 || !strings.Contains(err.Error(), "out of sequence") {
			return err
		}
	}
}

// PingProbe returns a Probe that GETs /_ping on a manager's API, with TLS
// when tlsConf is set.
func PingProbe(tlsConf *tls.Config) func(ctx context.Context, addr string) error {
	tr := &http.Transport{TLSClientConfig: tlsConf, DisableKeepAlives: true}
	hc := &http.Client{Transport: tr}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	return func(ctx context.Context, addr string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+"/_ping", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/_ping: %s", resp.Status)
		}
		return nil
	}
}

var (
	_ Lister      = (*Swarm)(nil)
	_ Backend     = (*Swarm)(nil)
	_ NodeWatcher = (*Swarm)(nil)
)
