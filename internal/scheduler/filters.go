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
	of0  []int32    // cols[0].of; the index does not reallocate it during a call
	cols [2]*column // node: name and ID; otherwise one column
	hit  [2][]int8  // per value id: 0 not yet evaluated, 1 match, -1 no match
}

func newConstraintFilter(x *Expr, idx *index) *constraintFilter {
	f := &constraintFilter{x: x, eq: x.Op == OpEq}
	switch x.Key {
	case "node":
		f.cols[0] = idx.column("\x00name", func(n *Node) (string, bool) { return n.Name, true })
		f.cols[1] = idx.column("\x00id", func(n *Node) (string, bool) { return n.ID, true })
	case "storagedriver":
		f.cols[0] = idx.column("\x00"+x.Key, builtin(x.Key, func(n *Node) string { return n.StorageDriver }))
	case "kernelversion":
		f.cols[0] = idx.column("\x00"+x.Key, builtin(x.Key, func(n *Node) string { return n.KernelVersion }))
	case "operatingsystem":
		f.cols[0] = idx.column("\x00"+x.Key, builtin(x.Key, func(n *Node) string { return n.OperatingSystem }))
	case "ostype":
		f.cols[0] = idx.column("\x00"+x.Key, builtin(x.Key, func(n *Node) string { return n.OSType }))
	case "architecture":
		f.cols[0] = idx.column("\x00"+x.Key, builtin(x.Key, func(n *Node) string { return n.Architecture }))
	default:
		key := x.Key
		f.cols[0] = idx.column("label:"+key, func(n *Node) (string, bool) { v, ok := n.Labels[key]; return v, ok })
	}
	for k, c := range f.cols {
		if c != nil {
			f.hit[k] = make([]int8, len(c.vals))
		}
	}
	f.of0 = f.cols[0].of
	return f
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
func (f *constraintFilter) Check(v *view) bool {
	if f.cols[1] == nil { // the common case, with the indirections hoisted
		if id := f.of0[v.i]; id >= 0 && int(id) < len(f.hit[0]) {
			if h := f.hit[0][id]; h != 0 {
				return (h == 1) == f.eq
			}
		}
		return f.match(0, v.i) == f.eq
	}
	return (f.match(0, v.i) || f.match(1, v.i)) == f.eq
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
		m = f.image(v.n)
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
}

func (f *containerDep) Name() string       { return "dependency" }
func (f *containerDep) Check(v *view) bool { return v.n.Container(f.ref) != nil }
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

// dependencyFilters builds the dependency filters of a request.
func dependencyFilters(req *Request, pool []*Node) []filter {
	var fs []filter
	ref := func(s string) string { s, _, _ = strings.Cut(strings.TrimPrefix(s, "/"), ":"); return s }
	for _, s := range req.VolumesFrom {
		fs = append(fs, &containerDep{ref(s), "--volumes-from"})
	}
	for _, s := range req.Links {
		fs = append(fs, &containerDep{ref(s), "--link"})
	}
	nets := req.Networks
	if c, ok := strings.CutPrefix(req.NetworkMode, "container:"); ok {
		fs = append(fs, &containerDep{strings.TrimPrefix(c, "/"), "--network container:" + c})
	} else if req.NetworkMode != "" {
		nets = append(nets[:len(nets):len(nets)], req.NetworkMode)
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
