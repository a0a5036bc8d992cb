package scheduler

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// A filter is one feasibility check, set up once per request by its
// constructor and then asked about every node, cheapest filters first.
// The pipeline charges each rejected node to the first filter that
// rejected it, and Explain turns that count into words.
type filter interface {
	Name() string
	Check(v *view) bool
	Explain(failed int) string
}

// view is a node as the filters see it: the Node, its memoized record,
// and its position in the index.
type view struct {
	n *Node
	r *rec
	i int
}

// nodes words a count: "1 node", "3 nodes".
func nodes(n int) string {
	if n == 1 {
		return "1 node"
	}
	return strconv.Itoa(n) + " nodes"
}

// verb picks the singular or plural form: verb(n, "lacks", "lack").
func verb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// healthFilter keeps nodes that are Healthy; it counts the others by state
// so the explanation can say "2 nodes unhealthy, 1 node drained".
type healthFilter struct {
	byState [Drained + 2]int
}

func (f *healthFilter) Name() string { return "health" }

func (f *healthFilter) Check(v *view) bool {
	h := v.n.Health
	if h == Healthy {
		return true
	}
	if h < 0 || h > Drained {
		h = Drained + 1
	}
	f.byState[h]++
	return false
}

func (f *healthFilter) Explain(int) string {
	var parts []string
	for h, n := range f.byState {
		if n > 0 {
			parts = append(parts, nodes(n)+" "+Health(h).String())
		}
	}
	return strings.Join(parts, ", ")
}

// constraintFilter checks one hard constraint against a node attribute:
// "node" is the node's name or ID, the built-ins are the node's engine
// facts, anything else an engine label (node labels are "node.labels.x").
type constraintFilter struct {
	x    *Expr
	eq   bool       // the operator is ==
	cols [2]*column // node: name and ID; otherwise one column
	hit  [2][]int8  // per value id: 0 not yet evaluated, 1 match, -1 no match

	// With one column, the verdict per value, operator applied: ok[id+1]
	// is 1 when nodes with value id pass, -1 when they fail, 0 when not yet
	// known; ok[0] is for nodes without the attribute. of is cols[0].of
	// (the index does not reallocate it during a call). With two columns
	// ok stays empty.
	of []int32
	ok []int8
}

func newConstraintFilter(x *Expr, idx *index) *constraintFilter {
	f := &constraintFilter{x: x, eq: x.Op == OpEq}
	switch x.Key {
	case "node":
		f.cols[0] = idx.column("\x00name", nodeName)
		f.cols[1] = idx.column("\x00id", nodeID)
	case "storagedriver", "kernelversion", "operatingsystem", "ostype", "architecture":
		// Look the column up before building its getter: no allocation
		// when it exists.
		if f.cols[0] = idx.cols["\x00"+x.Key]; f.cols[0] == nil {
			f.cols[0] = idx.column("\x00"+x.Key, builtinGetter(x.Key))
		}
	default:
		if f.cols[0] = idx.cols["label:"+x.Key]; f.cols[0] == nil {
			key := x.Key
			f.cols[0] = idx.column("label:"+key, func(n *Node) (string, bool) { v, ok := n.Labels[key]; return v, ok })
		}
	}
	if f.cols[1] != nil {
		for k, c := range f.cols {
			f.hit[k] = make([]int8, len(c.vals))
		}
	} else {
		f.ok = make([]int8, len(f.cols[0].vals)+1)
	}
	f.of = f.cols[0].of
	return f
}

func nodeName(n *Node) (string, bool) { return n.Name, true }
func nodeID(n *Node) (string, bool)   { return n.ID, true }

// builtinGetter reads the engine fact key.
func builtinGetter(key string) func(*Node) (string, bool) {
	switch key {
	case "storagedriver":
		return builtin(key, func(n *Node) string { return n.StorageDriver })
	case "kernelversion":
		return builtin(key, func(n *Node) string { return n.KernelVersion })
	case "operatingsystem":
		return builtin(key, func(n *Node) string { return n.OperatingSystem })
	case "ostype":
		return builtin(key, func(n *Node) string { return n.OSType })
	}
	return builtin(key, func(n *Node) string { return n.Architecture })
}

