package manager

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// A shoal is a node of another (a member of a federation): the upper shoal
// reads its leaves at engine.MemberPath and places into them, one
// scheduler node per leaf, so that CPUs, memory and constraints are those
// of the inner node that will run the container, not the member's sums.
// The create it then sends pins that leaf (constraint node==<leaf ID>),
// and every level does the same, to any depth.

// Name is this shoal's name: --name, else the host's name, as dockerd
// names itself. A member is known by it above ("siteA/e1/web").
func (m *Manager) Name() string {
	if m.cfg.Name != "" {
		return m.cfg.Name
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "shoal"
}

// withOwnLabels adds this shoal's own labels (--label) to a node's: a
// shoal's label holds for every node in it, so constraint:region==eu
// placed here or from above finds its nodes. The node's own label wins.
func (m *Manager) withOwnLabels(labels map[string]string) map[string]string {
	if len(m.cfg.Labels) == 0 {
		return labels
	}
	out := make(map[string]string, len(labels)+len(m.cfg.Labels))
	for k, v := range m.cfg.Labels {
		out[k] = v
	}
	for k, v := range labels {
		out[k] = v
	}
	return out
}

// FederationNodes is this shoal's answer at engine.MemberPath: its name,
// its labels and its leaves, a member's leaves listed under its name.
func (m *Manager) FederationNodes(ctx context.Context) (json.RawMessage, error) {
	m.awaitContact(ctx)
	v := engine.MemberView{Name: m.Name(), Labels: m.cfg.Labels, Nodes: m.leafNodes(true)}
	v.NCPU, v.MemTotal, v.FreeNanoCPUs, v.FreeMemory, v.Largest = freeOf(v.Nodes)
	return json.Marshal(v)
}

// leafNodes lists the leaves of this shoal: its engines, and the leaves
// of its members under the member's name; with their labels if asked.
func (m *Manager) leafNodes(labels bool) []engine.MemberNode {
	out := []engine.MemberNode{}
	for _, e := range m.pool.Engines() {
		st := leafState(e)
		if mv := e.Member(); mv != nil && len(mv.Nodes) > 0 {
			for _, l := range mv.Nodes {
				n := l
				n.Name, n.ID = e.Name()+"/"+l.Name, e.ID+"/"+l.ID
				if st != "healthy" {
					n.State = st
				}
				n.Labels = nil
				if labels {
					n.Labels = m.withOwnLabels(l.Labels)
				}
				out = append(out, n)
			}
			continue
		}
		sum := m.engineSummary(e)
		n := engine.MemberNode{Name: e.Name(), ID: e.ID, Addr: e.Addr, State: st, Containers: sum.containers,
			NCPU: sum.ncpu, MemTotal: sum.memTotal, Reserved: engine.Placement{NanoCPUs: sum.reservedCPU, Memory: sum.reservedMem}}
		if info := e.Info(); info != nil && labels {
			n.Labels = m.withOwnLabels(m.withNodeLabels(e.Addr, engineLabels(info.Labels)))
		}
		if labels { // what a shoal above is told (member.go), not info's sums
			for _, img := range e.Images() {
				n.Images = append(n.Images, img.ID)
			}
		}
		out = append(out, n)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// freeOf sums the capacity and the free share of the healthy leaves, and
// finds the largest single placement: the leaf with the most free memory,
// with its free CPUs (then the most free CPUs among equals).
func freeOf(nodes []engine.MemberNode) (ncpu int, mem, freeCPU, freeMem int64, largest engine.Placement) {
	for _, n := range nodes {
		if n.State != "healthy" {
			continue
		}
		c := max(int64(n.NCPU)*1e9-n.Reserved.NanoCPUs, 0)
		b := max(n.MemTotal-n.Reserved.Memory, 0)
		ncpu, mem, freeCPU, freeMem = ncpu+n.NCPU, mem+n.MemTotal, freeCPU+c, freeMem+b
		if b > largest.Memory || (b == largest.Memory && c > largest.NanoCPUs) {
			largest = engine.Placement{NanoCPUs: c, Memory: b}
		}
	}
	return
}

func leafState(e *engine.Engine) string {
	switch st, _ := e.State(); st {
	case engine.Healthy:
		return "healthy"
	case engine.Unhealthy:
		return "unhealthy"
	}
	return "pending"
}

// leafViews splits a member's scheduler view into one view per leaf: the
// leaf's capacity, labels and health, and the member's containers listed
// under that leaf ("e1/web" is e1's), and the member's images that the
// leaf holds (none from a member too old to say: then no leaf is
// preferred for its image, as before). Networks and
// volumes are the member's. Nil when e is not a member that said its leaves.
func leafViews(e *engine.Engine, whole *scheduler.Node, own func(map[string]string) map[string]string) []*scheduler.Node {
	mv := e.Member()
	if mv == nil || len(mv.Nodes) == 0 {
		return nil
	}
	// By ID through a map: whole.Container(id) is a scan, and a scan per
	// container made each rebuild of a member of thousands quadratic.
	byID := make(map[string]int, len(whole.Containers))
	for i := range whole.Containers {
		byID[whole.Containers[i].ID] = i
	}
	byLeaf := map[string][]scheduler.Container{}
	for _, c := range e.Containers() {
		p := c.Path()
		if len(p) < 2 {
			continue
		}
		leaf := strings.Join(p[:len(p)-1], "/")
		if i, ok := byID[c.ID]; ok {
			byLeaf[leaf] = append(byLeaf[leaf], whole.Containers[i])
		}
	}
	out := make([]*scheduler.Node, 0, len(mv.Nodes))
	for _, l := range mv.Nodes {
		n := *whole
		n.ID, n.Name = e.ID+"/"+l.ID, e.Name()+"/"+l.Name
		n.Labels = own(l.Labels)
		n.NanoCPUs, n.Memory = int64(l.NCPU)*1e9, l.MemTotal
		n.Containers = byLeaf[l.Name]
		n.Images = leafImages(whole.Images, l.Images)
		if n.Health == scheduler.Healthy && l.State != "healthy" {
			n.Health = scheduler.Unhealthy
			if l.State == "pending" {
				n.Health = scheduler.Pending
			}
		}
		out = append(out, &n)
	}
	return out
}

// leafImages are the member's images that one of its leaves holds (by ID).
func leafImages(all []scheduler.Image, ids []string) []scheduler.Image {
	has := make(map[string]bool, len(ids))
	for _, id := range ids {
		has[id] = true
	}
	var out []scheduler.Image
	for _, img := range all {
		if has[img.ID] {
			out = append(out, img)
		}
	}
	return out
}

// leafOf is the leaf ID (as the member knows it) of scheduler node id on
// engine e, "" when the node is e itself.
func leafOf(e *engine.Engine, id string) string {
	if id == e.ID {
		return ""
	}
	return strings.TrimPrefix(id, e.ID+"/")
}

// pinToLeaf rewrites a create's placement rules for the member that will
// run it: its constraints, checked here against the leaf (whose labels
// hold those of every shoal above it, which the member's own nodes do not
// carry), become the one constraint node==<leaf ID>, so the member places
// it on the leaf chosen here; affinities and the reschedule policy go on
// as given.
func pinToLeaf(rules scheduler.Rules, leaf string) (scheduler.Rules, error) {
	pin, err := scheduler.ParseExpr("constraint", "node=="+leaf)
	if err != nil {
		return rules, err
	}
	out := rules
	out.Constraints = []scheduler.Expr{pin}
	return out, nil
}

// memberScoped makes node==<member name> (or !=) mean the member's every
// leaf: the leaves are named "<member>/<leaf>", so it becomes a glob.
func (m *Manager) memberScoped(rules scheduler.Rules) scheduler.Rules {
	var out []scheduler.Expr
	for i, x := range rules.Constraints {
		if x.Key != "node" || strings.ContainsAny(x.Value, "*?/") {
			continue
		}
		if e := m.memberNamed(x.Value); e != nil {
			if out == nil {
				out = append([]scheduler.Expr(nil), rules.Constraints...)
			}
			op := "=="
			if x.Op == scheduler.OpNotEq {
				op = "!="
			}
			if x.Soft {
				op += "~"
			}
			if y, err := scheduler.ParseExpr("constraint", "node"+op+x.Value+"/*"); err == nil {
				out[i] = y
			}
		}
	}
	if out != nil {
		rules.Constraints = out
	}
	return rules
}

func (m *Manager) memberNamed(name string) *engine.Engine {
	for _, e := range m.pool.Engines() {
		if mv := e.Member(); mv != nil && len(mv.Nodes) > 0 && e.Name() == name {
			return e
		}
	}
	return nil
}

// memberSummary is the line info and node inspect show of a member: its
// kind, how many nodes it holds and how many are healthy.
func memberSummary(e *engine.Engine) (nodes, healthy int, ok bool) {
	if !e.IsShoal() {
		return 0, 0, false
	}
	mv := e.Member()
	if mv == nil {
		return 0, 0, true
	}
	for _, l := range mv.Nodes {
		nodes++
		if l.State == "healthy" {
			healthy++
		}
	}
	return nodes, healthy, true
}

// memberKind is the "Kind" line of a member in info.
func memberKind(e *engine.Engine) (string, bool) {
	nodes, healthy, ok := memberSummary(e)
	if !ok {
		return "", false
	}
	return fmt.Sprintf("shoal member: %d nodes (%d healthy)", nodes, healthy), true
}

// membersByTunnel is the Kind line of every member of the built-in
// cluster's pool, by engine address (tunnel://<node ID>).
func (m *Manager) membersByTunnel() map[string]string {
	out := map[string]string{}
	for _, e := range m.pool.Engines() {
		if kind, ok := memberKind(e); ok {
			out[e.Addr] = kind
		}
	}
	return out
}

// ownLabelList is this shoal's labels as /info lists an engine's: "k=v",
// sorted.
func (m *Manager) ownLabelList() []string {
	out := make([]string, 0, len(m.cfg.Labels))
	for k, v := range m.cfg.Labels {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
