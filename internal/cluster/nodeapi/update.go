package nodeapi

import (
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
)

// CheckSpec refuses availabilities and roles swarm mode does not know.
func CheckSpec(spec swarm.NodeSpec) error {
	switch spec.Availability {
	case "", swarm.NodeAvailabilityActive, swarm.NodeAvailabilityPause, swarm.NodeAvailabilityDrain:
	default:
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid availability %q", spec.Availability))
	}
	switch spec.Role {
	case "", swarm.NodeRoleWorker, swarm.NodeRoleManager:
	default:
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid role %q", spec.Role))
	}
	return nil
}

// IsDemotion says whether spec turns the manager n into a worker.
func IsDemotion(n Node, spec swarm.NodeSpec) bool {
	return spec.Role == swarm.NodeRoleWorker && n.Role == RoleManager
}

// IsPromotion says whether spec turns the worker n into a manager.
func IsPromotion(n Node, spec swarm.NodeSpec) bool {
	return spec.Role == swarm.NodeRoleManager && n.Role == RoleWorker
}

// Apply is cur with spec applied, if version is cur's; the labels are
// replaced as a whole, an empty role or availability keeps the current one.
func Apply(cur Node, version uint64, spec swarm.NodeSpec, now time.Time) (Node, error) {
	if cur.Version != version {
		return cur, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, ErrOutOfSequence)
	}
	if spec.Role != "" {
		cur.Role = string(spec.Role)
	}
	if cur.Role == RoleWorker {
		cur.ClusterAddr = "" // a worker serves no cluster port
	}
	if spec.Availability != "" {
		cur.Availability = string(spec.Availability)
	}
	cur.Labels = spec.Labels
	cur.Version++
	cur.UpdatedAt = now.UTC()
	return cur, nil
}

// CanDemote refuses, as swarm mode does, to demote the last manager or a
// manager whose leaving would cost the store its quorum: the voters left
// after it goes must still have a reachable majority.
func CanDemote(recs []Node, members map[string]Member, id string) error {
	managers := 0
	for _, n := range recs {
		if n.Role == RoleManager {
			managers++
		}
	}
	if managers <= 1 {
		return errdefs.ErrFailedPrecondition.WithMessage("attempting to demote the last manager of the swarm")
	}
	if m, ok := members[id]; !ok || m.Learner {
		return nil // not a voter: its leaving changes no majority
	}
	voters, reachable := 0, 0
	for name, m := range members {
		if m.Learner || name == id {
			continue
		}
		voters++
		if m.Reachable {
			reachable++
		}
	}
	if reachable < voters/2+1 {
		return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("can't remove member from the raft: this would result in a loss of quorum (%d of the %d remaining managers reachable)", reachable, voters))
	}
	return nil
}

// CanRemove refuses to remove the manager answering (self), any manager
// (demote it first), or a node still Ready unless forced.
func CanRemove(n Node, ref, self string, ready, force bool) error {
	switch {
	case n.ID == self:
		return errdefs.ErrFailedPrecondition.WithMessage("node " + ref + " is the manager you are talking to and cannot be removed")
	case n.Role == RoleManager:
		return errdefs.ErrFailedPrecondition.WithMessage("node " + ref + " is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal")
	case !force && ready:
		return errdefs.ErrFailedPrecondition.WithMessage("node " + ref + " is not down and can't be removed")
	}
	return nil
}
