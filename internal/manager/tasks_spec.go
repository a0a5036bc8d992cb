package manager

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/orchestrator"
	"github.com/shoal-dev/shoal/internal/store"
)

// Swarm mode's labels on a task's container.
const (
	labelTask        = "com.docker.swarm.task"
	labelTaskID      = "com.docker.swarm.task.id"
	labelTaskName    = "com.docker.swarm.task.name"
	labelNodeID      = "com.docker.swarm.node.id"
	labelServiceID   = "com.docker.swarm.service.id"
	labelServiceName = "com.docker.swarm.service.name"
)

// taskName is the container name of a task, as swarm mode names it:
// <service>.<slot>.<task id>, or <service>.<node id>.<task id> for a task
// without a slot (global services).
func taskName(svc swarm.Service, t store.Task) string {
	slot := strconv.Itoa(t.Slot)
	if t.Slot == 0 {
		slot = t.NodeID
	}
	return svc.Spec.Name + "." + slot + "." + t.ID
}

// taskLabels are the spec's labels, then the task's own, then swarm mode's,
// which win.
func taskLabels(svc swarm.Service, t store.Task, cs *swarm.ContainerSpec) map[string]string {
	l := make(map[string]string, len(cs.Labels)+len(t.Annotations.Labels)+6)
	maps.Copy(l, cs.Labels)
	maps.Copy(l, t.Annotations.Labels)
	l[labelTask] = ""
	l[labelTaskID] = t.ID
	l[labelTaskName] = taskName(svc, t)
	l[labelNodeID] = t.NodeID
	l[labelServiceID] = svc.ID
	l[labelServiceName] = svc.Spec.Name
	return l
}

// familiarImage is the image as swarm mode's executor asks the engine for
// it: Docker Hub's prefixes dropped, ":latest" added when the reference
// has neither tag nor digest.
func familiarImage(ref string) string {
	for _, p := range [...]string{"docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"} {
		if rest, ok := strings.CutPrefix(ref, p); ok {
			ref = rest
			break
		}
	}
	if ref == "" || strings.Contains(ref, "@") {
		return ref
	}
	if strings.LastIndexByte(ref, ':') <= strings.LastIndexByte(ref, '/') {
		ref += ":latest"
	}
	return ref
}

// taskCreateRequest is the engine create request for t's container, mapped
// from its TaskSpec as swarm mode's container executor maps it. Where
// shoal differs:
//   - restart policy "no": the orchestrator restarts tasks, with backoff;
//   - a CPU reservation becomes CpuShares (1024 per CPU) when no CPU limit
//     is set, and a memory reservation MemoryReservation, so that
//     shoal's scheduler and Runtime.Nodes count what a task reserves;
//   - only host-mode published ports are bound here: an ingress port is
//     the routing mesh's (the task joins the ingress network and every
//     node's agent forwards the port: networks_ingress.go); under shoal
//     manage, without agents, it is not published at all;
//   - networks, secrets and configs are not attached (not yet supported).
func taskCreateRequest(svc swarm.Service, t store.Task, node taskNodeInfo) (container.CreateRequest, error) {
	spec := t.Spec
	if spec.ContainerSpec == nil {
		spec = svc.Spec.TaskTemplate
	}
	if spec.ContainerSpec == nil {
		// Plugin and attachment runtimes are not supported.
		return container.CreateRequest{}, fmt.Errorf("task %s has no container spec", t.ID)
	}
	cs, err := newTaskTemplate(svc, t, node).expandSpec(spec.ContainerSpec)
	if err != nil {
		return container.CreateRequest{}, err // swarm mode's words: "expanding hostname failed: ..."
	}
	return container.CreateRequest{
		Config:     taskConfig(svc, t, cs),
		HostConfig: taskHostConfig(svc, spec, cs),
	}, nil
}

// taskEnv is the spec's environment and, as swarm mode's agent adds it,
// DOCKER_RESOURCE_<KIND>=<values> for each generic resource kind assigned
// to the task.
func taskEnv(cs *swarm.ContainerSpec, t store.Task) []string {
	gen := orchestrator.GenericEnv(t.GenericResources)
	if len(gen) == 0 {
		return cs.Env
	}
	return append(slices.Clip(cs.Env), gen...)
}

func taskConfig(svc swarm.Service, t store.Task, cs *swarm.ContainerSpec) *container.Config {
	c := &container.Config{
		Image:       familiarImage(cs.Image),
		Labels:      taskLabels(svc, t, cs),
		Env:         taskEnv(cs, t),
		WorkingDir:  cs.Dir,
		User:        cs.User,
		Hostname:    cs.Hostname,
		StopSignal:  cs.StopSignal,
		Tty:         cs.TTY,
		OpenStdin:   cs.OpenStdin,
		Healthcheck: cs.Healthcheck,
	}
	if len(cs.Command) > 0 {
		// Command replaces the image's whole invocation; Args are its arguments.
		c.Entrypoint = cs.Command
		c.Cmd = cs.Args
	} else if len(cs.Args) > 0 {
		c.Cmd = cs.Args
	}
	if g := cs.StopGracePeriod; g != nil {
		secs := int(g.Seconds())
		c.StopTimeout = &secs
	}
	for p := range hostPorts(svc) {
		if c.ExposedPorts == nil {
			c.ExposedPorts = network.PortSet{}
		}
		c.ExposedPorts[p] = struct{}{}
	}
	return c
}

