// Package orchestrator keeps services at their desired state: from the
// services and tasks in the store and the nodes and containers the
// Runtime observes, a pure Reconcile decides which tasks to make, start,
// stop and remove (replicated, global and job modes, restarts with
// backoff, node loss, rolling updates and rollback, rebalancing), and a
// thin loop, run only by the leader, applies that plan through the
// Runtime and writes task states back to the store.
package orchestrator

import (
	"context"
	"errors"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// Node is a node as the orchestrator places tasks on it. ID is the node's
// ID as `docker node ls` shows it (the built-in cluster's node ID, or the
// engine's node ID under `shoal manage`).
type Node struct {
	ID           string
	Hostname     string
	Role         swarm.NodeRole         // manager or worker
	Availability swarm.NodeAvailability // active, pause or drain
	// Ready is false while the node is down (its engine unhealthy or
	// unreachable): its tasks are to be replaced elsewhere.
	Ready bool
	// DownSince is when a node not ready began to fail, as far as the
	// runtime knows (zero: unknown; the orchestrator counts from when it
	// saw the node down).
	DownSince    time.Time
	Labels       map[string]string // node labels (docker node update --label-add)
	EngineLabels map[string]string // the engine's own labels (dockerd --label)
	OS, Arch     string
	NanoCPUs     int64 // the node's CPUs, in units of 1e-9 CPU
	MemoryBytes  int64
	// ReservedNanoCPUs and ReservedMemoryBytes are what the node's
	// existing containers (tasks included) already reserve.
	ReservedNanoCPUs    int64
	ReservedMemoryBytes int64
	// GenericResources are what the node advertises (dockerd
	// --node-generic-resource, in its /info): discrete counts and named
	// values. What tasks hold of them is counted from the tasks.
	GenericResources []swarm.GenericResource
}

// Observed is the container of a task as its engine last showed it.
type Observed struct {
	TaskID      string // its com.docker.swarm.task.id label
	NodeID      string
	ContainerID string
	State       string // the engine's State.Status: created, running, paused, restarting, removing, exited, dead
	Health      string // "", "starting", "healthy" or "unhealthy"
	ExitCode    int
	Error       string // the engine's State.Error
	PID         int
	StartedAt   time.Time
	FinishedAt  time.Time
	// Ports are the ports the container publishes on its node (the
	// service's host-mode ports, with the ones the engine chose), shown
	// in the task's Status.PortStatus as swarm mode does.
	Ports []swarm.PortConfig
}

// Runtime is what the orchestrator's loop needs of the cluster: the nodes,
// the containers of tasks, and typed operations on them. The manager
// implements it over the engine pool.
type Runtime interface {
	// Nodes returns every node of the cluster, ready or not.
	Nodes(ctx context.Context) ([]Node, error)
	// Containers returns the containers that carry a task ID label, on
	// every node whose containers are known (a node that is down keeps
	// its last known ones), and the IDs of nodes whose view is stale.
	Containers(ctx context.Context) (obs []Observed, staleNodes []string, err error)
	// Start makes and starts the container of t (named
	// <service>.<slot>.<task id>, or <service>.<node id>.<task id> for a
	// global service, with swarm mode's labels) on t.NodeID, pulling its
	// image there first if the node lacks it. A container of t that
	// exists already is started, not made again. The pull uses the
	// service's registry auth (svc.RegistryAuth), which must never be
	// logged nor returned in an error. An error wrapping ErrUnreachable
	// says the node did not answer (its engine died or is down): that is
	// the node's loss, not the task's failure.
	Start(ctx context.Context, svc store.Service, t store.Task) (containerID string, err error)
	// Stop stops the container of t within timeout (then kills it).
	Stop(ctx context.Context, t store.Task, timeout time.Duration) error
	// Remove removes the container of t (forced).
	Remove(ctx context.Context, t store.Task) error
	// Changed receives a value (coalesced) after each change to a task's
	// container or to a node, until ctx ends.
	Changed(ctx context.Context) <-chan struct{}
}

// ErrUnreachable is wrapped by a Runtime's Start that could not reach the
// task's node: the task is not rejected (nor counted as an update's
// failure); it stays assigned, its start is tried again after a while, and
// it is replaced elsewhere once the node is seen down.
var ErrUnreachable = errors.New("orchestrator: node unreachable")
