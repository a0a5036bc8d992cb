package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/testport"
)

// Test timing: etcd's default heartbeat (100ms) and election timeout (1s),
// the values production uses, so the failover figures logged by these
// tests are the real ones; a short write timeout keeps quorum-loss tests quick.
const (
	testHeartbeat    = 100 * time.Millisecond
	testElection     = 1000 * time.Millisecond
	testWriteTimeout = 2 * time.Second
)

type testCA struct {
	root *ca.RootCA
	dir  string
}

func newTestCA(tb testing.TB) *testCA {
	tb.Helper()
	root, err := ca.NewRootCA("test-cluster", time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	if err := ca.SaveRootCA(dir, root); err != nil {
		tb.Fatal(err)
	}
	return &testCA{root: root, dir: dir}
}

// files issues a certificate for name with role and writes it to its own directory.
func (c *testCA) files(tb testing.TB, name string, role ca.Role) TLSFiles {
	tb.Helper()
	nc, err := c.root.IssueNode(ca.NodeRequest{NodeID: name, Role: role, Hosts: []string{"127.0.0.1", "localhost"}})
	if err != nil {
		tb.Fatal(err)
	}
	dir := filepath.Join(tb.TempDir(), name)
	if err := ca.SaveNodeCert(dir, nc); err != nil {
		tb.Fatal(err)
	}
	return TLSFiles{
		CAFile:   filepath.Join(c.dir, ca.RootCertFile),
		CertFile: filepath.Join(dir, ca.NodeCertFile),
		KeyFile:  filepath.Join(dir, ca.NodeKeyFile),
	}
}

// config describes member name on two ports of its own: ports from
// testport, since a port freed by closing a listener may be taken by
// another test process before etcd binds it.
func (c *testCA) config(tb testing.TB, name string, join ...string) Config {
	port := testport.Get(tb, 2)
	return Config{
		Name:             name,
		Dir:              filepath.Join(tb.TempDir(), "data"),
		PeerURL:          fmt.Sprintf("https://127.0.0.1:%d", port),
		ClientURL:        fmt.Sprintf("https://127.0.0.1:%d", port+1),
		TLS:              c.files(tb, name, ca.RoleManager),
		AllowedHostnames: []string{string(ca.RoleManager)},
		Join:             join,
		ClusterToken:     "test-cluster",
		Heartbeat:        testHeartbeat,
		ElectionTimeout:  testElection,
		WriteTimeout:     testWriteTimeout,
		StartTimeout:     30 * time.Second,
		ProbeTimeout:     500 * time.Millisecond,
	}
}

func mustOpen(tb testing.TB, cfg Config) *Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		tb.Fatalf("open %s: %v", cfg.Name, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// kill stops a member the way a crash would: Raft stops at once, with no
// leadership hand-over, then the listeners close.
func kill(s *Store) {
	s.etcd.Server.HardStop()
	s.Close()
}

func ctxT(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// eventually retries f every 50ms until it returns nil or d passes.
func eventually(tb testing.TB, d time.Duration, what string, f func() error) time.Duration {
	tb.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < d {
		if err = f(); err == nil {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("%s: still failing after %s: %v", what, d, err)
	return 0
}
