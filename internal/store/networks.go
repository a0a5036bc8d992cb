package store

import (
	"context"
	"time"
)

// PrefixNetworks holds the built-in cluster's networks (docker network
// create -d overlay): one record per network.
const PrefixNetworks = Root + "networks/"

// Network is a cluster network's record: what the API shows of it and what
// the nodes need to plumb it. The engines' own networks that back it on
// each node are made from it and are not recorded.
type Network struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Created    time.Time `json:"created"`
	Driver     string    `json:"driver"` // "overlay"
	Subnet     string    `json:"subnet"` // CIDR
	VNI        uint32    `json:"vni"`
	Attachable bool      `json:"attachable,omitempty"`
	Internal   bool      `json:"internal,omitempty"`
	// Ingress marks the routing mesh's network (swarm mode's "ingress").
	Ingress bool              `json:"ingress,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Options map[string]string `json:"options,omitempty"`
	// Slots gives each node that holds an engine network of it the index
	// of its share of the subnet (see overlay.Slot): the engines allocate
	// addresses on their own, so each gets a range of its own.
	Slots map[string]int `json:"slots,omitempty"`
	// VIPs gives each service with a virtual IP on the network its
	// address (service ID → IPv4, from the share overlay.VIPSlot keeps):
	// kept here, so that one compare-and-swap of this record allocates.
	VIPs map[string]string `json:"vips,omitempty"`
	// Key is an encrypted network's (--opt encrypted) AES-256 key: the
	// nodes seal the traffic between them with it. The store encrypts
	// every value; the API never shows it.
	Key []byte `json:"key,omitempty"`
}

// Networks is the desired state of cluster networks.
type Networks struct{ c Collection[Network] }

// NewNetworks is the networks collection of s.
func NewNetworks(s *Store) Networks {
	return Networks{c: NewCollection[Network](s, PrefixNetworks)}
}

// Create records a new network, or returns ErrExists.
func (r Networks) Create(ctx context.Context, n Network) error {
	_, err := r.c.Create(ctx, n.ID, n)
	return err
}

// Get returns a network by ID, or ErrNotFound.
func (r Networks) Get(ctx context.Context, id string) (Network, error) {
	it, err := r.c.Get(ctx, id)
	if err != nil {
		return Network{}, err
	}
	return it.Value, nil
}

// List returns every network, sorted by ID.
func (r Networks) List(ctx context.Context) ([]Network, error) {
	items, _, err := r.c.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Network, len(items))
	for i, it := range items {
		out[i] = it.Value
	}
	return out, nil
}

// Modify applies fn to the network id (ErrNotFound when it is gone),
// retrying on concurrent changes.
func (r Networks) Modify(ctx context.Context, id string, fn func(*Network) error) error {
	return r.c.Modify(ctx, id, func(cur Network, exists bool) (Network, error) {
		if !exists {
			return cur, ErrNotFound
		}
		err := fn(&cur)
		return cur, err
	})
}

// Delete removes a network, or returns ErrNotFound.
func (r Networks) Delete(ctx context.Context, id string) error { return r.c.Delete(ctx, id) }
