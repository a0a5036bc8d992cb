package testbed

import (
	"os"
	"slices"
	"testing"
)

// A Fatal in a package's setup ends the setup, fails the run, and still
// runs every cleanup registered so far, last first, and removes TempDirs.
func TestMainTBFatalRunsCleanups(t *testing.T) {
	tb, err := newMainTB("testbed x")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	var dir string
	ok := tb.run(func() {
		dir = tb.TempDir()
		tb.Cleanup(func() { order = append(order, "first") })
		tb.Cleanup(func() { order = append(order, "second") })
		tb.Fatalf("setup %s", "broke")
		order = append(order, "after Fatal")
	})
	if ok || !tb.Failed() {
		t.Fatalf("run after Fatal: ok %v, failed %v; want a failed setup", ok, tb.Failed())
	}
	tb.finish(false)
	if !slices.Equal(order, []string{"second", "first"}) {
		t.Errorf("cleanups ran as %v, want [second first]", order)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("TempDir %s survives finish: %v", dir, err)
	}
}

// Cleanups see whether the tests failed (shoaltest prints logs then).
func TestMainTBFinishReportsFailure(t *testing.T) {
	tb, err := newMainTB("testbed y")
	if err != nil {
		t.Fatal(err)
	}
	var failed bool
	if !tb.run(func() { tb.Cleanup(func() { failed = tb.Failed() }) }) {
		t.Fatal("a setup without Fatal failed")
	}
	tb.finish(true)
	if !failed {
		t.Error("a cleanup after failed tests sees Failed() == false")
	}
}
