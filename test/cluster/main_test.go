// Package cluster tests the built-in cluster end to end: real dockerd
// engines, each in its own network namespace (test/testbed), with a real
// shoal process started inside each namespace (shoal init / shoal join
// --token), driven through the docker CLI 28.
package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

const bedPrefix = "clu"

var bed *testbed.Bed

func TestMain(m *testing.M) { os.Exit(mainRun(m)) }

func mainRun(m *testing.M) int {
	return testbed.Main(m, testbed.MainOptions{Options: testbed.Options{Engines: 5, Prefix: bedPrefix}}, func(_ testing.TB, b *testbed.Bed) { bed = b })
}

// startShoal runs `shoal args...` inside host i's network namespace; it is
// ended by PID when the test ends, whatever the outcome, and its log shown
// on failure.
func startShoal(t *testing.T, i int, name string, args ...string) *shoaltest.Shoal {
	t.Helper()
	return shoaltest.Start(t, shoaltest.Options{Args: args, Name: name, Netns: bed.Engines[i].Netns, NoWait: true})
}

// execOut runs a command and returns its stdout.
func execOut(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", name, err, stderr.String())
	}
	return string(out), nil
}
