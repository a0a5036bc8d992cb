package scheduler

import (
	"cmp"
	"slices"
	"strconv"
	"unsafe"
)

// index is a Scheduler's compact, memoized copy of the pool it last saw:
// one small record per node in a flat array, and columns of interned
// attribute values per constraint key. At 10,000 nodes a Place call can
// spend about 10 ns per node, which is roughly one cache miss: reading each
// Node, its label map and its containers on every call would cost ten
// times that. So each call only checks, per node, that the pointer and a
// stamp of the fields the records derive from are unchanged, and refreshes
// the records of the nodes that changed.
//
// This is memoization, not state: a Place call answers exactly as if it
// computed everything from the Nodes, provided Nodes are treated as
// snapshots (see Node).
type index struct {
	nodes  []*Node
	stamps []stamp
	recs   []rec
	imgs   []imgStamp // what the image memos of each node were derived from
	cols   map[string]*column
	images map[string][]int8 // normalized image ref → per node: 0 unknown, 1 yes, -1 no
	factor float64

	unordered bool // recs[].order is stale
}

// stamp is what a record was derived from: the fields of the Node's first
// cache line, so that checking it costs one memory access per node.
type stamp struct {
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
	}
}

// imgStamp is what a node's image memos were derived from; it is checked
// only when a memo is read (ties between nodes), not on every call.
type imgStamp struct {
	images *Image
	n      int
}

// matches reports whether n still has the stamped fields. It compares in
// place: building a stamp and comparing structs is several times slower
// (memequal, and stack stores reloaded at other widths).
func (s *stamp) matches(n *Node) bool {
	return s.containers == unsafe.Pointer(unsafe.SliceData(n.Containers)) && s.ncont == len(n.Containers) &&
		s.labels == *(*unsafe.Pointer)(unsafe.Pointer(&n.Labels)) && s.cpu == n.NanoCPUs && s.mem == n.Memory
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
		c.of = resize(c.of, n)
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
		c.of[i] = c.value(n)
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
// image column of this index).
func (x *index) hasImage(i int, n *Node, ref *imageRef, memo []int8) bool {
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
		if na == nil || nb == nil {
			return cmp.Compare(a, b)
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
			c.of[i] = c.value(n)
		}
	}
	x.cols[key] = c
	return c
}

// imageColumn returns the memo of which nodes hold the image ref.
func (x *index) imageColumn(ref *imageRef) []int8 {
	key := ref.name + "\x00" + ref.id
	if c, ok := x.images[key]; ok {
		return c
	}
	if len(x.images) >= maxImages {
		clear(x.images)
	}
	c := make([]int8, len(x.nodes))
	x.images[key] = c
	return c
}

// column holds one attribute of every node, interned: of[i] is the id of
// node i's value in vals, or -1 when the node has none. Matching a rule
// then costs one evaluation per distinct value, not per node.
type column struct {
	get  func(*Node) (string, bool)
	ids  map[string]int32
	vals []string
	of   []int32
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
	}
	return id
}