// builtin reads an engine fact, or the engine label of the same name when
// the fact is unknown.
func builtin(key string, field func(*Node) string) func(*Node) (string, bool) {
	return func(n *Node) (string, bool) {
		if v := field(n); v != "" {
			return v, true
		}
		v, ok := n.Labels[key]
		return v, ok
	}
}

func (f *constraintFilter) Name() string { return "constraint" }

func (f *constraintFilter) Explain(failed int) string {
	return nodes(failed) + " " + verb(failed, "fails", "fail") + " constraint " + f.x.String()
}

// Check: a node without the attribute matches no == pattern, not even *:
// zone==* means "has a zone label" and zone!=* "has none".
func (f *constraintFilter) Check(v *view) bool { return f.pass(v.i) }

// narrows reports whether the constraint is an equality with a literal
// value: then only the nodes holding that value (positions) can pass it.
func (f *constraintFilter) narrows() bool { return f.eq && f.x.m.literal() }

// bound is an upper bound of len(positions()), for choosing among several
// narrowing constraints without building their lists.
func (f *constraintFilter) bound() int {
	n := 0
	for _, c := range f.cols {
		if c != nil {
			if id, ok := c.ids[f.x.Value]; ok {
				n += len(c.positions(id))
			}
		}
	}
	return n
}

// positions lists, ascending, the positions of the nodes that hold the
// value of a narrowing constraint: for node==x, the union of those named x
// and those with ID x, built in *buf. The list may belong to a column: do
// not modify it.
func (f *constraintFilter) positions(buf *[]int32) []int32 {
	var lists [2][]int32
	for k, c := range f.cols {
		if c != nil {
			if id, ok := c.ids[f.x.Value]; ok {
				lists[k] = c.positions(id)
			}
		}
	}
	if len(lists[1]) == 0 {
		return lists[0]
	}
	if len(lists[0]) == 0 {
		return lists[1]
	}
	a, b := lists[0], lists[1]
	out := (*buf)[:0]
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || len(a) > 0 && a[0] < b[0]:
			out, a = append(out, a[0]), a[1:]
		case len(a) == 0 || b[0] < a[0]:
			out, b = append(out, b[0]), b[1:]
		default: // the same position in both
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	*buf = out
	return out
}

// pass is Check for the node at position i. scan has a copy of it.
func (f *constraintFilter) pass(i int) bool {
	if k := int(f.of[i]) + 1; uint(k) < uint(len(f.ok)) {
		if h := f.ok[k]; h != 0 {
			return h > 0
		}
	}
	return f.decide(i)
}

// decide evaluates the constraint on node i and, with one column,
// memoizes the verdict on its value.
func (f *constraintFilter) decide(i int) bool {
	if f.cols[1] != nil {
		return (f.match(0, i) || f.match(1, i)) == f.eq
	}
	c := f.cols[0]
	id := c.of[i]
	pass := (id >= 0 && f.x.matches(c.vals[id])) == f.eq
	if len(f.ok) < len(c.vals)+1 { // a node refreshed during this call brought a new value
		f.ok = append(f.ok, make([]int8, len(c.vals)+1-len(f.ok))...)
	}
	f.ok[id+1] = -1
	if pass {
		f.ok[id+1] = 1
	}
	return pass
}

// match looks the node's value up in the per-call memo of the pattern's
// verdict on each distinct value.
func (f *constraintFilter) match(k, i int) bool {
	id := f.cols[k].of[i]
	if id >= 0 && int(id) < len(f.hit[k]) {
		if h := f.hit[k][id]; h != 0 {
			return h == 1
		}
	}
	return id >= 0 && f.eval(k, id)
}

// eval matches a value seen for the first time in this call.
func (f *constraintFilter) eval(k int, id int32) bool {
	if int(id) >= len(f.hit[k]) { // a node refreshed during this call brought a new value
		f.hit[k] = append(f.hit[k], make([]int8, len(f.cols[k].vals)-len(f.hit[k]))...)
	}
	h := int8(-1)
	if f.x.matches(f.cols[k].vals[id]) {
		h = 1
	}
	f.hit[k][id] = h
	return h == 1
}

