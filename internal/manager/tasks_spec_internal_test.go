package manager

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/store"
)

func TestTaskCreateRequestMapsTheSpecAsSwarmMode(t *testing.T) {
	grace := 7 * time.Second
	swap := int64(1 << 20)
	yes := true
	cs := &swarm.ContainerSpec{
		Image: "docker.io/library/nginx", Command: []string{"/bin/sh", "-c"}, Args: []string{"echo hi"},
		Env: []string{"A=1"}, Dir: "/srv", User: "www", Hostname: "web-host", Labels: map[string]string{"tier": "front"},
		Mounts:     []mount.Mount{{Type: mount.TypeVolume, Source: "data", Target: "/data"}},
		StopSignal: "SIGQUIT", StopGracePeriod: &grace,
		Healthcheck: &container.HealthConfig{Test: []string{"CMD", "true"}, Interval: time.Second},
		Hosts:       []string{"10.0.0.1 db alias"},
		DNSConfig:   &swarm.DNSConfig{Nameservers: []netip.Addr{netip.MustParseAddr("8.8.8.8")}, Search: []string{"example.org"}, Options: []string{"ndots:2"}},
		Init:        &yes, TTY: true, OpenStdin: true, ReadOnly: true,
		Sysctls:       map[string]string{"net.core.somaxconn": "1024"},
		CapabilityAdd: []string{"NET_ADMIN"}, CapabilityDrop: []string{"CHOWN"},
		Ulimits:    []*container.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}},
		Privileges: &swarm.Privileges{NoNewPrivileges: true},
	}
	var svc swarm.Service
	svc.ID = "svc1"
	svc.Spec.Name = "web"
	svc.Spec.TaskTemplate = swarm.TaskSpec{
		ContainerSpec: cs,
		Resources: &swarm.ResourceRequirements{
			Limits:       &swarm.Limit{NanoCPUs: 5e8, MemoryBytes: 256 << 20, Pids: 100},
			Reservations: &swarm.Resources{NanoCPUs: 25e7, MemoryBytes: 128 << 20},
			SwapBytes:    &swap,
		},
		LogDriver: &swarm.Driver{Name: "json-file", Options: map[string]string{"max-size": "1m"}},
	}
	svc.Spec.EndpointSpec = &swarm.EndpointSpec{Ports: []swarm.PortConfig{
		{TargetPort: 80, PublishedPort: 8080, PublishMode: swarm.PortConfigPublishModeHost},
		{TargetPort: 443, PublishMode: swarm.PortConfigPublishModeHost, Protocol: network.UDP},
		{TargetPort: 9000, PublishedPort: 9000}, // ingress: issue 13
	}}
	var task store.Task
	task.ID, task.ServiceID, task.NodeID, task.Slot = "t1", "svc1", "n1", 2
	task.Spec = svc.Spec.TaskTemplate

	req, err := taskCreateRequest(svc, task, taskNodeInfo{})
	if err != nil {
		t.Fatal(err)
	}
	c, h := req.Config, req.HostConfig
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", what, got, want)
		}
	}
	check("Image", c.Image, "nginx:latest")
	check("Entrypoint", []string(c.Entrypoint), []string{"/bin/sh", "-c"})
	check("Cmd", []string(c.Cmd), []string{"echo hi"})
	check("Env", c.Env, cs.Env)
	check("WorkingDir", c.WorkingDir, "/srv")
	check("User", c.User, "www")
	check("Hostname", c.Hostname, "web-host")
	check("StopSignal", c.StopSignal, "SIGQUIT")
	check("StopTimeout", *c.StopTimeout, 7)
	check("Healthcheck", c.Healthcheck, cs.Healthcheck)
	check("Tty/OpenStdin", []bool{c.Tty, c.OpenStdin}, []bool{true, true})
	check("labels", c.Labels, map[string]string{
		"tier": "front", "com.docker.swarm.task": "", "com.docker.swarm.task.id": "t1", "com.docker.swarm.task.name": "web.2.t1",
		"com.docker.swarm.node.id": "n1", "com.docker.swarm.service.id": "svc1", "com.docker.swarm.service.name": "web",
	})
	check("RestartPolicy", h.RestartPolicy.Name, container.RestartPolicyDisabled)
	check("Mounts", h.Mounts, cs.Mounts)
	check("ReadonlyRootfs", h.ReadonlyRootfs, true)
	check("Init", *h.Init, true)
	check("Sysctls", h.Sysctls, cs.Sysctls)
	check("CapAdd/CapDrop", [][]string{h.CapAdd, h.CapDrop}, [][]string{{"NET_ADMIN"}, {"CHOWN"}})
	check("Ulimits", h.Ulimits, cs.Ulimits)
	check("ExtraHosts", h.ExtraHosts, []string{"db:10.0.0.1"})
	check("DNS", h.DNS, cs.DNSConfig.Nameservers)
	check("DNSSearch/Options", [][]string{h.DNSSearch, h.DNSOptions}, [][]string{{"example.org"}, {"ndots:2"}})
	check("NanoCPUs", h.NanoCPUs, int64(5e8))
	check("Memory", h.Memory, int64(256<<20))
	check("MemorySwap", h.MemorySwap, int64(256<<20+1<<20))
	check("PidsLimit", *h.PidsLimit, int64(100))
	check("MemoryReservation", h.MemoryReservation, int64(128<<20))
	check("CPUShares (a CPU limit is set)", h.CPUShares, int64(0))
	check("LogConfig", h.LogConfig, container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m"}})
	check("SecurityOpt", h.SecurityOpt, []string{"no-new-privileges=true"})
	p80, _ := network.PortFrom(80, network.TCP)
	p443, _ := network.PortFrom(443, network.UDP)
	check("PortBindings", h.PortBindings, network.PortMap{p80: {{HostPort: "8080"}}, p443: {{HostPort: ""}}})
	check("ExposedPorts", c.ExposedPorts, network.PortSet{p80: {}, p443: {}})
}

