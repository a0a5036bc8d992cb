package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

type node struct {
	Addr   string
	Labels map[string]string
}

func TestSingleMemberKV(t *testing.T) {
	c := newTestCA(t)
	s := mustOpen(t, c.config(t, "m0"))
	ctx := ctxT(t, 20*time.Second)

	if !s.IsLeader() {
		t.Fatal("single member is not leader")
	}
	if name, ok := s.Leader(); !ok || name != "m0" {
		t.Fatalf("Leader() = %q %v", name, ok)
	}
	nodes := NewCollection[node](s, PrefixNodes)
	watch := nodes.Watch(ctx, 0)

	if _, err := nodes.Create(ctx, "n1", node{Addr: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes.Create(ctx, "n1", node{Addr: "b"}); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if err := nodes.Put(ctx, "n2", node{Addr: "b"}); err != nil {
		t.Fatal(err)
	}
	err := nodes.Modify(ctx, "n1", func(cur node, ok bool) (node, error) {
		if !ok {
			return cur, errors.New("n1 missing")
		}
		cur.Labels = map[string]string{"zone": "a"}
		return cur, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := nodes.Get(ctx, "n1", Linearizable())
	if err != nil || got.Value.Labels["zone"] != "a" || got.Value.Addr != "a" {
		t.Fatalf("get n1 = %+v, %v", got, err)
	}
	items, rev, err := nodes.List(ctx)
	if err != nil || len(items) != 2 || items[0].ID != "n1" || items[1].ID != "n2" || rev == 0 {
		t.Fatalf("list = %+v rev %d, %v", items, rev, err)
	}
	if err := nodes.Delete(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes.Get(ctx, "n2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted get: %v", err)
	}
	if err := nodes.Delete(ctx, "n2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}

	want := []string{"put n1 a", "put n2 b", "put n1 a", "delete n2 b"}
	for i, w := range want {
		select {
		case ch := <-watch:
			kind := "put"
			if ch.Deleted {
				kind = "delete"
			}
			if g := fmt.Sprintf("%s %s %s", kind, ch.Item.ID, ch.Item.Value.Addr); g != w || ch.Err != nil {
				t.Fatalf("event %d = %q (%v), want %q", i, g, ch.Err, w)
			}
		case <-ctx.Done():
			t.Fatalf("event %d: timeout", i)
		}
	}
}

func TestUpdateConcurrent(t *testing.T) {
	c := newTestCA(t)
	s := mustOpen(t, c.config(t, "m0"))
	ctx := ctxT(t, 20*time.Second)
	counter := NewCollection[int](s, PrefixTokens)
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			errs <- counter.Modify(ctx, "c", func(cur int, _ bool) (int, error) { return cur + 1, nil })
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got, err := counter.Get(ctx, "c", Linearizable())
	if err != nil || got.Value != n {
		t.Fatalf("counter = %d, %v; want %d", got.Value, err, n)
	}
}

// A worker certificate is from the cluster CA but must not reach the
// store; a manager certificate through the same client code does.
func TestWorkerCertificateRefused(t *testing.T) {
	c := newTestCA(t)
	cfg := c.config(t, "m0")
	mustOpen(t, cfg)
	read := func(files TLSFiles) error {
		info := transport.TLSInfo{CertFile: files.CertFile, KeyFile: files.KeyFile, TrustedCAFile: files.CAFile}
		tlsCfg, err := info.ClientConfig()
		if err != nil {
			return err
		}
		cl, err := clientv3.New(clientv3.Config{Endpoints: []string{cfg.ClientURL}, TLS: tlsCfg, DialTimeout: time.Second, Logger: zap.NewNop()})
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = cl.Get(ctx, "/shoal/", clientv3.WithSerializable())
		return err
	}
	if err := read(c.files(t, "m9", ca.RoleManager)); err != nil {
		t.Fatalf("manager certificate refused: %v", err)
	}
	if err := read(c.files(t, "w1", ca.RoleWorker)); err == nil {
		t.Fatal("worker certificate read the store")
	}
}

func TestConfigValidation(t *testing.T) {
	_, err := Open(context.Background(), Config{Name: "x", Dir: t.TempDir(), PeerURL: "http://127.0.0.1:1", ClientURL: "https://127.0.0.1:2"})
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("plain http accepted: %v", err)
	}
}

// A scrape right after the store opened sees its first leader counted,
// whether or not the leader tracking has ticked since (a slow heartbeat
// here makes sure it has not).
func TestLeaderChangesCountsTheLeaderBeforeTheFirstTick(t *testing.T) {
	c := newTestCA(t)
	cfg := c.config(t, "m1")
	cfg.Heartbeat = time.Second
	cfg.ElectionTimeout = 10 * time.Second
	s := mustOpen(t, cfg)
	if _, ok := s.Leader(); !ok {
		t.Fatal("no leader known right after open")
	}
	if got := s.LeaderChanges(); got != 1 {
		t.Fatalf("LeaderChanges() = %d right after open with a leader, want 1", got)
	}
}
