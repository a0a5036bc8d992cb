package nodeapi

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// Find picks the node ref names, as swarm mode does: its full ID, else a
// unique hostname (the record's, or the name its engine reports), else a
// unique ID prefix.
func Find(recs []Node, ref string, engineName func(id string) string) (Node, error) {
	var byPrefix, byName []Node
	for _, n := range recs {
		if n.ID == ref {
			return n, nil
		}
		if strings.HasPrefix(n.ID, ref) {
			byPrefix = append(byPrefix, n)
		}
		if n.Hostname == ref || engineName(n.ID) == ref {
			byName = append(byName, n)
		}
	}
	switch {
	case len(byName) == 1:
		return byName[0], nil
	case len(byPrefix) == 1:
		return byPrefix[0], nil
	case len(byName) > 1 || len(byPrefix) > 1:
		return Node{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("node %s is ambiguous (%d matches found)", ref, max(len(byName), len(byPrefix))))
	}
	return Node{}, NotFound(ref)
}

// NotFound is dockerd's answer for a node that does not exist.
func NotFound(ref string) error {
	return errdefs.ErrNotFound.WithMessage("node " + ref + " not found")
}
