package manager

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// buildRules takes classic Swarm's placement rules out of a build's args.
// send is the args to pass on, nil when there was nothing to take out (the
// client's args then go as sent).
func buildRules(args map[string]*string) (rules scheduler.Rules, send map[string]*string, err error) {
	var env []string
	for k, v := range args {
		if v != nil && (strings.HasPrefix(k, "constraint:") || strings.HasPrefix(k, "affinity:")) {
			env = append(env, k+"="+*v)
			continue
		}
		if send == nil {
			send = map[string]*string{}
		}
		send[k] = v
	}
	if len(env) == 0 {
		send = nil
	} else if send == nil {
		send = map[string]*string{}
	}
	rules, _, err = scheduler.ParseRules(env, nil)
	if err != nil {
		return rules, nil, errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	return rules, send, nil
}

// preferCacheFrom adds a soft affinity for each --cache-from image, in the
// client's order: the build then runs where its cache is, as it would on
// one engine, and anywhere when no node holds one. Only the first few
// count: the scheduler takes at most 64 soft rules.
func preferCacheFrom(rules *scheduler.Rules, refs []string) {
	for _, ref := range refs[:min(len(refs), 16)] {
		if x, err := scheduler.ParseExpr("affinity", "image==~"+ref); err == nil {
			rules.Affinities = append(rules.Affinities, x)
		}
	}
}

// buildNetwork reads a build's network mode. For a user network it
// returns the network as the engine must be sent it, and the node the
// build must run on when that is decided here: "node/network" names it,
// and a network no node's cache knows by name is looked up (an ID, or one
// created a moment ago) and refused in dockerd's words when it is nowhere.
// A name some nodes know is left to the scheduler, which keeps to them.
func (m *Manager) buildNetwork(ctx context.Context, mode string) (*engine.Engine, string, error) {
	switch mode {
	case "", "default", "bridge", "host", "none":
		return nil, mode, nil
	}
	if strings.HasPrefix(mode, "container:") {
		return nil, mode, nil
	}
	if e, name := m.splitNode(mode); e != nil {
		if hasNetwork(e, name) {
			return e, name, nil
		}
		if _, err := e.InspectNetwork(ctx, name); err != nil {
			if errdefs.IsNotFound(err) {
				return nil, "", errdefs.ErrNotFound.WithMessage(fmt.Sprintf("network %s not found on node %s", name, e.Name()))
			}
			return nil, "", err
		}
		return e, name, nil
	}
	for _, e := range m.pool.Engines() {
		if hasNetwork(e, mode) {
			return nil, mode, nil
		}
	}
	e, _, err := m.resolveObject(ctx, "networks", mode)
	if err != nil {
		return nil, "", err
	}
	return e, mode, nil
}

// hasNetwork says whether the engine's cache knows a network by this name.
func hasNetwork(e *engine.Engine, name string) bool {
	nets, _ := e.NetworksVolumes()
	return slices.Contains(nets, name)
}
