package testbed

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// run runs a command and returns its combined output as an error on failure.
func run(ctx context.Context, name string, args ...string) (string, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// allocLock serialises subnet allocation between concurrently starting Beds
// (also in other processes).
func allocLock() (func(), error) {
	dir := filepath.Join(os.TempDir(), "shoal-testbed")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "alloc.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func (b *Bed) setupNetwork(ctx context.Context) error {
	unlock, err := allocLock()
	if err != nil {
		return err
	}
	defer unlock()
	addrs, err := run(ctx, "ip", "-o", "addr")
	if err != nil {
		return err
	}
	routes, _ := run(ctx, "ip", "-o", "route")
	used := addrs + "\n" + routes
	start := int(os.Getpid()%254) + rand.IntN(254)
	x := -1
	for k := 0; k < 254; k++ {
		c := (start+k)%254 + 1
		if !strings.Contains(used, fmt.Sprintf("10.213.%d.", c)) {
			x = c
			break
		}
	}
	if x < 0 {
		return fmt.Errorf("testbed: no free 10.213.X.0/24 subnet")
	}
	b.Subnet = fmt.Sprintf("10.213.%d.0/24", x)
	b.Gateway = fmt.Sprintf("10.213.%d.1", x)
	for _, e := range b.Engines {
		e.IP = fmt.Sprintf("10.213.%d.%d", x, 10+e.Index+1)
	}
	steps := [][]string{
		{"ip", "link", "add", b.Bridge, "type", "bridge"},
		{"ip", "addr", "add", b.Gateway + "/24", "dev", b.Bridge},
		{"ip", "link", "set", b.Bridge, "up"},
	}
	for _, s := range steps {
		if _, err := run(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	if _, err := run(ctx, "iptables", "-w", "-I", "FORWARD", "-i", b.Bridge, "-o", b.Bridge, "-j", "ACCEPT"); err != nil {
		return err
	}
	b.IPTablesRule = true
	for _, e := range b.Engines {
		steps := [][]string{
			{"ip", "netns", "add", e.Netns},
			{"ip", "link", "add", e.HostVeth, "type", "veth", "peer", "name", e.NsVeth},
			{"ip", "link", "set", e.NsVeth, "netns", e.Netns},
			{"ip", "link", "set", e.HostVeth, "master", b.Bridge},
			{"ip", "link", "set", e.HostVeth, "up"},
			{"ip", "-n", e.Netns, "link", "set", "lo", "up"},
			{"ip", "-n", e.Netns, "addr", "add", e.IP + "/24", "dev", e.NsVeth},
			{"ip", "-n", e.Netns, "link", "set", e.NsVeth, "up"},
		}
		for _, s := range steps {
			if _, err := run(ctx, s[0], s[1:]...); err != nil {
				return err
			}
		}
	}
	b.log("testbed %s: bridge %s %s, %d namespaces", b.ID, b.Bridge, b.Subnet, len(b.Engines))
	return nil
}

// LinkDown sets the host end of engine i's veth down: the engine is cut off
// from the host and from the other engines (it keeps running).
func (b *Bed) LinkDown(i int) error {
	_, err := run(context.Background(), "ip", "link", "set", b.Engines[i].HostVeth, "down")
	return err
}

// LinkUp undoes LinkDown.
func (b *Bed) LinkUp(i int) error {
	_, err := run(context.Background(), "ip", "link", "set", b.Engines[i].HostVeth, "up")
	if err != nil {
		return err
	}
	// Give the bridge port a moment to reach forwarding state.
	time.Sleep(50 * time.Millisecond)
	return nil
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

func netnsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

// teardownNetwork removes namespaces, veths, the bridge and the iptables rule.
// Missing objects are fine.
func (b *Bed) teardownNetwork() error {
	var errs []error
	ctx := context.Background()
	for _, e := range b.Engines {
		if netnsExists(e.Netns) {
			if _, err := run(ctx, "ip", "netns", "del", e.Netns); err != nil && netnsExists(e.Netns) {
				errs = append(errs, err)
			}
		}
		for _, l := range []string{e.HostVeth, e.NsVeth} {
			if l != "" && linkExists(l) {
				if _, err := run(ctx, "ip", "link", "del", l); err != nil && linkExists(l) {
					errs = append(errs, err)
				}
			}
		}
	}
	if b.IPTablesRule || b.Bridge != "" {
		for k := 0; k < 5; k++ {
			if _, err := run(ctx, "iptables", "-w", "-C", "FORWARD", "-i", b.Bridge, "-o", b.Bridge, "-j", "ACCEPT"); err != nil {
				break
			}
			if _, err := run(ctx, "iptables", "-w", "-D", "FORWARD", "-i", b.Bridge, "-o", b.Bridge, "-j", "ACCEPT"); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	if b.Bridge != "" && linkExists(b.Bridge) {
		if _, err := run(ctx, "ip", "link", "del", b.Bridge); err != nil && linkExists(b.Bridge) {
			errs = append(errs, err)
		}
	}
	return joinErrs(errs)
}
