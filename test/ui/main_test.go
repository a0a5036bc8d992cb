// Package ui tests the web console in a real browser: Debian's chromium,
// headless, driven by chromedp, against one `shoal manage --data-dir`
// over two real engines (test/testbed), shared by every subtest of
// TestConsole. The binary's console must have been built (`make build`,
// which `make e2e` runs first): a binary with the placeholder page fails
// at once, saying so.
//
// Screenshots of each view are written to $SHOAL_UI_SHOTS (default: a new
// directory under the system's temp dir, logged), never into the tree.
package ui

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

var (
	bed      *testbed.Bed
	sh       *shoaltest.Shoal
	browser  context.Context // one chromium for the package
	shotsDir string
)

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.MainOptions{Options: testbed.Options{Engines: 2, Prefix: "ui"}}, setup))
}

func setup(tb testing.TB, b *testbed.Bed) {
	bed = b
	var addrs []string
	for _, e := range b.Engines {
		addrs = append(addrs, strings.TrimPrefix(e.TCPAddr, "tcp://"))
	}
	flags := append([]string{"--data-dir", filepath.Join(tb.TempDir(), "data")}, shoaltest.FastFlags...)
	sh = shoaltest.Manage(tb, "nodes://"+strings.Join(addrs, ","), flags...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sh.WaitNodes(ctx, len(addrs), 30*time.Second); err != nil {
		tb.Fatalf("shoal: %v\n%s", err, sh.LogTail(50))
	}
	shotsDir = os.Getenv("SHOAL_UI_SHOTS")
	if shotsDir == "" {
		d, err := os.MkdirTemp("", "shoal-ui-shots-")
		if err != nil {
			tb.Fatal(err)
		}
		shotsDir = d
	} else if err := os.MkdirAll(shotsDir, 0o755); err != nil {
		tb.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "test/ui: screenshots in %s\n", shotsDir)
	browser = startBrowser(tb)
}

// startBrowser starts one headless chromium for the package.
func startBrowser(tb testing.TB) context.Context {
	path, err := exec.LookPath("chromium")
	if err != nil {
		tb.Fatalf("chromium not found (.ci/run installs Debian's chromium): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	tb.Cleanup(func() {
		bcancel()
		acancel()
	})
	if err := chromedp.Do(bctx); err != nil {
		tb.Fatalf("start chromium: %v", err)
	}
	return bctx
}
