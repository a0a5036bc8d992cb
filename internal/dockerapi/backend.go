package dockerapi

import (
	"context"
	"encoding/json"
	"io"
	"net/url"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/volume"
	"github.com/shoal-dev/shoal/internal/backend"
)

// Target is one engine a request can be forwarded to.
type Target = backend.Target

// The backend interfaces, one per noun of the API: each handler file
// depends on its noun's interface only. Requests reach them parsed (bad
// input is answered here, at the edge) and replies leave them typed.

// System serves info, version and disk usage.
type System interface {
	// Info is the cluster's /info answer, encoded (with a thousand nodes
	// its per-node lines are most of it, kept encoded per engine).
	Info(ctx context.Context) (json.RawMessage, error)
	KernelVersion() string
	DiskUsage(ctx context.Context, opts backend.DiskUsageOptions) (backend.Report, error)
	// FederationNodes is GET /_shoal/nodes: this shoal's name, labels and
	// leaf nodes, read by a shoal above it (a federation), encoded.
	FederationNodes(ctx context.Context) (json.RawMessage, error)
}

// Containers serves the container calls shoal answers itself, and finds
// the engine of the ones it forwards.
type Containers interface {
	ListContainers(ctx context.Context, opts backend.ContainerListOptions) (backend.ContainerList, error)
	CreateContainer(ctx context.Context, req backend.ContainerCreateRequest) (*container.CreateResponse, error)
	// ResolveContainer finds the engine holding ref (ID, prefix, name,
	// node/name, member/node/name): the container's ID ("" if no engine
	// has it: then t is any engine, to answer the 404 in its words) and
	// the reference to put in the engine's path.
	ResolveContainer(ctx context.Context, ref string) (t Target, id, pathRef string, err error)
	// ResolveLink finds the engine of the parent of link ref
	// ("parent/alias", DELETE /containers/{ref}?link=1), the parent's ID
	// and the link's name on that engine, by which dockerd removes it.
	ResolveLink(ctx context.Context, ref string) (t Target, parentID, pathRef string, err error)
	// ContainerChanged refreshes shoal's view after a forwarded call changed it.
	ContainerChanged(ctx context.Context, t Target, id string, removed bool)
	// InspectNode describes the node of t for the "Node" field of inspect.
	InspectNode(t Target) *backend.NodeSummary
	// CheckRename reserves newName for id, or says it is taken; release ends the reservation.
	CheckRename(ctx context.Context, id, newName string) (release func(), err error)
	PruneContainers(ctx context.Context, opts backend.PruneOptions) (*container.PruneReport, error)
}

// Execs finds the engine of exec instances.
type Execs interface {
	ExecCreated(t Target, execID string)
	ResolveExec(ctx context.Context, id string) (Target, error)
}

// Images serves the image calls run across the pool and finds the engine
// of the ones it forwards.
type Images interface {
	ListImages(ctx context.Context, opts backend.ImageListOptions) ([]backend.Object, error)
	ResolveImage(ctx context.Context, name string) (Target, error)
	LoadImage(ctx context.Context, req backend.ImageStreamRequest, w io.Writer) error
	PullImage(ctx context.Context, req backend.ImageStreamRequest, w io.Writer) error
	// ImportImage imports (POST /images/create?fromSrc=...) on every healthy engine.
	ImportImage(ctx context.Context, req backend.ImageStreamRequest, w io.Writer) error
	// ImagesChanged refreshes shoal's view of t's images after a forwarded change.
	ImagesChanged(t Target)
	// AnyEngine is a healthy engine for calls any engine can answer
	// (search, login, distribution).
	AnyEngine() (Target, error)
	TagImage(ctx context.Context, name string, opts backend.ImageTagOptions) error
	RemoveImage(ctx context.Context, name string, opts backend.ImageRemoveOptions) ([]image.DeleteResponse, error)
	PruneImages(ctx context.Context, opts backend.PruneOptions) (*image.PruneReport, error)
}

// Builds places builds and prunes the build cache.
type Builds interface {
	// PlaceBuild chooses the engine for a build from the constraint:...
	// build args, the cachefrom images and the network mode, and returns
	// what to send the engine instead (Args nil: the client's unchanged).
	PlaceBuild(ctx context.Context, req backend.BuildPlacement) (Target, backend.BuildPlacement, error)
	PruneBuildCache(ctx context.Context, opts backend.PruneOptions) (*build.CachePruneReport, error)
}

