package nodeapi

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// leavePrefix and leaveSuffix frame dockerd's refusal to let a manager
// leave without --force (daemon/cluster/swarm.go); clients show it as is.
const (
	leavePrefix = "You are attempting to leave the swarm on a node that is participating as a manager. "
	leaveSuffix = "The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message."
)

// CanLeave says whether the node self may leave the cluster: a worker
// always may; a manager only with force, as in swarm mode. The refusal is
// dockerd's 503 and, as there, says how many managers would be left when
// leaving costs the quorum.
func CanLeave(recs []Node, members map[string]Member, self string, force bool) error {
	var me *Node
	for i := range recs {
		if recs[i].ID == self {
			me = &recs[i]
		}
	}
	if force || me == nil || me.Role != RoleManager {
		return nil
	}
	reachable, unreachable := managerStats(recs, members)
	msg := leavePrefix
	if reachable-2 <= unreachable { // swarm mode's test for a lost quorum
		if reachable == 1 && unreachable == 0 {
			msg += "Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message. "
			return errdefs.ErrUnavailable.WithMessage(msg)
		}
		msg += fmt.Sprintf("Removing this node leaves %v managers out of %v. Without a Raft quorum your swarm will be inaccessible. ", reachable-1, reachable+unreachable)
	}
	return errdefs.ErrUnavailable.WithMessage(msg + leaveSuffix)
}

// managerStats counts the managers still in the cluster whose store
// member is reachable, and the others.
func managerStats(recs []Node, members map[string]Member) (reachable, unreachable int) {
	for _, n := range recs {
		if n.Role != RoleManager || n.Left {
			continue
		}
		if m, ok := members[n.ID]; ok && m.Reachable {
			reachable++
		} else {
			unreachable++
		}
	}
	return reachable, unreachable
}
