package cli

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/discovery"
)

// execute runs the command line in-process and returns its exit code and
// what it wrote to stdout and stderr.
func execute(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outW, errW
	outC, errC := readAll(outR), readAll(errR)
	code = Execute(ctx, args)
	os.Stdout, os.Stderr = oldOut, oldErr
	outW.Close()
	errW.Close()
	return code, <-outC, <-errC
}

func readAll(r *os.File) <-chan string {
	c := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		r.Close()
		c <- string(b)
	}()
	return c
}

// TestManageRefusesBadAddressList: `shoal manage` and `shoal list` refuse
// at once a nodes:// list that expands past discovery.MaxAddresses (it
// used to run out of memory) or has a stray bracket (it used to be taken
// as part of the address), and say which entry.
func TestManageRefusesBadAddressList(t *testing.T) {
	huge := "10.[0:65535].[0:65535].1:2375"
	limit := strconv.Itoa(discovery.MaxAddresses)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"manage", "-H", "tcp://127.0.0.1:0", "nodes://10.0.0.1:2375," + huge}, []string{"too many addresses", huge, limit}},
		{[]string{"list", "nodes://" + huge}, []string{"too many addresses", huge, limit}},
		{[]string{"manage", "-H", "tcp://127.0.0.1:0", "nodes://10.0.0.][1:2]:2375"}, []string{"malformed address range", "10.0.0.][1:2]:2375", "stray ']'"}},
	} {
		t0 := time.Now()
		code, _, stderr := execute(t, tc.args...)
		if code != 1 {
			t.Fatalf("shoal %s: exit %d, want 1; stderr:\n%s", strings.Join(tc.args, " "), code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("shoal %s: stderr %q does not say %q", tc.args[0], stderr, w)
			}
		}
		if d := time.Since(t0); d > 5*time.Second {
			t.Errorf("shoal %s took %s to refuse", tc.args[0], d)
		}
	}
}

// TestListIPv6Addresses: bracketed IPv6 engine addresses pass through
// discovery as written (they used to be refused as malformed ranges).
func TestListIPv6Addresses(t *testing.T) {
	code, stdout, stderr := execute(t, "list", "nodes://[::1]:2375,tcp://[fd00::1]:[2375:2376]")
	want := "[::1]:2375\ntcp://[fd00::1]:2375\ntcp://[fd00::1]:2376\n"
	if code != 0 || stdout != want {
		t.Fatalf("shoal list: exit %d, stdout %q, stderr %q; want exit 0, %q", code, stdout, stderr, want)
	}
}
