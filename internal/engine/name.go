package engine

import "strings"

// NamePath is a container name as a path: "web" on an engine, "node1/web"
// as a shoal lists it, "member/node1/web" through a shoal of shoals. It is
// parsed once, so a name with slashes is kept whole rather than cut at its
// first slash.
type NamePath []string

// ParseNamePath parses "/a/b/c" or "a/b/c"; empty segments are dropped.
func ParseNamePath(s string) NamePath {
	var p NamePath
	for _, seg := range strings.Split(s, "/") {
		if seg != "" {
			p = append(p, seg)
		}
	}
	return p
}

// String is the path as Docker lists names: "/a/b/c".
func (p NamePath) String() string { return "/" + strings.Join(p, "/") }

// Base is the last segment: the container's own name.
func (p NamePath) Base() string {
	if len(p) == 0 {
		return ""
	}
	return p[len(p)-1]
}

// Under is p below node: how a shoal lists the names of node's containers.
func (p NamePath) Under(node string) NamePath {
	return append(NamePath{node}, p...)
}

// Equal says whether p and q are the same path.
func (p NamePath) Equal(q NamePath) bool {
	if len(p) != len(q) {
		return false
	}
	for i := range p {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

// HasSuffix says whether q ends p: "web" and "node1/web" both end
// "member/node1/web".
func (p NamePath) HasSuffix(q NamePath) bool {
	return len(q) > 0 && len(q) <= len(p) && p[len(p)-len(q):].Equal(q)
}

// Path is the container's own name as a path. dockerd also lists a
// linked container under "/<linker>/<alias>", one segment longer than its
// own name wherever it is listed, so the shortest name is its own.
func (c *Container) Path() NamePath {
	var best NamePath
	for _, n := range c.Names {
		if p := ParseNamePath(n); len(p) > 0 && (best == nil || len(p) < len(best)) {
			best = p
		}
	}
	return best
}