func TestTaskCreateRequestArgsOnlyAndCPUReservation(t *testing.T) {
	var svc swarm.Service
	svc.Spec.Name = "db"
	svc.Spec.TaskTemplate = swarm.TaskSpec{
		ContainerSpec: &swarm.ContainerSpec{Image: "redis:7", Args: []string{"--port", "7000"}},
		Resources:     &swarm.ResourceRequirements{Reservations: &swarm.Resources{NanoCPUs: 15e8, MemoryBytes: 1 << 20}},
	}
	var task store.Task
	task.ID, task.NodeID = "t9", "node7"                     // no slot: a global task
	req, err := taskCreateRequest(svc, task, taskNodeInfo{}) // the task's spec is empty: the service's is used
	if err != nil {
		t.Fatal(err)
	}
	if req.Config.Entrypoint != nil || !slices.Equal(req.Config.Cmd, []string{"--port", "7000"}) {
		t.Errorf("Entrypoint %v, Cmd %v; want the image's entrypoint with the args as Cmd", req.Config.Entrypoint, req.Config.Cmd)
	}
	if req.Config.Labels["com.docker.swarm.task.name"] != "db.node7.t9" || req.Config.Image != "redis:7" {
		t.Errorf("task name %q, image %q", req.Config.Labels["com.docker.swarm.task.name"], req.Config.Image)
	}
	if r := req.HostConfig.Resources; r.CPUShares != 1536 || r.MemoryReservation != 0 {
		t.Errorf("CPUShares %d (want 1536 for 1.5 CPUs), MemoryReservation %d (want 0: under the engine's 6 MiB minimum)", r.CPUShares, r.MemoryReservation)
	}
	var empty store.Task
	if _, err := taskCreateRequest(swarm.Service{}, empty, taskNodeInfo{}); err == nil {
		t.Error("a task without a container spec was accepted")
	}
}

