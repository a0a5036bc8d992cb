// Package scheduler decides which node runs a new container. It is a pure
// function of a request and a read-only snapshot of the nodes: no I/O, no
// clock, so it is table-tested and benchmarked in isolation.
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
type Node struct {
	ID     string
	Name   string // engine hostname; two nodes may share it
	Addr   string
	Health Health
	Labels map[string]string // engine labels (and node labels, prefixed "node.labels.")

	// Built-in attributes usable in constraints.
	StorageDriver   string
	KernelVersion   string
	OperatingSystem string
	OSType          string
	Architecture    string

	NanoCPUs int64 // capacity: CPUs × 1e9
	Memory   int64 // capacity in bytes

	Containers []Container
	Images     []Image
	Networks   []string // names of node-local networks
	Volumes    []string // names of volumes
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
	Ports             []Port // published host ports
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

	Ports       []Port
	NetworkMode string   // bridge, host, none, container:<x>, <network name>
	Networks    []string // networks from NetworkingConfig
	VolumesFrom []string
	Links       []string
	Volumes     []string // named volumes used by mounts/binds
}
