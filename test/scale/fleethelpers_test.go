package scale

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// startListedFleet starts n simulated engines in the test process, closed
// when the test ends, and writes their addresses to a discovery file,
// one per line: the file:// list shoal manage is pointed at.
func startListedFleet(t *testing.T, n int, opts func(i int) enginesim.Options) (*enginesim.Fleet, string) {
	t.Helper()
	fleet, err := enginesim.StartFleet(n, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })
	list := filepath.Join(t.TempDir(), "engines")
	if err := os.WriteFile(list, []byte(strings.Join(fleet.Addrs(), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return fleet, list
}

// parseFleetSpec splits a fleet process's spec, "dir,n1,n2,...": the
// directory it writes its addresses to and want numbers. usage names the
// fields for the error, env the variable the spec came in.
func parseFleetSpec(env, spec, usage string, want int) (string, []int, error) {
	f := strings.Split(spec, ",")
	if len(f) != want+1 {
		return "", nil, fmt.Errorf("%s: want %s: %q", env, usage, spec)
	}
	n := make([]int, want)
	for i := range n {
		v, err := strconv.Atoi(f[i+1])
		if err != nil {
			return "", nil, fmt.Errorf("%s: %v", env, err)
		}
		n[i] = v
	}
	return f[0], n, nil
}

// raiseOwnNoFile is raiseNoFile for a fleet process, which has no test to
// report to: at worst it keeps the soft limit.
func raiseOwnNoFile() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