func TestFamiliarImageAndSplitRef(t *testing.T) {
	for in, want := range map[string]string{
		"nginx": "nginx:latest", "docker.io/library/nginx:1.25": "nginx:1.25", "docker.io/me/app": "me/app:latest",
		"localhost:5000/app": "localhost:5000/app:latest", "nginx@sha256:abc": "nginx@sha256:abc",
	} {
		if got := familiarImage(in); got != want {
			t.Errorf("familiarImage(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string][2]string{
		"nginx:latest": {"nginx", "latest"}, "localhost:5000/app": {"localhost:5000/app", ""},
		"nginx:1.25@sha256:abc": {"nginx", "sha256:abc"},
	} {
		if r, tag := splitRef(in); r != want[0] || tag != want[1] {
			t.Errorf("splitRef(%q) = %q, %q; want %q", in, r, tag, want)
		}
	}
}

func TestTaskTemplatesExpandAsSwarmMode(t *testing.T) {
	var svc swarm.Service
	svc.ID, svc.Spec.Name = "svc1", "web"
	svc.Spec.TaskTemplate.ContainerSpec = &swarm.ContainerSpec{
		Image:    "nginx",
		Hostname: "{{.Node.Hostname}}-{{.Service.Name}}-{{.Task.Slot}}",
		Env:      []string{"NODE={{.Node.ID}}", "TASK={{.Task.Name}}", "OS={{.Node.Platform.OS}}", "J={{join \",\" \"a\" \"b\"}}", "PLAIN"},
		Mounts:   []mount.Mount{{Type: mount.TypeVolume, Source: "data-{{.Task.Slot}}", Target: "/data"}},
	}
	var task store.Task
	task.ID, task.NodeID, task.Slot = "t1", "n1", 4
	req, err := taskCreateRequest(svc, task, taskNodeInfo{Hostname: "alpha", OS: "linux", Arch: "x86_64"})
	if err != nil {
		t.Fatal(err)
	}
	if req.Config.Hostname != "alpha-web-4" {
		t.Errorf("Hostname %q", req.Config.Hostname)
	}
	if want := []string{"NODE=n1", "TASK=web.4.t1", "OS=linux", "J=a,b", "PLAIN"}; !slices.Equal(req.Config.Env, want) {
		t.Errorf("Env %q, want %q", req.Config.Env, want)
	}
	if req.HostConfig.Mounts[0].Source != "data-4" || svc.Spec.TaskTemplate.ContainerSpec.Mounts[0].Source != "data-{{.Task.Slot}}" {
		t.Errorf("mount source %q (the spec's must stay a template)", req.HostConfig.Mounts[0].Source)
	}
	svc.Spec.TaskTemplate.ContainerSpec.Hostname = "{{.Nope}}"
	if _, err := taskCreateRequest(svc, task, taskNodeInfo{}); err == nil || !strings.HasPrefix(err.Error(), "expanding hostname failed: ") {
		t.Errorf("a bad template: %v", err)
	}
}

func TestPublishedHostPorts(t *testing.T) {
	got := publishedHostPorts([]engine.Port{
		{IP: "0.0.0.0", PrivatePort: 80, PublicPort: 8080, Type: "tcp"},
		{IP: "::", PrivatePort: 80, PublicPort: 8080, Type: "tcp"},
		{PrivatePort: 443, Type: "tcp"}, // exposed, not published
		{IP: "0.0.0.0", PrivatePort: 53, PublicPort: 30001, Type: "udp"},
	})
	want := []swarm.PortConfig{
		{Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: swarm.PortConfigPublishModeHost},
		{Protocol: "udp", TargetPort: 53, PublishedPort: 30001, PublishMode: swarm.PortConfigPublishModeHost},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("published host ports %+v, want %+v", got, want)
	}
}
