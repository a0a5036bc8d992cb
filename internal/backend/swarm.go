package backend

import "github.com/moby/moby/api/types/swarm"

// SwarmUpdate is POST /swarm/update: the spec (nil when the request had no
// body, as shoal's own join-token command sends) applies if Version is
// the swarm's current one; the flags rotate secrets.
type SwarmUpdate struct {
	Version                uint64
	Spec                   *swarm.Spec
	RotateWorkerToken      bool
	RotateManagerToken     bool
	RotateManagerUnlockKey bool
}
