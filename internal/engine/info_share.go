package engine

import (
	"maps"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/system"
)

// Every engine's /info is kept decoded (Info) and most of it is alike
// across a pool: the same driver, plugins, security options, runtimes.
// shareInfo makes equal strings, lists and runtime maps one value for the
// whole pool instead of one per engine (~5 KiB an engine at 1,000).

// infoShared holds the lists and runtime maps shared so far; bounded, so
// engines whose lists change forever cannot grow it (past the bound, new
// lists are kept as decoded).
var infoShared = struct {
	sync.Mutex
	lists    map[string][]string
	pairs    map[string][][2]string
	runtimes []map[string]system.RuntimeWithStatus
}{lists: map[string][]string{}, pairs: map[string][][2]string{}}

const maxSharedInfoLists = 1024

// shareInfo replaces in's strings, lists and runtimes by shared equal
// ones. Shared values must not be modified (Info says so already).
func shareInfo(in *system.Info) {
	for _, p := range []*string{&in.Driver, &in.LoggingDriver, &in.CgroupDriver, &in.CgroupVersion,
		&in.KernelVersion, &in.OperatingSystem, &in.OSVersion, &in.OSType, &in.Architecture,
		&in.IndexServerAddress, &in.DockerRootDir, &in.ServerVersion, &in.DefaultRuntime, &in.InitBinary,
		&in.ProductLicense, &in.HTTPProxy, &in.HTTPSProxy, &in.NoProxy,
		&in.ContainerdCommit.ID, &in.RuncCommit.ID, &in.InitCommit.ID} {
		*p = intern(*p)
	}
	s := &infoShared
	s.Lock()
	defer s.Unlock()
	for _, l := range []*[]string{&in.Plugins.Volume, &in.Plugins.Network, &in.Plugins.Authorization,
		&in.Plugins.Log, &in.SecurityOptions, &in.Warnings, &in.CDISpecDirs, &in.Labels} {
		*l = shareList(s.lists, *l)
	}
	for _, l := range []*[][2]string{&in.DriverStatus, &in.SystemStatus} {
		if *l == nil {
			continue
		}
		var b strings.Builder
		for _, kv := range *l {
			writeKeyPart(&b, kv[0])
			writeKeyPart(&b, kv[1])
		}
		if old, ok := s.pairs[b.String()]; ok {
			*l = old
		} else if len(s.pairs) < maxSharedInfoLists {
			s.pairs[b.String()] = *l
		}
	}
	if in.Runtimes != nil {
		for _, r := range s.runtimes {
			if maps.EqualFunc(r, in.Runtimes, func(a, b system.RuntimeWithStatus) bool { return reflect.DeepEqual(a, b) }) {
				in.Runtimes = r
				return
			}
		}
		if len(s.runtimes) < 16 {
			s.runtimes = append(s.runtimes, in.Runtimes)
		}
	}
}

// shareList is l, or an equal list shared before (nil and empty kept apart:
// they are answered as null and []).
func shareList(m map[string][]string, l []string) []string {
	if l == nil {
		return nil
	}
	var b strings.Builder
	b.WriteByte('[') // an empty list's key, apart from no list
	for _, x := range l {
		writeKeyPart(&b, x)
	}
	key := b.String()
	if old, ok := m[key]; ok {
		return old
	}
	if len(m) < maxSharedInfoLists {
		m[key] = l
	}
	return l
}

// writeKeyPart writes x to a key so that no two lists make the same key.
func writeKeyPart(b *strings.Builder, x string) {
	b.WriteString(strconv.Itoa(len(x)))
	b.WriteByte(':')
	b.WriteString(x)
}
