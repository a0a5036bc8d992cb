package testbed

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// openBeds holds the IDs of Beds this process started and has not closed.
var (
	openMu   sync.Mutex
	openBeds = map[string]bool{}
)

func registryDir() string { return filepath.Join(os.TempDir(), "shoal-testbed") }

func (b *Bed) registryPath() string { return filepath.Join(registryDir(), b.ID+".json") }

func (b *Bed) register() error {
	if err := os.MkdirAll(registryDir(), 0o755); err != nil {
		return err
	}
	openMu.Lock()
	openBeds[b.ID] = true
	openMu.Unlock()
	return b.SaveState(b.statePath())
}

// Close stops every engine (SIGTERM, SIGKILL after 15 s), kills any process
// left in the Bed's namespaces or using its exec roots (containerd, shims,
// containers), unmounts everything under its dirs, deletes the namespaces,
// veths, bridge and iptables rule, and removes the dirs it created. It only
// touches objects named with this Bed's ID. It is idempotent.
func (b *Bed) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t0 := time.Now()
	var errs []error
	// Remember our processes so we can wait for their zombies to be reaped
	// (PID 1 here reaps orphans lazily; `ps` should show nothing after Close).
	var tracked []int
	for _, e := range b.Engines {
		if isOurDockerd(e) {
			tracked = append(tracked, e.PID)
		}
		if cp := containerdPID(e); cp > 0 {
			tracked = append(tracked, cp)
		}
	}
	tracked = append(tracked, b.bedProcesses()...)
	defer waitReaped(tracked, 5*time.Second)
	// 0. SIGKILL the containers (children of our shims) so that dockerd does
	// not spend 10 s per container stopping them.
	b.killContainers()
	// 1. Graceful stop, in parallel.
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, e := range b.Engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.stopPID(e, 15*time.Second); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	// 2. Anything left (shims, containers, containerd).
	if err := b.killBedProcesses(); err != nil {
		errs = append(errs, err)
	}
	// 3. Mounts.
	for _, e := range b.Engines {
		if e.Dir != "" {
			if err := unmountUnder(e.Dir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if b.Dir != "" {
		if err := unmountUnder(b.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	// 4. Network.
	if err := b.teardownNetwork(); err != nil {
		errs = append(errs, err)
	}
	// 5. Dirs.
	if len(errs) == 0 {
		if b.OwnDir {
			if err := os.RemoveAll(b.Dir); err != nil {
				errs = append(errs, err)
			}
		} else {
			for _, e := range b.Engines {
				if err := os.RemoveAll(e.Dir); err != nil {
					errs = append(errs, err)
				}
			}
			os.Remove(b.statePath())
			os.Remove(filepath.Join(b.Dir, "busybox.tar"))
			os.RemoveAll(filepath.Join(b.Dir, "tls"))
			os.RemoveAll(filepath.Join(b.Dir, "dockercfg"))
		}
		os.Remove(b.registryPath())
		openMu.Lock()
		delete(openBeds, b.ID)
		openMu.Unlock()
	}
	if !b.closed {
		b.log("testbed %s: closed in %s", b.ID, time.Since(t0).Round(time.Millisecond))
	}
	b.closed = true
	return joinErrs(errs)
}

// waitReaped waits until none of pids is a zombie (or they're gone).
func waitReaped(pids []int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for _, p := range pids {
		for time.Now().Before(deadline) {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
			if err != nil || !strings.Contains(string(data), ") Z ") {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// mounts returns the mount points listed in /proc/self/mountinfo.
func mounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 {
			out = append(out, unescapeMount(fields[4]))
		}
	}
	return out, sc.Err()
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				sb.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

// MountsUnder lists mount points at or under dir.
func MountsUnder(dir string) []string {
	dir = filepath.Clean(dir)
	ms, _ := mounts()
	var out []string
	for _, m := range ms {
		if m == dir || strings.HasPrefix(m, dir+"/") {
			out = append(out, m)
		}
	}
	return out
}

// unmountUnder unmounts everything at or under dir, deepest first, with a
// lazy unmount as the last resort.
func unmountUnder(dir string) error {
	if dir == "" || dir == "/" {
		return nil
	}
	for round := 0; round < 10; round++ {
		ms := MountsUnder(dir)
		if len(ms) == 0 {
			return nil
		}
		sort.Slice(ms, func(i, j int) bool { return len(ms[i]) > len(ms[j]) })
		for _, m := range ms {
			if err := syscall.Unmount(m, 0); err != nil {
				if round >= 1 {
					syscall.Unmount(m, syscall.MNT_DETACH)
				}
			}
		}
	}
	if ms := MountsUnder(dir); len(ms) > 0 {
		return fmt.Errorf("testbed: still mounted: %v", ms)
	}
	return nil
}

// Alive reports whether any process of the Bed is running, or the process
// that created it is.
func (b *Bed) Alive() bool {
	if b.OwnerPID == os.Getpid() {
		openMu.Lock()
		open := openBeds[b.ID]
		openMu.Unlock()
		if open {
			return true
		}
	} else if b.OwnerPID > 0 && pidAlive(b.OwnerPID) {
		return true
	}
	for _, e := range b.Engines {
		if isOurDockerd(e) {
			return true
		}
	}
	for _, e := range b.Engines {
		ino := netnsInode(e.Netns)
		if ino == 0 {
			continue
		}
		for _, p := range allPIDs() {
			if pidAlive(p) && procNetnsInode(p) == ino {
				return true
			}
		}
	}
	return false
}

// Reap removes leftovers of crashed earlier runs that used prefix (""
// means DefaultPrefix): Beds in the registry whose creator and engines are
// gone, and namespaces, links and iptables rules named <prefix><6 hex>...
// that belong to no live Bed. Engines still running are never touched.
func Reap(prefix string) error {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !prefixRe.MatchString(prefix) {
		return fmt.Errorf("testbed: bad prefix %q", prefix)
	}
	var errs []error
	live := map[string]bool{}
	known := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(registryDir(), prefix+"*.json"))
	idRe := regexp.MustCompile(`^` + prefix + `[0-9a-f]{6}$`)
	for _, f := range files {
		id := strings.TrimSuffix(filepath.Base(f), ".json")
		if !idRe.MatchString(id) {
			continue
		}
		b, err := Load(f)
		if err != nil || b.ID != id {
			continue
		}
		known[id] = true
		if b.Alive() {
			live[id] = true
			continue
		}
		if err := b.Close(); err != nil {
			errs = append(errs, fmt.Errorf("reap %s: %w", id, err))
			live[id] = true // keep its objects below
		}
		os.Remove(f)
	}
	// Orphans without a registry entry (or whose Close failed).
	nsRe := regexp.MustCompile(`^(` + prefix + `[0-9a-f]{6})-\d+$`)
	linkRe := regexp.MustCompile(`^(` + prefix + `[0-9a-f]{6})(br|h\d+|n\d+)$`)
	ctx := context.Background()
	nsOut, _ := run(ctx, "ip", "netns", "list")
	orphanNS := map[string][]string{}
	for _, line := range strings.Split(nsOut, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if m := nsRe.FindStringSubmatch(f[0]); m != nil && !live[m[1]] {
			orphanNS[m[1]] = append(orphanNS[m[1]], f[0])
		}
	}
	for id, nss := range orphanNS {
		b := &Bed{ID: id, Prefix: prefix, logf: func(string, ...any) {}}
		for _, ns := range nss {
			b.Engines = append(b.Engines, &Engine{Netns: ns})
		}
		if b.Alive() {
			live[id] = true
			continue
		}
		b.killBedProcesses()
		for _, ns := range nss {
			if _, err := run(ctx, "ip", "netns", "del", ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	links, _ := os.ReadDir("/sys/class/net")
	for _, l := range links {
		m := linkRe.FindStringSubmatch(l.Name())
		if m == nil || live[m[1]] {
			continue
		}
		if linkExists(l.Name()) {
			if _, err := run(ctx, "ip", "link", "del", l.Name()); err != nil && linkExists(l.Name()) {
				errs = append(errs, err)
			}
		}
	}
	rules, _ := run(ctx, "iptables", "-w", "-S", "FORWARD")
	ruleRe := regexp.MustCompile(`^-A FORWARD -i (` + prefix + `[0-9a-f]{6})br -o (` + prefix + `[0-9a-f]{6})br -j ACCEPT$`)
	for _, r := range strings.Split(rules, "\n") {
		m := ruleRe.FindStringSubmatch(strings.TrimSpace(r))
		if m == nil || m[1] != m[2] || live[m[1]] {
			continue
		}
		br := m[1] + "br"
		if _, err := run(ctx, "iptables", "-w", "-D", "FORWARD", "-i", br, "-o", br, "-j", "ACCEPT"); err != nil {
			errs = append(errs, err)
		}
	}
	_ = known
	return joinErrs(errs)
}
