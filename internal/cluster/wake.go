package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"hash"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/internal/agent"
	"github.com/shoal-dev/shoal/internal/store"
)

// Nodes ask the managers about themselves (/self) and their overlay
// networks (/overlay). Asked every couple of seconds by every node, those
// calls were most of an idle manager's work at 1,000 nodes (1,500 TLS
// calls a second). A manager now wakes a node through its tunnel when
// what the node would be told changes, and the node asks then, and
// otherwise only every pollPeriod:
//
//   - the sync loop compares each node's record with the one it read
//     before (role, left, address: that node is woken) and, after each
//     pass, what every /self answer is made of (the managers, the
//     certificate lifetime, the roots and the signer: every node);
//   - a watcher looks at what every /overlay answer is made of once a
//     second (the managers, the networks and, while there are any, the
//     nodes' addresses, the names on them and the services).
//
// A node also asks at once when one of its tunnels goes down (it may have
// been removed, or a manager gone) and after renewing its certificate. A
// manager that wakes its nodes says so in its /self answer (Wakes); a node
// whose managers do not (an older shoal) asks as often as before.

// pollPeriod is how often a node whose managers wake it asks them anyway:
// a wake can be lost (a tunnel down at the time).
var pollPeriod = 15 * time.Second

// wakePath is the node endpoint a manager wakes it at (POST, ?what=).
const wakePath = agent.LocalPrefix + "v1/wake"

// wakeWhat says which of a node's calls to make again.
type wakeWhat uint8

const (
	wakeSelf wakeWhat = 1 << iota
	wakeOverlay
)

func (w wakeWhat) String() string {
	var parts []string
	if w&wakeSelf != 0 {
		parts = append(parts, "self")
	}
	if w&wakeOverlay != 0 {
		parts = append(parts, "overlay")
	}
	return strings.Join(parts, ",")
}

func parseWake(s string) wakeWhat {
	var w wakeWhat
	for _, p := range strings.Split(s, ",") {
		switch p {
		case "self":
			w |= wakeSelf
		case "overlay":
			w |= wakeOverlay
		}
	}
	return w
}

// wakes is both sides: on a node, the signals its managers' wakes leave;
// on a manager, the wakes waiting to be sent and what the answers were
// last made of.
type wakes struct {
	self, overlay chan struct{} // node side: buffered, one signal each
	managerWakes  atomic.Bool   // the last /self answer said its manager wakes
	received      atomic.Uint32 // the wakes a manager sent, or-ed (tests)

	mu       sync.Mutex
	all      wakeWhat            // to every connected node
	each     map[string]wakeWhat // to one node
	signal   chan struct{}       // a send is waiting
	selfSum  [32]byte            // the /self inputs at the last pass
	selfSeen bool
}

func newWakes() *wakes {
	return &wakes{self: make(chan struct{}, 1), overlay: make(chan struct{}, 1), each: map[string]wakeWhat{}, signal: make(chan struct{}, 1)}
}

// poke leaves a signal on ch unless one is there already.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// woken is the node side of a wake: the calls it names are made soon.
func (w *wakes) woken(what wakeWhat) {
	if what&wakeSelf != 0 {
		poke(w.self)
	}
	if what&wakeOverlay != 0 {
		poke(w.overlay)
	}
}

// nodeLocal is a node's own endpoint on its tunnels: the managers' wakes,
// and the rest (task files) for files.
type nodeLocal struct {
	files http.Handler
	w     *wakes
}

func (h nodeLocal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != wakePath {
		h.files.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "agent: POST only", http.StatusMethodNotAllowed)
		return
	}
	what := parseWake(r.URL.Query().Get("what"))
	h.w.received.Or(uint32(what))
	h.w.woken(what)
	w.WriteHeader(http.StatusNoContent)
}

// nextPoll is how long a node waits before asking again: pollPeriod
// (jittered, so that the nodes' calls spread out) when its managers wake
// it, else every period as before; after a failed call, period.
func (w *wakes) nextPoll(period time.Duration, ok bool) time.Duration {
	if !ok || !w.managerWakes.Load() {
		return period
	}
	return pollPeriod*3/4 + rand.N(pollPeriod/2+1)
}

// recordWake is what a node is to ask again when its record changed from
// old to cur.
func recordWake(old, cur Node) wakeWhat {
	var w wakeWhat
	if old.Role != cur.Role || old.Left != cur.Left {
		w |= wakeSelf | wakeOverlay
	}
	if old.Addr != cur.Addr {
		w |= wakeOverlay
	}
	return w
}

// noteRecords queues the wakes of the nodes whose records changed between
// two sync passes' caches; a node new to the cache asks by itself.
func (w *wakes) noteRecords(old, cur map[string]Node) {
	if len(old) == 0 {
		return
	}
	var queued bool
	w.mu.Lock()
	for id, n := range cur {
		o, ok := old[id]
		if !ok {
			continue
		}
		if what := recordWake(o, n); what != 0 {
			w.each[id] |= what
			queued = true
		}
	}
	w.mu.Unlock()
	if queued {
		poke(w.signal)
	}
}

// queueAll queues a wake of every connected node.
func (w *wakes) queueAll(what wakeWhat) {
	w.mu.Lock()
	w.all |= what
	w.mu.Unlock()
	poke(w.signal)
}

// take empties the queue.
func (w *wakes) take() (wakeWhat, map[string]wakeWhat) {
	w.mu.Lock()
	defer w.mu.Unlock()
	all, each := w.all, w.each
	w.all, w.each = 0, map[string]wakeWhat{}
	return all, each
}

// sum hashes values as JSON, each with its length.
type sum struct{ h hash.Hash }

func newSum() sum { return sum{sha256.New()} }

