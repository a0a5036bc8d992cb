package store

import (
	"context"
	"errors"
	"time"
)

// PrefixPorts holds the cluster's table of published ports.
const PrefixPorts = Root + "ports/"

// PortClaim is a published port of the routing mesh taken by a service
// that is being created or updated: services' records show the ports they
// publish once written, the claims cover the moment before, so that two
// managers writing two services at once cannot give both the same port.
type PortClaim struct {
	Service string    `json:"service"` // the service's ID
	At      time.Time `json:"at"`
}

// PortTable is every claim, by "<protocol>/<port>".
type PortTable struct {
	Claims map[string]PortClaim `json:"claims"`
}

// Ports is the table of published ports: one record, changed by
// compare-and-swap.
type Ports struct{ c Collection[PortTable] }

// NewPorts is the table of s.
func NewPorts(s *Store) Ports { return Ports{c: NewCollection[PortTable](s, PrefixPorts)} }

const portsID = "ingress"

// Modify applies fn to the table and writes the result if nobody changed
// it meanwhile, calling fn again with the fresh table otherwise; an error
// of fn leaves the table as it was.
func (r Ports) Modify(ctx context.Context, fn func(*PortTable) error) error {
	return r.c.Modify(ctx, portsID, func(cur PortTable, _ bool) (PortTable, error) {
		if cur.Claims == nil {
			cur.Claims = map[string]PortClaim{}
		}
		err := fn(&cur)
		return cur, err
	})
}

// Get reads the table.
func (r Ports) Get(ctx context.Context) (PortTable, error) {
	it, err := r.c.Get(ctx, portsID)
	if errors.Is(err, ErrNotFound) {
		return PortTable{Claims: map[string]PortClaim{}}, nil
	}
	if err != nil {
		return PortTable{}, err
	}
	if it.Value.Claims == nil {
		it.Value.Claims = map[string]PortClaim{}
	}
	return it.Value, nil
}