// affinityFilter checks one hard affinity against what runs on a node:
// container==x (a container named x, or with ID or ID prefix x), image==x
// (the node holds image x) or <label>==x (a container on the node carries
// label <label> with value x; classic Swarm's container label affinity).
// != means that no such container or image is on the node. Containers in
// every state count, as in classic Swarm.
type affinityFilter struct {
	x   *Expr
	img imageRef // for a literal image==x
	// idx and memo, for a literal image==x, remember per node whether it
	// holds the image (index.hasImage): the soft image affinity every
	// create carries (manager: image==~<image>) looked at every image of
	// every node on every call, 5 ms a create at 10,000 nodes.
	idx  *index
	memo []int8
}

func newAffinityFilter(x *Expr) *affinityFilter {
	f := &affinityFilter{x: x}
	if x.Key == "image" && x.m.literal() {
		f.img = parseImageRef(x.Value)
	}
	return f
}

func (f *affinityFilter) Name() string { return "affinity" }

func (f *affinityFilter) Check(v *view) bool {
	var m bool
	switch f.x.Key {
	case "container":
		m = f.container(v.n)
	case "image":
		if f.memo != nil {
			m = f.idx.hasImage(v.i, v.n, &f.img, f.memo)
		} else {
			m = f.image(v.n)
		}
	default:
		m = f.label(v.n)
	}
	return m == (f.x.Op == OpEq)
}

func (f *affinityFilter) container(n *Node) bool {
	if f.x.m.literal() {
		return n.Container(f.x.Value) != nil
	}
	for i := range n.Containers {
		c := &n.Containers[i]
		if f.x.matches(c.Name) || f.x.matches(c.ID) {
			return true
		}
	}
	return false
}

// image matches a literal like Node.HasImage (default tag latest) and a
// pattern, as classic Swarm did, against each image's ID, its tags and its
// repository names without tag: image==redis:* or image==/^redis/.
func (f *affinityFilter) image(n *Node) bool {
	if f.x.m.literal() {
		return n.hasImage(&f.img)
	}
	for i := range n.Images {
		img := &n.Images[i]
		if f.x.matches(img.ID) {
			return true
		}
		for _, t := range img.RepoTags {
			t = familiar(t)
			if f.x.matches(t) {
				return true
			}
			if i := strings.LastIndexByte(t, ':'); i > strings.LastIndexByte(t, '/') && f.x.matches(t[:i]) {
				return true
			}
		}
	}
	return false
}

func (f *affinityFilter) label(n *Node) bool {
	for i := range n.Containers {
		if val, ok := n.Containers[i].Labels[f.x.Key]; ok && f.x.matches(val) {
			return true
		}
	}
	return false
}

func (f *affinityFilter) Explain(failed int) string {
	return nodes(failed) + " " + verb(failed, "fails", "fail") + " affinity " + f.x.String()
}

// containerDep requires the node holding a container the request depends
// on: --volumes-from, --link or --network container:<x>.
type containerDep struct {
	ref  string // name or ID (prefix)
	flag string // the docker run flag, for the explanation
	// exact: some node holds a container with this exact name or ID, so
	// the ref means that one, as dockerd resolves it, never another whose
	// ID merely starts with it ("db" is also a hex ID prefix).
	exact bool
}

func (f *containerDep) Name() string       { return "dependency" }
func (f *containerDep) Check(v *view) bool { return f.on(v.n) }

// on says whether n holds the container f depends on.
func (f *containerDep) on(n *Node) bool {
	if f.exact {
		return n.exactContainer(f.ref) != nil
	}
	return n.Container(f.ref) != nil
}
func (f *containerDep) Explain(failed int) string {
	return fmt.Sprintf("%s %s container %s (%s)", nodes(failed), verb(failed, "lacks", "lack"), f.ref, f.flag)
}

// resourceDep requires a node-local network or named volume that exists on
// some nodes of the pool. One that exists nowhere constrains nothing: the
// engine creates a volume on first use, and reports a missing network.
type resourceDep struct {
	kind string // network, volume
	name string
	get  func(*Node) []string
}