// hostPorts are the service's ports published in host mode, each with
// its host port ("" for one the engine picks).
func hostPorts(svc swarm.Service) map[network.Port]string {
	es := svc.Spec.EndpointSpec
	if es == nil {
		return nil
	}
	out := map[network.Port]string{}
	for _, pc := range es.Ports {
		if pc.PublishMode != swarm.PortConfigPublishModeHost || pc.TargetPort > 65535 {
			continue
		}
		proto := pc.Protocol
		if proto == "" {
			proto = network.TCP
		}
		p, ok := network.PortFrom(uint16(pc.TargetPort), proto)
		if !ok {
			continue
		}
		out[p] = ""
		if pc.PublishedPort != 0 {
			out[p] = strconv.FormatUint(uint64(pc.PublishedPort), 10)
		}
	}
	return out
}

func taskHostConfig(svc swarm.Service, spec swarm.TaskSpec, cs *swarm.ContainerSpec) *container.HostConfig {
	h := &container.HostConfig{
		Resources:      taskResources(spec.Resources, cs),
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Mounts:         cs.Mounts,
		ReadonlyRootfs: cs.ReadOnly,
		Init:           cs.Init,
		Sysctls:        cs.Sysctls,
		CapAdd:         cs.CapabilityAdd,
		CapDrop:        cs.CapabilityDrop,
		GroupAdd:       cs.Groups,
		OomScoreAdj:    int(cs.OomScoreAdj),
		Isolation:      cs.Isolation,
	}
	for p, hostPort := range hostPorts(svc) {
		if h.PortBindings == nil {
			h.PortBindings = network.PortMap{}
		}
		h.PortBindings[p] = []network.PortBinding{{HostPort: hostPort}}
	}
	if d := cs.DNSConfig; d != nil {
		h.DNS = d.Nameservers
		h.DNSSearch, h.DNSOptions = d.Search, d.Options
	}
	// Swarm mode's hosts are "IP name [aliases...]"; the engine's ExtraHosts "name:IP".
	for _, entry := range cs.Hosts {
		if f := strings.Fields(entry); len(f) > 1 {
			h.ExtraHosts = append(h.ExtraHosts, f[1]+":"+f[0])
		}
	}
	if spec.LogDriver != nil {
		h.LogConfig = container.LogConfig{Type: spec.LogDriver.Name, Config: spec.LogDriver.Options}
	}
	h.SecurityOpt = securityOpts(cs.Privileges)
	return h
}

func securityOpts(p *swarm.Privileges) []string {
	if p == nil {
		return nil
	}
	var out []string
	if p.NoNewPrivileges {
		out = append(out, "no-new-privileges=true")
	}
	if p.AppArmor != nil && p.AppArmor.Mode == swarm.AppArmorModeDisabled {
		out = append(out, "apparmor=unconfined")
	}
	if p.Seccomp != nil {
		switch p.Seccomp.Mode {
		case swarm.SeccompModeUnconfined:
			out = append(out, "seccomp=unconfined")
		case swarm.SeccompModeCustom:
			out = append(out, "seccomp="+string(p.Seccomp.Profile))
		}
	}
	if s := p.SELinuxContext; s != nil {
		if s.Disable {
			out = append(out, "label=disable")
		}
		for k, v := range map[string]string{"user": s.User, "role": s.Role, "type": s.Type, "level": s.Level} {
			if v != "" {
				out = append(out, "label="+k+":"+v)
			}
		}
	}
	return out
}

// minMemoryReservation is the smallest memory reservation dockerd takes.
const minMemoryReservation = 6 << 20

func taskResources(r *swarm.ResourceRequirements, cs *swarm.ContainerSpec) container.Resources {
	var res container.Resources
	for _, u := range cs.Ulimits {
		res.Ulimits = append(res.Ulimits, u)
	}
	if r == nil {
		return res
	}
	if l := r.Limits; l != nil {
		res.NanoCPUs = l.NanoCPUs
		res.Memory = l.MemoryBytes
		if l.Pids > 0 {
			pids := l.Pids
			res.PidsLimit = &pids
		}
		if res.Memory > 0 && r.SwapBytes != nil {
			res.MemorySwap = -1 // unlimited
			if *r.SwapBytes >= 0 {
				res.MemorySwap = res.Memory + *r.SwapBytes // the engine's MemorySwap is memory + swap
			}
		}
	}
	res.MemorySwappiness = r.MemorySwappiness
	if rv := r.Reservations; rv != nil {
		// The engine refuses a reservation above the limit or under 6 MiB.
		if m := rv.MemoryBytes; m >= minMemoryReservation {
			if res.Memory > 0 {
				m = min(m, res.Memory)
			}
			res.MemoryReservation = m
		}
		if res.NanoCPUs == 0 && rv.NanoCPUs > 0 {
			res.CPUShares = max(rv.NanoCPUs*1024/1e9, 2) // the engine's minimum weight is 2
		}
	}
	return res
}
