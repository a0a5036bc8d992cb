package scheduler

import (
	"cmp"
	"slices"
	"strconv"
	"unsafe"
)

// index is a Scheduler's compact, memoized copy of the pool it last saw:
// one small record per node in a flat array, and columns of interned
// attribute values per constraint key, with inverted lists (value →
// positions) for equality constraints. At 10,000 nodes a Place call can
// spend about 10 ns per node, which is roughly one cache miss: reading each
// Node, its label map and its containers on every call would cost ten
// times that. So each call only checks, per node, that the pointer and a
// stamp of the fields the records derive from are unchanged (for a Node
// with Gen set, only the pointer), and refreshes the records of the nodes
// that changed.
//
// This is memoization, not state: a Place call answers exactly as if it
// computed everything from the Nodes, provided Nodes are treated as
// snapshots (see Node).
type index struct {
	nodes  []*Node
	stamps []stamp
	recs   []rec
	imgs   []imgStamp // what the image memos of each node were derived from
	iota   []int32    // 0, 1, 2, …: every position
	cols   map[string]*column
	images map[string][]int8 // normalized image ref → per node: 0 unknown, 1 yes, -1 no
	factor float64

	unordered bool // recs[].order is stale
}

// stamp is what a record was derived from: the fields of the Node's first
// cache line, so that checking it costs one memory access per node.
type stamp struct {
	gen        uint64 // Node.Gen; when non-zero the Node is trusted not to change
	health     Health
	labels     unsafe.Pointer // the label map's identity
	containers unsafe.Pointer // start of the Containers array
	ncont      int
	cpu, mem   int64
}

func stampOf(n *Node) stamp {
	return stamp{
		labels:     *(*unsafe.Pointer)(unsafe.Pointer(&n.Labels)), // a map value is a pointer
		containers: unsafe.Pointer(unsafe.SliceData(n.Containers)),
		ncont:      len(n.Containers),
		cpu:        n.NanoCPUs,
		mem:        n.Memory,
		gen:        n.Gen,
		health:     n.Health,
	}
}

// every returns all positions, ascending.
func (x *index) every() []int32 {
	if len(x.iota) != len(x.nodes) {
		x.iota = x.iota[:0]
		for i := range x.nodes {
			x.iota = append(x.iota, int32(i))
		}
	}
	return x.iota
}

// imgStamp is what a node's image memos were derived from; it is checked
// only when a memo is read (ties between nodes), not on every call.
type imgStamp struct {
	images *Image
	n      int
}

// matches reports whether n (the node this stamp was taken of, at the
// same position) still has the stamped fields. scan does not call it for a
// node stamped with a non-zero Gen: such a Node does not change (see Node).
// It compares in place: building a stamp and comparing structs is several
// times slower (memequal, and stack stores reloaded at other widths).
func (s *stamp) matches(n *Node) bool {
	return s.gen == n.Gen && s.containers == unsafe.Pointer(unsafe.SliceData(n.Containers)) && s.ncont == len(n.Containers) &&
		s.labels == *(*unsafe.Pointer)(unsafe.Pointer(&n.Labels)) && s.cpu == n.NanoCPUs && s.mem == n.Memory &&
		s.health == n.Health
}

// rec is a node's numbers as placement needs them.
type rec struct {
	cpu, mem       int64   // reserved by active containers
	cpuMax, memMax int64   // capacity × (1 + overcommit)
	cpuPct, memPct float64 // 100 / capacity, 0 when unknown
	active         int32   // active containers
	slots          int32   // containerslots label, -1 when none
	order          int32   // rank of the node by (Name, ID) in the pool
}

const maxColumns = 64 // columns kept before all are dropped
const maxImages = 16  // image presence columns kept before all are dropped

func newIndex(factor float64) *index {
	return &index{cols: map[string]*column{}, images: map[string][]int8{}, factor: factor}
}

