package manager

import "github.com/moby/moby/api/types/swarm"

// localSwarmInfo is /info's Swarm section under `shoal manage` with a
// store: services work there, and the docker CLI runs `stack deploy` only
// when ControlAvailable says the daemon is a manager. NodeID stays empty
// (manage is no node of its own) and Nodes, Managers and Cluster stay
// unset, so the section keeps the keys of a plain engine's: only a swarm
// with a cluster object shows those, and clients comparing keys see no change.
func localSwarmInfo() swarm.Info {
	return swarm.Info{LocalNodeState: swarm.LocalNodeStateActive, ControlAvailable: true}
}
