// Package testport hands out TCP ports to tests that must know a port
// before anything listens on it (etcd advertises its URLs, the cluster
// port's store uses the next two ports). Closing a listener on port 0 and
// reusing its number races with every other test process: the kernel may
// hand the same number to someone else in between. Ports here come from
// below the kernel's ephemeral range, so the kernel never hands them out
// by itself, and each one is locked by a file lock held until the test
// process exits, so concurrent test processes never share one.
package testport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The range ports are taken from: just below Linux's default ephemeral
// range (32768–60999), or below what the running kernel says it is.
const (
	low         = 20000
	defaultHigh = 32768
)

// ErrExhausted means no free block of ports was found in the range.
var ErrExhausted = errors.New("testport: no free ports left")

var (
	mu    sync.Mutex
	held  []*os.File // the locks, kept open (and so held) until exit
	start = -1
)

// Get returns n consecutive TCP ports on 127.0.0.1 that no other test
// process using this package holds and that nothing listens on now.
func Get(tb testing.TB, n int) int {
	tb.Helper()
	p, err := Reserve(n)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// Reserve is Get without a test: it returns the first port of the block.
func Reserve(n int) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	high := ephemeralLow()
	span := high - low
	if start < 0 {
		start = rand.IntN(span) // processes starting together spread out
	}
	dir := filepath.Join(os.TempDir(), "shoal-testport")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, fmt.Errorf("testport: %w", err)
	}
	for i := 0; i < span; i++ {
		p := low + (start+i)%span
		if p+n > high {
			continue
		}
		if locks, ok := lockBlock(dir, p, n); ok {
			held = append(held, locks...)
			start = (p - low + n) % span
			return p, nil
		}
	}
	return 0, ErrExhausted
}

// lockBlock locks ports p..p+n-1 and checks nothing listens on them; on
// any failure it releases what it took.
func lockBlock(dir string, p, n int) ([]*os.File, bool) {
	var locks []*os.File
	release := func() {
		for _, f := range locks {
			f.Close()
		}
	}
	for q := p; q < p+n; q++ {
		f, ok := lock(dir, q)
		if !ok || !bindable(q) {
			if f != nil {
				f.Close()
			}
			release()
			return nil, false
		}
		locks = append(locks, f)
	}
	return locks, true
}

// lock takes the file lock of port q without waiting.
func lock(dir string, q int) (*os.File, bool) {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(q)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}

// bindable says whether nothing (outside this scheme) listens on port q.
func bindable(q int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(q)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// ephemeralLow is the bottom of the kernel's ephemeral port range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultHigh
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return defaultHigh
	}
	v, err := strconv.Atoi(f[0])
	if err != nil || v <= low+100 {
		return defaultHigh
	}
	return v
}