// fit sizes the index for a pool of n nodes, before a call. Columns are
// dropped only here, never during a call: filters hold on to them.
func (x *index) fit(n int) {
	if len(x.cols) >= maxColumns {
		clear(x.cols)
	}
	if len(x.images) >= maxImages {
		clear(x.images)
	}
	for key, c := range x.cols {
		if len(c.vals) > 2*len(x.nodes)+1024 { // stale values piled up: rebuild on next use
			delete(x.cols, key)
		}
	}
	if n != len(x.nodes) {
		x.resize(n)
		x.unordered = true
	}
}

// sync brings the index up to date with pool, refreshing the entries of
// the nodes that changed: a new *Node at a position, or for a Node with
// Gen == 0, a change of its stamp. A node stamped with a non-zero Gen is
// not read at all while the same *Node is at its position, so that check
// touches only the pool and the index's arrays, in order.
func (x *index) sync(pool []*Node) {
	nodes, stamps := x.nodes[:len(pool)], x.stamps[:len(pool)]
	for i, n := range pool {
		if n != nodes[i] {
			if n != nil {
				x.update(i, n)
			}
		} else if st := &stamps[i]; st.gen == 0 && n != nil && !st.matches(n) {
			x.update(i, n)
		}
	}
}

// update refreshes the entries of position i, now holding n.
func (x *index) update(i int, n *Node) {
	if old := x.nodes[i]; old == nil || old.Name != n.Name || old.ID != n.ID {
		x.unordered = true
	}
	x.nodes[i], x.stamps[i] = n, stampOf(n)
	x.refresh(i, n)
}

func (x *index) resize(n int) {
	x.nodes = resize(x.nodes, n)
	x.stamps = resize(x.stamps, n)
	x.recs = resize(x.recs, n)
	x.imgs = resize(x.imgs, n)
	for _, c := range x.cols {
		c.resize(n)
	}
	for k, img := range x.images {
		x.images[k] = resize(img, n)
	}
}

// resize returns s with length n; new elements are zero.
func resize[T any](s []T, n int) []T {
	if n <= len(s) {
		clear(s[n:])
		return s[:n]
	}
	return append(s, make([]T, n-len(s))...)
}

// refresh recomputes the record and column entries of node i.
func (x *index) refresh(i int, n *Node) {
	r := rec{slots: -1, order: x.recs[i].order}
	for j := range n.Containers {
		c := &n.Containers[j]
		if !c.Active() {
			continue
		}
		r.active++
		r.cpu += cpuReservation(c.NanoCPUs, c.CPUShares)
		r.mem += memReservation(c.Memory, c.MemoryReservation)
	}
	r.cpuMax = int64(float64(n.NanoCPUs) * x.factor)
	r.memMax = int64(float64(n.Memory) * x.factor)
	if n.NanoCPUs > 0 {
		r.cpuPct = 100 / float64(n.NanoCPUs)
	}
	if n.Memory > 0 {
		r.memPct = 100 / float64(n.Memory)
	}
	if s, ok := n.Labels[slotsLabel]; ok {
		if v, err := strconv.Atoi(s); err == nil {
			r.slots = int32(min(max(v, 0), 1<<30))
		}
	}
	x.recs[i] = r
	for _, c := range x.cols {
		c.set(i, c.value(n))
	}
	x.forgetImages(i)
}

func (x *index) forgetImages(i int) {
	for _, img := range x.images {
		img[i] = 0
	}
	x.imgs[i] = imgStamp{}
}

// hasImage reports whether node i holds the image, memoized in memo (an
// image column of this index). A Node with Gen set is not read while its
// memo holds: it never changes, and a new *Node at i reset the memos
// (refresh), so the image affinity of every create touches only the
// index's arrays at 10,000 nodes, not each Node.
func (x *index) hasImage(i int, n *Node, ref *imageRef, memo []int8) bool {
	if m := memo[i]; m != 0 && x.stamps[i].gen != 0 {
		return m == 1
	}
	if st := (imgStamp{unsafe.SliceData(n.Images), len(n.Images)}); st != x.imgs[i] {
		x.forgetImages(i)
		x.imgs[i] = st
	}
	if memo[i] == 0 {
		memo[i] = -1
		if n.hasImage(ref) {
			memo[i] = 1
		}
	}
	return memo[i] == 1
}

