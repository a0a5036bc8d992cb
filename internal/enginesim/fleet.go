package enginesim

import (
	"errors"
	"fmt"
	"strings"
)

// Fleet is a set of simulated engines started together.
type Fleet struct {
	Engines []*Engine
}

// StartFleet starts n engines; opts(i) gives the options of the i-th (nil:
// defaults, hostname "sim-NNNN"). On error the engines started so far are closed.
func StartFleet(n int, opts func(i int) Options) (*Fleet, error) {
	f := &Fleet{Engines: make([]*Engine, 0, n)}
	for i := 0; i < n; i++ {
		var o Options
		if opts != nil {
			o = opts(i)
		}
		if o.Name == "" {
			o.Name = fmt.Sprintf("sim-%04d", i)
		}
		e, err := Start(o)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("enginesim: starting engine %d of %d: %w", i+1, n, err)
		}
		f.Engines = append(f.Engines, e)
	}
	return f, nil
}

// Addrs lists the engines' host:port addresses in start order.
func (f *Fleet) Addrs() []string {
	out := make([]string, len(f.Engines))
	for i, e := range f.Engines {
		out[i] = e.Addr()
	}
	return out
}

// NodesURI is the classic discovery URI for the fleet: nodes://a,b,c.
func (f *Fleet) NodesURI() string { return "nodes://" + strings.Join(f.Addrs(), ",") }

// Count sums containers (all and running) over the fleet.
func (f *Fleet) Count() (all, running int) {
	for _, e := range f.Engines {
		a, r := e.Count()
		all += a
		running += r
	}
	return all, running
}

// Listeners sums the open event streams over the fleet.
func (f *Fleet) Listeners() int {
	n := 0
	for _, e := range f.Engines {
		n += e.Listeners()
	}
	return n
}

// Close stops every engine.
func (f *Fleet) Close() error {
	var errs []error
	for _, e := range f.Engines {
		if err := e.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
