package manager

import (
	"fmt"
	"strconv"
	"strings"
	"text/template"

	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// taskTemplate is what swarm mode's service templates can name:
// `--hostname "{{.Node.Hostname}}-{{.Task.Slot}}"`, `--env NODE={{.Node.ID}}`,
// `--mount source=data-{{.Task.Slot}},target=/data`.
type taskTemplate struct {
	Service struct {
		ID, Name string
		Labels   map[string]string
	}
	Node struct {
		ID, Hostname string
		Platform     struct{ Architecture, OS string }
	}
	Task struct{ ID, Name, Slot string }
}

// taskNodeInfo is what a template may know of the node that runs the task.
type taskNodeInfo struct{ Hostname, OS, Arch string }

func newTaskTemplate(svc swarm.Service, t store.Task, node taskNodeInfo) *taskTemplate {
	x := &taskTemplate{}
	x.Service.ID, x.Service.Name, x.Service.Labels = svc.ID, svc.Spec.Name, svc.Spec.Labels
	x.Node.ID, x.Node.Hostname = t.NodeID, node.Hostname
	x.Node.Platform.Architecture, x.Node.Platform.OS = node.Arch, node.OS
	x.Task.ID, x.Task.Name, x.Task.Slot = t.ID, taskName(svc, t), strconv.Itoa(t.Slot)
	if t.Slot == 0 {
		x.Task.Slot = t.NodeID
	}
	return x
}

// templateFuncs: join SEP A B... joins A B... with SEP, as in swarm mode.
var templateFuncs = template.FuncMap{
	"join": func(s ...string) string {
		if len(s) == 0 {
			return ""
		}
		return strings.Join(s[1:], s[0])
	},
}

// expand fills in one template; text without "{{" is returned as is.
func (x *taskTemplate) expand(s string) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	tmpl, err := template.New("expansion").Option("missingkey=error").Funcs(templateFuncs).Parse(s)
	if err != nil {
		return s, err
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, x); err != nil {
		return s, err
	}
	return b.String(), nil
}

// expandSpec returns a copy of cs with the templates of its env values,
// hostname and mount sources and targets filled in, as swarm mode does.
func (x *taskTemplate) expandSpec(cs *swarm.ContainerSpec) (*swarm.ContainerSpec, error) {
	out := *cs
	out.Env = make([]string, len(cs.Env))
	for i, kv := range cs.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			out.Env[i] = kv
			continue
		}
		v, err := x.expand(v)
		if err != nil {
			return nil, fmt.Errorf("expanding env %q failed: %w", kv, err)
		}
		out.Env[i] = k + "=" + v
	}
	var err error
	if out.Hostname, err = x.expand(cs.Hostname); err != nil {
		return nil, fmt.Errorf("expanding hostname failed: %w", err)
	}
	out.Mounts = make([]mount.Mount, len(cs.Mounts))
	for i, m := range cs.Mounts {
		if m.Source, err = x.expand(m.Source); err != nil {
			return nil, fmt.Errorf("expanding mount source %q failed: %w", m.Source, err)
		}
		if m.Target, err = x.expand(m.Target); err != nil {
			return nil, fmt.Errorf("expanding mount target %q failed: %w", m.Target, err)
		}
		out.Mounts[i] = m
	}
	if len(cs.Env) == 0 {
		out.Env = cs.Env
	}
	if len(cs.Mounts) == 0 {
		out.Mounts = cs.Mounts
	}
	return &out, nil
}