func (f *resourceDep) Name() string       { return "dependency" }
func (f *resourceDep) Check(v *view) bool { return slices.Contains(f.get(v.n), f.name) }
func (f *resourceDep) Explain(failed int) string {
	return fmt.Sprintf("%s %s %s %s", nodes(failed), verb(failed, "lacks", "lack"), f.kind, f.name)
}

// depsApart rejects every node when the containers a request depends on
// are each in the pool but not all on one node. The per-node counts of
// the containerDep filters ("2 nodes lack container db") would be true but
// would not say what the user must change; this says where each one is.
type depsApart struct{ text string }

func (f *depsApart) Name() string       { return "dependency" }
func (f *depsApart) Check(*view) bool   { return false }
func (f *depsApart) Explain(int) string { return f.text }

// apart returns a depsApart when deps name at least two containers, each
// found on some node, and no node holds them all; otherwise nil.
func apart(deps []*containerDep, pool []*Node) filter {
	if len(deps) < 2 {
		return nil
	}
	where := make([][]string, len(deps))
	for _, n := range pool {
		if n == nil {
			continue
		}
		all := true
		for i, d := range deps {
			if !d.on(n) {
				all = false
				continue
			}
			name := n.Name
			if n.Health != Healthy {
				name += " (" + n.Health.String() + ")"
			}
			where[i] = append(where[i], name)
		}
		if all {
			return nil
		}
	}
	links := true
	for i, d := range deps {
		if len(where[i]) == 0 {
			return nil // missing everywhere: containerDep says so
		}
		links = links && d.flag == "--link"
	}
	parts := make([]string, len(deps))
	for i, d := range deps {
		what := d.ref
		if !links {
			what += " (" + d.flag + ")"
		}
		parts[i] = what + " is on " + andList(where[i])
	}
	lead := "containers linked to must be on one node: "
	if !links {
		lead = "containers it depends on must be on one node: "
	}
	return &depsApart{lead + strings.Join(parts, ", ")}
}

// andList words names as "a", "a and b", "a, b and c".
func andList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// dependencyFilters builds the dependency filters of a request.
func dependencyFilters(req *Request, pool []*Node) []filter {
	var deps []*containerDep
	ref := func(s string) string { s, _, _ = strings.Cut(strings.TrimPrefix(s, "/"), ":"); return s }
	for _, s := range req.VolumesFrom {
		deps = append(deps, &containerDep{ref: ref(s), flag: "--volumes-from"})
	}
	for _, s := range req.Links {
		deps = append(deps, &containerDep{ref: ref(s), flag: "--link"})
	}
	nets := req.Networks
	if c, ok := strings.CutPrefix(req.NetworkMode, "container:"); ok {
		deps = append(deps, &containerDep{ref: strings.TrimPrefix(c, "/"), flag: "--network container:" + c})
	} else if req.NetworkMode != "" {
		nets = append(nets[:len(nets):len(nets)], req.NetworkMode)
	}
	for _, d := range deps {
		d.exact = anyNode(pool, func(n *Node) bool { return n.exactContainer(d.ref) != nil })
	}
	var fs []filter
	if len(deps) > 1 {
		if f := apart(distinctDeps(deps), pool); f != nil {
			fs = append(fs, f)
		}
	}
	for _, d := range deps {
		fs = append(fs, d)
	}
	seen := map[string]bool{}
	for _, name := range nets {
		switch name {
		case "", "bridge", "host", "none", "default":
			continue
		}
		if !seen["n:"+name] && anyNode(pool, func(n *Node) bool { return slices.Contains(n.Networks, name) }) {
			fs = append(fs, &resourceDep{"network", name, func(n *Node) []string { return n.Networks }})
		}
		seen["n:"+name] = true
	}
	for _, name := range req.Volumes {
		name, _, _ = strings.Cut(name, ":")
		if name == "" || strings.HasPrefix(name, "/") || seen["v:"+name] {
			continue // a host path, not a named volume
		}
		seen["v:"+name] = true
		if anyNode(pool, func(n *Node) bool { return slices.Contains(n.Volumes, name) }) {
			fs = append(fs, &resourceDep{"volume", name, func(n *Node) []string { return n.Volumes }})
		}
	}
	return fs
}