func (s sum) put(v any) {
	b, _ := json.Marshal(v)
	binary.Write(s.h, binary.LittleEndian, int64(len(b)))
	s.h.Write(b)
}

func (s sum) sum() (out [32]byte) {
	s.h.Sum(out[:0])
	return out
}

// selfInputs hashes what every node's /self answer is made of besides its
// own record.
func (c *Cluster) selfInputs() [32]byte {
	s := newSum()
	s.put(c.managerAddrs())
	s.put(c.lifetime.Load())
	s.put(c.root.TrustPEM())
	s.put(c.root.Issuer().RawSubjectPublicKeyInfo)
	return s.sum()
}

// noteSelfInputs queues a wake of every node's /self when what the
// answers are made of changed since the last pass (not at the first).
func (c *Cluster) noteSelfInputs() {
	cur := c.selfInputs()
	w := c.wake
	w.mu.Lock()
	changed := w.selfSeen && cur != w.selfSum
	w.selfSum, w.selfSeen = cur, true
	w.mu.Unlock()
	if changed {
		w.queueAll(wakeSelf)
	}
}

// overlayInputs hashes what every node's /overlay answer is made of
// besides its own record; ok false when the networks could not be read.
func (c *Cluster) overlayInputs(ctx context.Context) (out [32]byte, ok bool) {
	nets, err := c.overlayNetworks(ctx)
	if err != nil {
		return out, false
	}
	s := newSum()
	s.put(c.managerAddrs())
	s.put(nets)
	if len(nets) > 0 {
		s.put(c.peerAddrs())
		records, svcs := c.overlayRecords(ctx, nets)
		s.put(records)
		s.put(svcs)
	}
	return s.sum(), true
}

// overlayWatchEvery is how often a manager looks at what the /overlay
// answers are made of: what the nodes' own calls did before (a node asked
// every overlay.Period), once for all of them.
const overlayWatchEvery = time.Second

// watchOverlay wakes every node's /overlay when what the answers are made
// of changes, until ctx ends. It has a loop of its own: the names on the
// networks come from every engine, and a slow one must not hold the sync loop.
func (c *Cluster) watchOverlay(ctx context.Context) error {
	t := time.NewTicker(overlayWatchEvery)
	defer t.Stop()
	var last [32]byte
	seen := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cur, ok := c.overlayInputs(ctx)
		if !ok {
			continue
		}
		if seen && cur != last {
			c.wake.queueAll(wakeOverlay)
		}
		last, seen = cur, true
	}
}

// wakeWorkers bounds the wakes a manager sends at once.
const wakeWorkers = 16

// sendWakes sends the queued wakes until ctx ends.
func (c *Cluster) sendWakes(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake.signal:
		}
		all, each := c.wake.take()
		c.sendWakesOnce(ctx, all, each)
	}
}

// sendWakesOnce wakes every connected node for all and the ones each
// names for theirs. A node not connected is not woken: it asks when its
// tunnel comes back (agent's Down) or at its next poll.
func (c *Cluster) sendWakesOnce(ctx context.Context, all wakeWhat, each map[string]wakeWhat) {
	type job struct {
		id   string
		what wakeWhat
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range wakeWorkers {
		wg.Go(func() {
			for j := range jobs {
				if err := c.wakeNode(ctx, j.id, j.what); err != nil {
					c.log.Debug("cluster: wake a node", "node", j.id, "what", j.what.String(), "err", err)
					c.wake.retry(ctx, j.id, j.what)
				}
			}
		})
	}
	for _, p := range c.tunnels.Connected() { // a retry of a node gone is dropped here
		if what := all | each[p.Identity.NodeID]; what != 0 {
			jobs <- job{p.Identity.NodeID, what}
		}
	}
	close(jobs)
	wg.Wait()
}

// wakeRetry is how soon a wake that failed is sent again, for as long as
// the node's tunnel is up: one lost in a partition that left the tunnel
// up (its calls then fail too, but a node that is not due to ask makes
// none) reaches the node soon after the partition heals, not at its next
// poll. A node whose tunnel went down asks by itself (agent's Down).
const wakeRetry = time.Second

// retry queues a failed wake again after wakeRetry.
func (w *wakes) retry(ctx context.Context, id string, what wakeWhat) {
	time.AfterFunc(wakeRetry, func() {
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		w.each[id] |= what
		w.mu.Unlock()
		poke(w.signal)
	})
}

// wakeTimeout bounds one wake.
const wakeTimeout = 5 * time.Second

// wakeNode asks node id, through its tunnel, to make its calls what again.
func (c *Cluster) wakeNode(ctx context.Context, id string, what wakeWhat) error {
	ctx, cancel := context.WithTimeout(ctx, wakeTimeout)
	defer cancel()
	conn, err := c.tunnels.Dial(ctx, id)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent"+wakePath+"?what="+what.String(), nil)
	if err != nil {
		conn.Close()
		return err
	}
	resp, err := agent.CallLocal(conn, req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// nodesVersion fingerprints the node records of a sync pass: their IDs
// and store revisions.
func nodesVersion(items []store.Item[Node]) uint64 {
	h := fnv.New64a()
	var num [8]byte
	for _, it := range items {
		h.Write([]byte(it.ID))
		binary.LittleEndian.PutUint64(num[:], uint64(it.Revision))
		h.Write(num[:])
	}
	return h.Sum64()
}

// NodesVersion fingerprints the node records as the sync loop last read
// them (at most a second old; at once after a change through this
// manager): it changes whenever a record is created, changed or removed.
// The orchestrator's node digest asks it every second instead of listing
// the nodes.
func (c *Cluster) NodesVersion() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cacheVersion
}
