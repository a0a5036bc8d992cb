package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/testport"
)

// node is one Cluster of a test, running until the test ends.
type node struct {
	*Cluster
	cfg  Config
	done chan error // Run's result
	stop func()     // ends Run and closes the node, as a crash would not
}

// config describes a node on loopback with its own data directory, three
// ports of its own (the cluster port and the store's two) and a simulated
// engine as its local engine.
func config(t *testing.T, hostname string) Config {
	t.Helper()
	sim, err := enginesim.Start(enginesim.Options{Name: hostname})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return Config{
		DataDir:       t.TempDir(),
		ListenAddr:    fmt.Sprintf("127.0.0.1:%d", testport.Get(t, 3)),
		AdvertiseAddr: "127.0.0.1",
		Engine:        "tcp://" + sim.Addr(),
		Hostname:      hostname,
		Logger:        slog.New(slog.DiscardHandler),
	}
}

// start starts a node from cfg and runs it until the test ends.
func start(t *testing.T, cfg Config) (*node, error) {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ctx := ctxT(t, 60*time.Second)
	if err := c.Start(ctx); err != nil {
		c.Close()
		return nil, err
	}
	n := &node{Cluster: c, cfg: cfg, done: make(chan error, 1)}
	rctx, cancel := context.WithCancel(context.Background())
	go func() { n.done <- c.Run(rctx) }()
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			cancel()
			n.done <- <-n.done // keep the result for whoever reads it later
			c.Close()
		})
	}
	t.Cleanup(n.stop)
	if c.IsManager() {
		waitDial(t, c.ClusterAddr())
	}
	return n, nil
}

func mustStart(t *testing.T, cfg Config) *node {
	t.Helper()
	n, err := start(t, cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Hostname, err)
	}
	return n
}

// initManager creates a cluster whose first manager is called hostname.
func initManager(t *testing.T, hostname string) *node {
	cfg := config(t, hostname)
	cfg.Init = true
	return mustStart(t, cfg)
}

// joinWorker starts a worker called hostname, joined to m with its worker token.
func joinWorker(t *testing.T, ctx context.Context, m *node, hostname string) *node {
	t.Helper()
	sw, err := m.Swarm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return mustStart(t, joinCfg(t, m, hostname, sw.JoinTokens.Worker))
}

// joinCfg is a node's configuration to join m with token.
func joinCfg(t *testing.T, m *node, hostname, token string) Config {
	cfg := config(t, hostname)
	cfg.Token, cfg.JoinAddr = token, m.ClusterAddr()
	return cfg
}

func waitDial(t *testing.T, addr string) {
	t.Helper()
	eventually(t, 10*time.Second, "cluster port "+addr, func() error {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err
	})
}

// client calls the cluster port with n's certificate, as its agent loop does.
func (n *node) client(t *testing.T) *http.Client {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: n.httpTLS()}}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually retries f every 100ms until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	err := errors.New("not tried")
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after %s: %v", what, d, err)
}
