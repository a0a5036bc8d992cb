package testbed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MainOptions adds to Options what only Main needs.
type MainOptions struct {
	Options
	// NoBusybox leaves the engines without the busybox image (for a package
	// that loads it itself, e.g. through shoal).
	NoBusybox bool
}

// Main is the body of a test package's TestMain that shares one Bed: it
// checks for root, tears down what crashed runs of the same prefix left,
// starts the Bed, loads busybox into every engine, hands setup a TB for the
// package (its Cleanup functions run after the tests, before the Bed is
// closed; its Fatal ends the run with exit code 1) and the Bed, runs the
// tests and tears everything down even when they fail. It returns the exit
// code.
func Main(m *testing.M, opts MainOptions, setup func(tb testing.TB, b *Bed)) (code int) {
	name := "testbed " + opts.Prefix
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, name+": must run as root (network namespaces, dockerd)")
		return 1
	}
	t0 := time.Now()
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	reapAbandoned(prefix)
	_ = Reap(prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if opts.Logf == nil {
		opts.Logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	}
	bed, err := Start(ctx, opts.Options)
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	defer func() {
		bed.SetLogf(nil)
		if err := bed.Close(); err != nil {
			fmt.Fprintln(os.Stderr, name+": close:", err)
		}
	}()
	if !opts.NoBusybox {
		if err := bed.LoadBusyboxAll(ctx); err != nil {
			fmt.Fprintln(os.Stderr, name+": busybox:", err)
			return 1
		}
	}
	tb, err := newMainTB(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	defer func() { tb.finish(code != 0) }()
	if !tb.run(func() { setup(tb, bed) }) {
		return 1
	}
	fmt.Fprintf(os.Stderr, "%s: setup done in %s\n", name, time.Since(t0).Round(time.Millisecond))
	return m.Run()
}

// reapAbandoned tears down Beds of prefix whose test process is gone (e.g.
// killed by `go test -timeout`) while their engines still run: Reap leaves
// Beds with live engines alone.
func reapAbandoned(prefix string) {
	files, _ := filepath.Glob(filepath.Join(registryDir(), prefix+"*.json"))
	for _, f := range files {
		b, err := Load(f)
		if err != nil || b.Prefix != prefix || b.OwnerPID <= 0 || b.OwnerPID == os.Getpid() {
			continue
		}
		if syscall.Kill(b.OwnerPID, 0) == nil {
			continue // its owner still runs
		}
		fmt.Fprintf(os.Stderr, "testbed: removing leftover %s\n", b.ID)
		_ = b.Close()
	}
}

// mainTB is the testing.TB a TestMain hands to helpers written for tests
// (shoaltest.Start and friends): Cleanup runs at the end of the package,
// Fatal stops the setup.
type mainTB struct {
	testing.TB // nil: methods not listed here must not be called
	name       string
	dir        string

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

// errFatal is what Fatal panics with; run turns it back into a failure.
type errFatal struct{ msg string }

func newMainTB(name string) (*mainTB, error) {
	dir, err := os.MkdirTemp("", "testmain-")
	if err != nil {
		return nil, err
	}
	return &mainTB{name: name, dir: dir}, nil
}

// run calls f and reports whether it finished without Fatal.
func (m *mainTB) run(f func()) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			fe, isFatal := p.(errFatal)
			if !isFatal {
				panic(p)
			}
			fmt.Fprintf(os.Stderr, "%s: setup: %s\n", m.name, fe.msg)
			m.setFailed()
			ok = false
		}
	}()
	f()
	return true
}

// finish runs the cleanups (last registered first) and removes TempDirs.
func (m *mainTB) finish(failed bool) {
	if failed {
		m.setFailed()
	}
	m.mu.Lock()
	cs := m.cleanups
	m.cleanups = nil
	m.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
	os.RemoveAll(m.dir)
}

func (m *mainTB) setFailed() {
	m.mu.Lock()
	m.failed = true
	m.mu.Unlock()
}

func (m *mainTB) Helper()                 {}
func (m *mainTB) Name() string            { return m.name }
func (m *mainTB) Log(a ...any)            { fmt.Fprintln(os.Stderr, a...) }
func (m *mainTB) Logf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
func (m *mainTB) Error(a ...any)          { m.Log(a...); m.setFailed() }
func (m *mainTB) Errorf(f string, a ...any) {
	m.Logf(f, a...)
	m.setFailed()
}
func (m *mainTB) Fatal(a ...any)            { panic(errFatal{fmt.Sprint(a...)}) }
func (m *mainTB) Fatalf(f string, a ...any) { panic(errFatal{fmt.Sprintf(f, a...)}) }
func (m *mainTB) FailNow()                  { panic(errFatal{"FailNow"}) }
func (m *mainTB) Fail()                     { m.setFailed() }
func (m *mainTB) Failed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failed
}
func (m *mainTB) Skipped() bool { return false }
func (m *mainTB) TempDir() string {
	d, err := os.MkdirTemp(m.dir, "t")
	if err != nil {
		m.Fatal(err)
	}
	return d
}
func (m *mainTB) Cleanup(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cleanups = append(m.cleanups, f)
}
func (m *mainTB) Context() context.Context { return context.Background() }