// Networks serves networks, each on one node.
type Networks interface {
	ListNetworks(ctx context.Context, opts backend.ListOptions) ([]backend.Object, error)
	CreateNetwork(ctx context.Context, req backend.ObjectCreateRequest) (backend.Object, error)
	// ResolveNetwork finds the node and ID of a network.
	ResolveNetwork(ctx context.Context, ref string) (Target, string, error)
	// ResolveNetworkFor finds network on the node of container, for connect and disconnect.
	ResolveNetworkFor(ctx context.Context, network, container string) (t Target, networkID, containerID string, err error)
	// ObjectsChanged refreshes t's networks and volumes after a forwarded change.
	ObjectsChanged(t Target)
	PruneNetworks(ctx context.Context, opts backend.PruneOptions) (*network.PruneReport, error)
}

// Volumes serves volumes, each on one node.
type Volumes interface {
	ListVolumes(ctx context.Context, opts backend.ListOptions) (*backend.VolumeList, error)
	CreateVolume(ctx context.Context, req backend.ObjectCreateRequest) (backend.Object, error)
	// ResolveVolume finds the node and name of a volume.
	ResolveVolume(ctx context.Context, ref string) (Target, string, error)
	ObjectsChanged(t Target)
	PruneVolumes(ctx context.Context, opts backend.PruneOptions) (*volume.PruneReport, error)
}

// Events streams the pool's events.
type Events interface {
	Events(ctx context.Context, opts backend.EventsOptions, w io.Writer) error
}

// Nodes serves swarm mode's node calls.
type Nodes interface {
	Nodes(ctx context.Context, filters backend.Filters) ([]swarm.Node, error)
	Node(ctx context.Context, ref string) (*swarm.Node, error)
	UpdateNode(ctx context.Context, ref string, version uint64, spec swarm.NodeSpec) error
	RemoveNode(ctx context.Context, ref string, force bool) error
}

// Swarm serves swarm mode's swarm calls (the built-in cluster).
type Swarm interface {
	Swarm(ctx context.Context) (*swarm.Swarm, error)
	UpdateSwarm(ctx context.Context, u backend.SwarmUpdate) error
	// SwarmStatus is the local node state and whether this is a manager.
	SwarmStatus() (state string, manager bool)
	// LeaveSwarm is swarm leave on this node (force: even a manager).
	LeaveSwarm(ctx context.Context, force bool) error
}

// Services serves swarm mode's service and task calls over shoal's store
// (services.Backend). Task node IDs are those `docker node ls` shows.
type Services interface {
	CreateService(ctx context.Context, spec swarm.ServiceSpec, encodedAuth string) (swarm.ServiceCreateResponse, error)
	// Services lists the services matching filters, with ServiceStatus
	// when status is set.
	Services(ctx context.Context, filters backend.Filters, status bool) ([]swarm.Service, error)
	// Service finds a service by ID, name or unique ID prefix.
	Service(ctx context.Context, ref string, insertDefaults bool) (swarm.Service, error)
	UpdateService(ctx context.Context, ref string, opts backend.ServiceUpdate) (swarm.ServiceUpdateResponse, error)
	RemoveService(ctx context.Context, ref string) error
	Tasks(ctx context.Context, filters backend.Filters) ([]swarm.Task, error)
	Task(ctx context.Context, ref string) (swarm.Task, error)
	// Logs resolves the service (or task) ref and returns whether its
	// logs are a TTY's (raw) and the function writing them to w (which
	// it flushes through a Flush method, if w has one).
	Logs(ctx context.Context, ref string, task bool, opts backend.ServiceLogsOptions) (tty bool, stream func(w io.Writer) error, err error)
}

// Backend is one value serving every noun (the cluster manager).
type Backend interface {
	System
	Containers
	Execs
	Images
	Builds
	Networks
	Volumes
	Events
	Nodes
	Swarm
}

// Backends are the backend of each noun. A nil Swarm answers swarm calls
// as a node outside a swarm; the others must be set for their routes.
type Backends struct {
	System     System
	Containers Containers
	Execs      Execs
	Images     Images
	Builds     Builds
	Networks   Networks
	Volumes    Volumes
	Events     Events
	Nodes      Nodes
	Swarm      Swarm
	Plugins    Plugins // nil: GET /plugins is answered 501
}

// Plugins lists the engines' plugins (docker plugin ls): each engine's,
// with the node it is on.
type Plugins interface {
	ListPlugins(ctx context.Context, version string, query url.Values) ([]map[string]any, error)
}

// All is b serving every noun.
func All(b Backend) Backends {
	bs := Backends{System: b, Containers: b, Execs: b, Images: b, Builds: b, Networks: b,
		Volumes: b, Events: b, Nodes: b, Swarm: b}
	if p, ok := b.(Plugins); ok {
		bs.Plugins = p
	}
	return bs
}
