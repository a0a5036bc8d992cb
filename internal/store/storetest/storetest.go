// Package storetest opens real single-member stores for the tests of the
// packages above the store (services, orchestrator): an embedded etcd
// with its own CA, data directory and ports, closed when the test ends.
package storetest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/testport"
)

// Open starts a single-member store for tb and closes it at tb's end.
func Open(tb testing.TB) *store.Store {
	tb.Helper()
	root, err := ca.NewRootCA("storetest", time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	if err := ca.SaveRootCA(filepath.Join(dir, "ca"), root); err != nil {
		tb.Fatal(err)
	}
	nc, err := root.IssueNode(ca.NodeRequest{NodeID: "m0", Role: ca.RoleManager, Hosts: []string{"127.0.0.1", "localhost"}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := ca.SaveNodeCert(filepath.Join(dir, "node"), nc); err != nil {
		tb.Fatal(err)
	}
	port := testport.Get(tb, 2)
	cfg := store.Config{
		Name:      "m0",
		Dir:       filepath.Join(dir, "data"),
		PeerURL:   fmt.Sprintf("https://127.0.0.1:%d", port),
		ClientURL: fmt.Sprintf("https://127.0.0.1:%d", port+1),
		TLS: store.TLSFiles{
			CAFile:   filepath.Join(dir, "ca", ca.RootCertFile),
			CertFile: filepath.Join(dir, "node", ca.NodeCertFile),
			KeyFile:  filepath.Join(dir, "node", ca.NodeKeyFile),
		},
		ClusterToken: "storetest",
		WriteTimeout: 5 * time.Second,
		StartTimeout: 30 * time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	s, err := store.Open(ctx, cfg)
	if err != nil {
		tb.Fatalf("storetest: open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}
