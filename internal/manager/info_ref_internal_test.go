package manager

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"github.com/shoal-dev/shoal/internal/engine"
)

// refInfo is info as it was built before its snapshot (info_cache.go):
// everything summed, counted and joined again on every call. Tests check
// the cached answer against it, byte for byte but for SystemTime.
func (m *Manager) refInfo(ctx context.Context) (json.RawMessage, error) {
	m.awaitContact(ctx)
	info := m.refClusterInfo(ctx)
	status := info.DriverStatus
	info.DriverStatus = nil
	b, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	var ours map[string]json.RawMessage
	if err := json.Unmarshal(b, &ours); err != nil {
		return nil, err
	}
	ds := []byte{'['}
	head, _ := json.Marshal(status)
	ds = append(ds, head[1:len(head)-1]...)
	for _, e := range m.pool.Engines() {
		if frag := m.engineSummary(e).statusJSON; len(frag) > 0 {
			if len(ds) > 1 {
				ds = append(ds, ',')
			}
			ds = append(ds, frag...)
		}
	}
	ds = append(ds, ']')
	ours["DriverStatus"] = ds
	var base map[string]json.RawMessage
	for _, e := range m.pool.Healthy() {
		if raw := e.RawInfo(); len(raw) > 0 && json.Unmarshal(raw, &base) == nil {
			break
		}
	}
	if base == nil {
		return refJoinObject(ours), nil
	}
	for _, k := range []string{"ID", "Name", "ServerVersion", "Containers", "ContainersRunning", "ContainersPaused",
		"ContainersStopped", "Images", "NCPU", "MemTotal", "Driver", "DriverStatus", "OperatingSystem", "OSType",
		"Architecture", "KernelVersion", "Labels", "Warnings", "Swarm", "SystemTime", "DockerRootDir", "Plugins"} {
		if v, ok := ours[k]; ok {
			base[k] = v
		}
	}
	return refJoinObject(base), nil
}

func refJoinObject(fields map[string]json.RawMessage) json.RawMessage {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		kb, _ := json.Marshal(k)
		out = append(out, kb...)
		out = append(out, ':')
		out = append(out, fields[k]...)
	}
	return append(out, '}')
}

func (m *Manager) refClusterInfo(ctx context.Context) *system.Info {
	engines := m.pool.Engines()
	host, _ := os.Hostname()
	info := &system.Info{
		ID:                 "shoal-" + engine.NodeID("manager:"+host),
		Name:               m.Name(),
		ServerVersion:      "shoal/" + m.cfg.Version,
		OSType:             runtime.GOOS,
		Architecture:       runtime.GOARCH,
		KernelVersion:      m.kernel,
		OperatingSystem:    "shoal cluster",
		Driver:             "shoal",
		IndexServerAddress: "https://index.docker.io/v1/",
		LoggingDriver:      "json-file",
		CgroupDriver:       "cgroupfs",
		CgroupVersion:      "2",
		DockerRootDir:      "/var/lib/shoal",
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		Labels:             m.ownLabelList(),
		Warnings:           []string{},
		DefaultRuntime:     "runc",
		Swarm:              swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive},
	}
	if m.cfg.Cluster != nil {
		info.Swarm = m.cfg.Cluster.SwarmInfo(ctx)
	} else if m.cfg.LocalSwarm {
		info.Swarm = localSwarmInfo()
	}
	ncpu, mem, freeCPU, freeMem, largest := freeOf(m.leafNodes(false))
	free := [][2]string{
		{"Reserved CPUs", fmt.Sprintf("%g / %d", float64(int64(ncpu)*1e9-freeCPU)/1e9, ncpu)},
		{"Reserved Memory", fmt.Sprintf("%s / %s", units.BytesSize(float64(mem-freeMem)), units.BytesSize(float64(mem)))},
		{"Largest free placement", fmt.Sprintf("%g CPUs, %s", float64(largest.NanoCPUs)/1e9, units.BytesSize(float64(largest.Memory)))},
	}
	images := map[string]bool{}
	status := append(append([][2]string{{"Strategy", m.cfg.Strategy}}, free...), [2]string{"Nodes", fmt.Sprint(len(engines))})
	for _, e := range engines {
		sum := m.engineSummary(e)
		info.Containers += sum.containers
		info.ContainersRunning += sum.running
		info.ContainersPaused += sum.paused
		info.ContainersStopped += sum.stopped
		for _, id := range sum.images {
			images[id] = true
		}
		if sum.state == engine.Healthy {
			info.NCPU += sum.ncpu
			info.MemTotal += sum.memTotal
		} else {
			msg := fmt.Sprintf("WARNING: node %s (%s) is %s", e.Name(), e.Addr, strings.ToLower(sum.state.String()))
			if sum.lastErr != "" {
				msg += ": " + sum.lastErr
			}
			info.Warnings = append(info.Warnings, msg)
		}
	}
	info.Images = len(images)
	info.DriverStatus = status
	info.Plugins = system.PluginsInfo{Volume: []string{"local"}, Network: []string{"bridge", "host", "none"}, Log: []string{"json-file"}}
	return info
}
