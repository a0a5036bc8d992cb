// Package scheduler decides which node runs a new container. It is a pure
// function of a request and a read-only snapshot of the nodes: no I/O, no
// clock, so it is table-tested and benchmarked in isolation.
//
// Place runs a pipeline in the manner of swarmkit: filters reject nodes,
// cheapest first (health, constraints, affinities, dependencies, ports,
// container slots, CPU, memory), counting per filter how many nodes each
// rejected, so that when nothing fits the *NoFitError says why. Soft rules
// then narrow the survivors, and a Strategy (Spread, Binpack, Random) picks
// one. ParseRules reads classic Swarm's placement syntax from env entries
// and labels.
//
// Decisions worth knowing (docs/scheduler.md says the same to users):
//   - Reservations: a container reserves max(Memory, MemoryReservation)
//     bytes and NanoCPUs, or CPUShares/1024 CPUs when NanoCPUs is unset.
//     Only active containers (every state but exited and dead, see
//     Container.Active) hold their reservation, slot and host ports.
//   - Capacity: a node accepts reservations up to capacity × (1 +
//     Options.Overcommit). A request that asks for no CPU and no memory
//     always fits resource-wise.
//   - The image: nodes that already hold req.Image win ties in Spread and
//     Binpack; it is a preference, never a filter.
package scheduler

// Health is a node's state as far as placement is concerned.
type Health int

const (
	Healthy   Health = iota
	Pending          // known, not yet checked
	Unhealthy        // stopped answering
	Paused           // availability: pause (no new placements)
	Drained          // availability: drain (no new placements)
)

func (h Health) String() string {
	switch h {
	case Healthy:
		return "healthy"
	case Pending:
		return "pending"
	case Unhealthy:
		return "unhealthy"
	case Paused:
		return "paused"
	case Drained:
		return "drained"
	}
	return "unknown"
}

// Node is a snapshot of one engine. The scheduler never modifies it.
//
// A Scheduler memoizes what it derives from each Node (reserved CPU and
// memory, active containers, health, label values, image presence), per
// position in the pool. On every call it checks, per node, that its memo
// is still good:
//
//   - Gen == 0 (the default): it reads the fields of the first cache line
//     (Health, Labels, Containers, NanoCPUs, Memory, Gen) and, when it
//     compares nodes on the image, the start and length of Images; it
//     refreshes its memo of a node when the *Node, Health, the Labels map,
//     the capacity, or the start or length of Containers or Images changed.
//     So treat a Node handed to Place as a snapshot: replace the Labels map
//     rather than writing into it; append to Containers or assign a new
//     slice rather than editing a Container in place; or simply publish a
//     new *Node.
//   - Gen != 0: the owner promises that the Node never changes once it
//     has been handed to Place: every change is published as a new *Node.
//     The scheduler then trusts its memo while the same *Node is at the
//     same position, without reading the Node at all (at 10,000 nodes,
//     reading each one costs a cache miss per node and call once other
//     work has evicted them).
//
// Keep the pool in a stable order between calls: a node whose position
// changes is recomputed.
type Node struct {
	// Read for every node with Gen == 0 on every Place call: keep these
	// first, so they share one 64-byte cache line (Node is 320 bytes, a
	// 64-aligned size).
	Health     Health
	Labels     map[string]string // engine labels (and node labels, prefixed "node.labels.")
	Containers []Container
	NanoCPUs   int64 // capacity: CPUs × 1e9
	Memory     int64 // capacity in bytes

	// Gen, when non-zero, promises that this Node is immutable (see
	// above). Any non-zero value will do; a manager can use its engine's
	// cache generation + 1, which also helps when debugging. Read only when
	// a *Node is first seen at a position.
	Gen uint64

	ID   string
	Name string // engine hostname; two nodes may share it
	Addr string

	// Built-in attributes usable in constraints.
	StorageDriver   string
	KernelVersion   string
	OperatingSystem string
	OSType          string
	Architecture    string

	Images   []Image
	Networks []string // names of node-local networks
	Volumes  []string // names of volumes

	_ [56]byte // pads Node to 320 bytes, so its first 64 bytes are one cache line
}

// Container is what the scheduler needs to know of a container already on a node.
type Container struct {
	ID      string
	Name    string // without leading slash
	Image   string // as the user named it
	ImageID string
	Labels  map[string]string
	State   string // created, running, paused, restarting, exited, dead

	NanoCPUs          int64
	CPUShares         int64
	Memory            int64
	MemoryReservation int64
	Ports             []Port // published host ports (in host network mode: its exposed ports)
}

// Image is an image present on a node.
type Image struct {
	ID          string
	RepoTags    []string
	RepoDigests []string
}

// Port is a published host port.
type Port struct {
	HostIP   string // "" or 0.0.0.0 means all addresses
	HostPort int
	Proto    string // tcp, udp, sctp
}

// Request describes the container to place, taken from the create call.
type Request struct {
	Name   string
	Image  string
	Env    []string          // may carry constraint:/affinity:/reschedule: entries
	Labels map[string]string // may carry com.docker.swarm.* entries

	NanoCPUs          int64
	CPUShares         int64
	Memory            int64
	MemoryReservation int64

	Ports       []Port   // host ports to bind; in host network mode the exposed ports. HostPort 0 (random) is ignored
	NetworkMode string   // bridge, host, none, container:<x>, <network name>
	Networks    []string // networks from NetworkingConfig
	VolumesFrom []string
	Links       []string
	Volumes     []string // named volumes used by mounts/binds

	// Rules, when set, are the request's rules already parsed by
	// ParseRules; Place then does not read Env and Labels. Set it whenever
	// Env was cleaned, or the env-given rules are lost.
	Rules *Rules
}
