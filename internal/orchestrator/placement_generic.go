package orchestrator

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/swarm"
)

// Generic resources (dockerd --node-generic-resource gpu=2 or
// gpu=GPU-1a2b, docker service create --generic-resource gpu=1), as swarm
// mode's scheduler treats them: a task asks for a number of each kind; a
// node offers a count of a discrete kind, or a list of named values of a
// kind, one unit each. A node fits when, after what its assigned tasks
// hold, it has enough of every kind asked for; a node that lacks them
// counts as "insufficient resources". A task placed gets its share in
// Task.GenericResources (swarm mode's AssignedGenericResources): named
// values are picked in the node's order, and the container is told them
// as DOCKER_RESOURCE_<KIND>=<values>.

// genericAsk is the discrete units a task spec asks for, by kind.
func genericAsk(spec swarm.TaskSpec) map[string]int64 {
	r := spec.Resources
	if r == nil || r.Reservations == nil || len(r.Reservations.GenericResources) == 0 {
		return nil
	}
	ask := map[string]int64{}
	for _, g := range r.Reservations.GenericResources {
		if d := g.DiscreteResourceSpec; d != nil && d.Value > 0 {
			ask[d.Kind] += d.Value
		}
	}
	if len(ask) == 0 {
		return nil
	}
	return ask
}

// asksNamed says whether a task spec asks for a named generic resource:
// swarm mode's API takes such a spec, but its scheduler places only
// discrete asks, so the task stays pending, short of resources everywhere.
func asksNamed(spec swarm.TaskSpec) bool {
	if r := spec.Resources; r != nil && r.Reservations != nil {
		for _, g := range r.Reservations.GenericResources {
			if g.NamedResourceSpec != nil {
				return true
			}
		}
	}
	return false
}

// genericOffer is a node's units per kind: a discrete kind's value, or
// how many named values it has.
func genericOffer(res []swarm.GenericResource) map[string]int64 {
	out := map[string]int64{}
	for _, g := range res {
		switch {
		case g.DiscreteResourceSpec != nil:
			out[g.DiscreteResourceSpec.Kind] += g.DiscreteResourceSpec.Value
		case g.NamedResourceSpec != nil:
			out[g.NamedResourceSpec.Kind]++
		}
	}
	return out
}

// genericHeld is the units per kind a task holds: what it was assigned,
// or, for a task placed before it had an assignment, what its spec asks.
func genericHeld(t *swarm.Task) map[string]int64 {
	if len(t.GenericResources) > 0 {
		return genericOffer(t.GenericResources)
	}
	return genericAsk(t.Spec)
}

// holdsGeneric says whether a task in state s holds its node's generic
// resources: from its assignment until it ends, as swarm mode counts.
func holdsGeneric(s swarm.TaskState) bool { return mayRun(s) }

// genericFits says whether free covers ask.
func genericFits(free, ask map[string]int64) bool {
	for k, v := range ask {
		if free[k] < v {
			return false
		}
	}
	return true
}

// ClaimGeneric is the share of node's generic resources a task asking
// for ask (a task spec's reservations) gets, given the resources held by
// the other tasks assigned there: per kind, a discrete count, or the
// first free named values in the node's order. Nil when the task asks
// for none or the node has not enough (the Placer checked it has).
func ClaimGeneric(node Node, spec swarm.TaskSpec, held [][]swarm.GenericResource) []swarm.GenericResource {
	ask := genericAsk(spec)
	if ask == nil {
		return nil
	}
	taken := map[string]bool{}
	used := map[string]int64{}
	for _, h := range held {
		for _, g := range h {
			switch {
			case g.NamedResourceSpec != nil:
				taken[g.NamedResourceSpec.Kind+"\x00"+g.NamedResourceSpec.Value] = true
			case g.DiscreteResourceSpec != nil:
				used[g.DiscreteResourceSpec.Kind] += g.DiscreteResourceSpec.Value
			}
		}
	}
	var out []swarm.GenericResource
	for _, k := range slices.Sorted(maps.Keys(ask)) {
		got := claimKind(node.GenericResources, k, ask[k], taken, used[k])
		if got == nil {
			return nil
		}
		out = append(out, got...)
	}
	return out
}

// claimKind takes n units of kind k from the node's resources.
func claimKind(res []swarm.GenericResource, k string, n int64, taken map[string]bool, used int64) []swarm.GenericResource {
	var named []swarm.GenericResource
	for _, g := range res {
		switch {
		case g.DiscreteResourceSpec != nil && g.DiscreteResourceSpec.Kind == k:
			if g.DiscreteResourceSpec.Value-used < n {
				return nil
			}
			return []swarm.GenericResource{{DiscreteResourceSpec: &swarm.DiscreteGenericResource{Kind: k, Value: n}}}
		case g.NamedResourceSpec != nil && g.NamedResourceSpec.Kind == k && !taken[k+"\x00"+g.NamedResourceSpec.Value]:
			named = append(named, swarm.GenericResource{NamedResourceSpec: &swarm.NamedGenericResource{Kind: k, Value: g.NamedResourceSpec.Value}})
			if int64(len(named)) == n {
				return named
			}
		}
	}
	return nil
}

// GenericEnv is the environment swarm mode gives a task's container for
// its assigned generic resources: DOCKER_RESOURCE_<KIND>=<values>, the
// values of a kind joined by commas, kinds in order.
func GenericEnv(assigned []swarm.GenericResource) []string {
	vals := map[string][]string{}
	for _, g := range assigned {
		switch {
		case g.NamedResourceSpec != nil:
			vals[g.NamedResourceSpec.Kind] = append(vals[g.NamedResourceSpec.Kind], g.NamedResourceSpec.Value)
		case g.DiscreteResourceSpec != nil:
			vals[g.DiscreteResourceSpec.Kind] = append(vals[g.DiscreteResourceSpec.Kind], strconv.FormatInt(g.DiscreteResourceSpec.Value, 10))
		}
	}
	kinds := slices.Sorted(maps.Keys(vals))
	env := make([]string, 0, len(kinds))
	for _, k := range kinds {
		env = append(env, strings.ToUpper("DOCKER_RESOURCE_"+k)+"="+strings.Join(vals[k], ","))
	}
	return env
}