// distinctDeps drops a dependency on a container already named (by the
// same reference) by an earlier one.
func distinctDeps(deps []*containerDep) []*containerDep {
	out := make([]*containerDep, 0, len(deps))
	for _, d := range deps {
		if !slices.ContainsFunc(out, func(o *containerDep) bool { return o.ref == d.ref }) {
			out = append(out, d)
		}
	}
	return out
}

func anyNode(pool []*Node, f func(*Node) bool) bool {
	for _, n := range pool {
		if n != nil && f(n) {
			return true
		}
	}
	return false
}

// portFilter rejects nodes where an active container already binds the
// same host port and protocol on an overlapping address. The manager puts
// the published ports in Request.Ports and Container.Ports; in host
// network mode it puts the exposed ports there, since they bind the host.
type portFilter struct{ p Port }

func (f *portFilter) Name() string { return "port" }

func (f *portFilter) Check(v *view) bool {
	for i := range v.n.Containers {
		c := &v.n.Containers[i]
		if !c.Active() {
			continue
		}
		for _, q := range c.Ports {
			if q.HostPort == f.p.HostPort && proto(q.Proto) == f.p.Proto && ipsOverlap(q.HostIP, f.p.HostIP) {
				return false
			}
		}
	}
	return true
}

func (f *portFilter) Explain(failed int) string {
	what := strconv.Itoa(f.p.HostPort) + "/" + f.p.Proto
	if !anyIP(f.p.HostIP) {
		what = f.p.HostIP + ":" + what
	}
	return fmt.Sprintf("%s %s port %s in use", nodes(failed), verb(failed, "has", "have"), what)
}

func proto(p string) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(p)
}

func anyIP(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }

func ipsOverlap(a, b string) bool { return anyIP(a) || anyIP(b) || a == b }

// slotsFilter honours the engine label containerslots=N: at most N active
// containers on the node. A label that is not a number is ignored, as in
// classic Swarm.
type slotsFilter struct{}

const slotsLabel = "containerslots"

func (slotsFilter) Name() string { return "containerslots" }

func (slotsFilter) Check(v *view) bool { return v.r.slots < 0 || v.r.active < v.r.slots }

func (slotsFilter) Explain(failed int) string {
	return nodes(failed) + " " + verb(failed, "has", "have") + " no free container slot"
}

// cpuFilter and memoryFilter keep nodes whose reservations plus the ask
// stay within capacity × (1 + overcommit).
type cpuFilter struct{ ask int64 }

func (f *cpuFilter) Name() string { return "resources" }

func (f *cpuFilter) Check(v *view) bool {
	return v.r.cpu+f.ask <= v.r.cpuMax
}

func (f *cpuFilter) Explain(failed int) string {
	return fmt.Sprintf("%s %s %s", nodes(failed), verb(failed, "lacks", "lack"), humanCPUs(f.ask))
}

type memoryFilter struct{ ask int64 }

func (f *memoryFilter) Name() string { return "resources" }

func (f *memoryFilter) Check(v *view) bool {
	return v.r.mem+f.ask <= v.r.memMax
}

func (f *memoryFilter) Explain(failed int) string {
	return fmt.Sprintf("%s %s %s of memory", nodes(failed), verb(failed, "lacks", "lack"), humanBytes(f.ask))
}

// humanBytes writes a size in binary units, as the docker CLI does:
// 512 MiB, 1.5 GiB, 4 GiB.
func humanBytes(b int64) string {
	units := [...]string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	f, i := float64(b), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return trimNumber(f) + " " + units[i]
}

// humanCPUs writes NanoCPUs as a CPU count: 1 CPU, 0.5 CPU, 2 CPUs.
func humanCPUs(nano int64) string {
	f := float64(nano) / 1e9
	if f > 1 {
		return trimNumber(f) + " CPUs"
	}
	return trimNumber(f) + " CPU"
}

// trimNumber prints with at most two decimals and no trailing zeros.
func trimNumber(f float64) string {
	s := strconv.FormatFloat(f, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
