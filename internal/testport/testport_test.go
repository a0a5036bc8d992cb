package testport

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestBlocksAreDistinctAndBelowEphemeral(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p := Get(t, 3)
		for q := p; q < p+3; q++ {
			if seen[q] {
				t.Fatalf("port %d handed out twice", q)
			}
			seen[q] = true
			if q < low || q >= ephemeralLow() {
				t.Fatalf("port %d outside [%d, %d)", q, low, ephemeralLow())
			}
		}
	}
}

func TestSkipsPortInUse(t *testing.T) {
	p := Get(t, 1)
	// Someone outside the scheme listens on the next port: it is skipped.
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	mu.Lock()
	start = p + 1 - low
	mu.Unlock()
	if q := Get(t, 1); q == p+1 {
		t.Fatalf("port %d in use was handed out", q)
	}
}

// A second test process never gets a port this one holds.
func TestOtherProcessRefused(t *testing.T) {
	if os.Getenv("TESTPORT_CHILD") != "" {
		mu.Lock()
		start = mustAtoi(t, os.Getenv("TESTPORT_CHILD")) - low
		mu.Unlock()
		os.Stdout.WriteString("PORT=" + strconv.Itoa(Get(t, 1)) + "\n")
		return
	}
	p := Get(t, 1)
	cmd := exec.Command(os.Args[0], "-test.run=^TestOtherProcessRefused$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESTPORT_CHILD="+strconv.Itoa(p))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	_, after, ok := strings.Cut(string(out), "PORT=")
	if !ok {
		t.Fatalf("child said %q", out)
	}
	got := mustAtoi(t, strings.Fields(after)[0])
	if got == p {
		t.Fatalf("child got port %d held by its parent", got)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