// reorder ranks the nodes by (Name, ID), the strategies' last tie-break.
func (x *index) reorder() {
	idx := make([]int32, len(x.nodes))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int {
		na, nb := x.nodes[a], x.nodes[b]
		if na == nil || nb == nil { // positions never filled go last (comparing them by position with the others would not be an order)
			if na == nil && nb == nil {
				return cmp.Compare(a, b)
			}
			if na == nil {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(na.Name, nb.Name); c != 0 {
			return c
		}
		if c := cmp.Compare(na.ID, nb.ID); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	for rank, i := range idx {
		x.recs[i].order = int32(rank)
	}
	x.unordered = false
}

// column returns the column of key, building it on first use.
func (x *index) column(key string, get func(*Node) (string, bool)) *column {
	if c, ok := x.cols[key]; ok {
		return c
	}
	c := &column{get: get, ids: map[string]int32{}, of: make([]int32, len(x.nodes))}
	for i, n := range x.nodes {
		c.of[i] = -1
		if n != nil {
			id := c.value(n)
			c.of[i] = id
			if id >= 0 {
				c.post[id] = append(c.post[id], int32(i))
			}
		}
	}
	x.cols[key] = c
	return c
}

// imageColumn returns the memo of which nodes hold the image ref. Like the
// columns, image memos are dropped only in fit, never during a call: a
// memo a filter holds must stay one that node changes reset.
func (x *index) imageColumn(ref *imageRef) []int8 {
	if c, ok := x.images[ref.name+"\x00"+ref.id]; ok { // no allocation for the key
		return c
	}
	c := make([]int8, len(x.nodes))
	x.images[ref.name+"\x00"+ref.id] = c
	return c
}

// column holds one attribute of every node, interned: of[i] is the id of
// node i's value in vals, or -1 when the node has none. Matching a rule
// then costs one evaluation per distinct value, not per node.
//
// post inverts of: post[id] lists, ascending, the positions whose value is
// id, so that an equality constraint visits only the nodes that can pass
// it. Positions whose pool entry is nil keep the value of the node last
// seen there, like the other memos. post is kept up to date as values
// change, unless many change at once (stale): then it is rebuilt when next
// used.
type column struct {
	get   func(*Node) (string, bool)
	ids   map[string]int32
	vals  []string
	of    []int32
	post  [][]int32
	moves int  // positions moved between posting lists since the last rebuild
	stale bool // post must be rebuilt from of
}

func (c *column) value(n *Node) int32 {
	s, ok := c.get(n)
	if !ok {
		return -1
	}
	id, ok := c.ids[s]
	if !ok {
		id = int32(len(c.vals))
		c.ids[s] = id
		c.vals = append(c.vals, s)
		c.post = append(c.post, nil)
	}
	return id
}

// set gives position i the value id, moving it between posting lists.
func (c *column) set(i int, id int32) {
	old := c.of[i]
	if old == id {
		return
	}
	c.of[i] = id
	if c.stale {
		return
	}
	if c.moves++; c.moves > len(c.of)/8+64 { // cheaper to rebuild
		c.stale = true
		return
	}
	if old >= 0 {
		l := c.post[old]
		if k, ok := slices.BinarySearch(l, int32(i)); ok {
			c.post[old] = slices.Delete(l, k, k+1)
		}
	}
	if id >= 0 {
		l := c.post[id]
		if k, ok := slices.BinarySearch(l, int32(i)); !ok {
			c.post[id] = slices.Insert(l, k, int32(i))
		}
	}
}

// resize sizes the column for n positions; new positions have no value
// until their node is seen.
func (c *column) resize(n int) {
	old := len(c.of)
	c.of = resize(c.of, n)
	for i := old; i < n; i++ {
		c.of[i] = -1
	}
	c.stale = true
}

// positions returns the positions holding value id, ascending. The slice
// belongs to the column: it is valid until the next change of a value.
func (c *column) positions(id int32) []int32 {
	if c.stale {
		for k := range c.post {
			c.post[k] = c.post[k][:0]
		}
		for i, v := range c.of {
			if v >= 0 {
				c.post[v] = append(c.post[v], int32(i))
			}
		}
		c.stale, c.moves = false, 0
	}
	return c.post[id]
}
