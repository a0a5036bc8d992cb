package cluster

import (
	"bytes"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/seal"
	"github.com/shoal-dev/shoal/internal/store"
)

// keyBody is the base64 body of a PEM key, as it would appear in a file
// holding the key in clear.
func keyBody(t *testing.T, keyPEM []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		t.Fatal("no PEM key")
	}
	body := pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: b.Bytes})
	lines := bytes.Split(body, []byte("\n"))
	return lines[1] // the first line of base64
}

// dirHolds returns a file under dir holding s, or "".
func dirHolds(t *testing.T, dir string, s []byte) string {
	t.Helper()
	var found string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, s) {
			found = p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func wrapped(t *testing.T, dir, name string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "certificates", name))
	if err != nil {
		t.Fatal(err)
	}
	return seal.IsWrapped(b)
}

// startLocked starts a node from cfg expecting ErrLocked.
func startLocked(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Start(ctxT(t, 60*time.Second)); !errors.Is(err, ErrLocked) {
		t.Fatalf("restart under autolock: %v, want ErrLocked", err)
	}
	return c
}

// TestAutoLock follows a manager through autolock: made at init, its key
// files and store key wrapped and the CA key nowhere in clear; a restart
// is locked until the right key; autolock off unwraps the files, on again
// and a rotation wrap them with a new key.
func TestAutoLock(t *testing.T) {
	cfg := config(t, "mgr")
	cfg.Init, cfg.AutoLock = true, true
	m := mustStart(t, cfg)
	ctx := ctxT(t, 60*time.Second)
	key, err := m.UnlockKey(ctx)
	if err != nil || key == "" {
		t.Fatalf("UnlockKey = %q, %v", key, err)
	}
	if sw, err := m.Swarm(ctx); err != nil || !sw.Spec.EncryptionConfig.AutoLockManagers {
		t.Fatalf("swarm inspect: autolock not shown (%v)", err)
	}
	for _, f := range []string{ca.RootKeyFile, ca.NodeKeyFile, dekFile} {
		if !wrapped(t, cfg.DataDir, f) {
			t.Errorf("%s is not wrapped", f)
		}
	}
	caKey := keyBody(t, m.root.KeyPEM())
	if err := m.Unlock(key); !errors.Is(err, ErrNotLocked) {
		t.Errorf("unlock of a running manager: %v, want ErrNotLocked", err)
	}
	m.stop()
	if f := dirHolds(t, cfg.DataDir, caKey); f != "" {
		t.Fatalf("%s holds the CA key in clear", f)
	}

	cfg.Init = false
	c := startLocked(t, cfg)
	other, _ := seal.NewUnlockKey()
	for bad, want := range map[string]error{"not-a-key": ErrUnlockKeyFormat, "SWMKEY-1-!!": ErrUnlockKeyFormat, other: ErrWrongUnlockKey, "SWMKEY-1-QUJD": ErrWrongUnlockKey} {
		if err := c.Unlock(bad); !errors.Is(err, want) {
			t.Errorf("Unlock(%q) = %v, want %v", bad, err, want)
		}
	}
	if err := c.Unlock(key); err != nil {
		t.Fatalf("Unlock with the right key: %v", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start once unlocked: %v", err)
	}
	if got, err := c.UnlockKey(ctx); err != nil || got != key {
		t.Fatalf("unlocked manager reads %q, %v from its store", got, err)
	}

	off := false
	if err := c.UpdateAutoLock(ctx, &off, false); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ca.RootKeyFile, ca.NodeKeyFile, dekFile} {
		if wrapped(t, cfg.DataDir, f) {
			t.Errorf("autolock off: %s is still wrapped", f)
		}
	}
	on := true
	if err := c.UpdateAutoLock(ctx, &on, false); err != nil {
		t.Fatal(err)
	}
	first, _ := c.UnlockKey(ctx)
	if err := c.UpdateAutoLock(ctx, nil, true); err != nil {
		t.Fatal(err)
	}
	rotated, _ := c.UnlockKey(ctx)
	if first == "" || first == key || rotated == first {
		t.Fatalf("keys: at init %q, on again %q, rotated %q: want three different keys", key, first, rotated)
	}
	c.Close()

	c = startLocked(t, cfg)
	if err := c.Unlock(first); !errors.Is(err, ErrWrongUnlockKey) {
		t.Fatalf("the key before rotation: %v, want ErrWrongUnlockKey", err)
	}
	if err := c.Unlock(rotated); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestAutoLockManagerJoin: a manager joining an autolocked cluster gets
// the store key and the unlock key, so it reads the (encrypted) store and
// writes its own key files wrapped from the start.
func TestAutoLockManagerJoin(t *testing.T) {
	cfg := config(t, "m1")
	cfg.Init, cfg.AutoLock = true, true
	m := mustStart(t, cfg)
	ctx := ctxT(t, 60*time.Second)
	sw, err := m.Swarm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	jc := joinCfg(t, m, "m2", sw.JoinTokens.Manager)
	m2 := mustStart(t, jc)
	if sw2, err := m2.Swarm(ctx); err != nil || sw2.JoinTokens != sw.JoinTokens {
		t.Fatalf("the new manager reads the store: %v", err)
	}
	for _, f := range []string{ca.RootKeyFile, ca.NodeKeyFile, dekFile} {
		if !wrapped(t, jc.DataDir, f) {
			t.Errorf("new manager: %s is not wrapped", f)
		}
	}
	if m2.HeldUnlockKey() != m.HeldUnlockKey() {
		t.Error("the new manager holds another unlock key")
	}
}

// TestNextLock is the autolock setting's state machine.
func TestNextLock(t *testing.T) {
	on, off := true, false
	r, err := nextLock(lockRecord{}, &on, false)
	if err != nil || !r.AutoLock || r.UnlockKey == "" {
		t.Fatalf("on: %+v %v", r, err)
	}
	same, _ := nextLock(r, nil, false)
	again, _ := nextLock(r, &on, false)
	if same != r || again != r {
		t.Error("an update without rotation changed the key")
	}
	rot, _ := nextLock(r, nil, true)
	if rot.UnlockKey == r.UnlockKey || !rot.AutoLock {
		t.Error("rotation kept the key")
	}
	if o, _ := nextLock(r, &off, true); o.AutoLock || o.UnlockKey != "" {
		t.Errorf("off: %+v, want no key", o)
	}
	if o, _ := nextLock(lockRecord{}, nil, true); o.UnlockKey != "" {
		t.Error("rotation without autolock made a key")
	}
}

// TestLegacyStoreEncrypted: a sole manager whose store was written before
// encryption at rest (values in clear, no DEK file) makes a DEK at restart
// and rewrites the values sealed, still reading them.
func TestLegacyStoreEncrypted(t *testing.T) {
	cfg := config(t, "mgr")
	cfg.Init = true
	m := mustStart(t, cfg)
	ctx := ctxT(t, 60*time.Second)
	before, err := m.Swarm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m.stop()

	// Make the data directory what an older shoal left: values in clear, no DEK file.
	cfg.Init = false
	old, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.loadIdentity(); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, old.storeConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	kvs, _, err := s.List(ctx, store.Root)
	if err != nil || len(kvs) == 0 {
		t.Fatalf("list: %v", err)
	}
	for _, kv := range kvs {
		if _, err := s.Client().Put(ctx, kv.Key, string(kv.Value)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	old.Close()
	if err := os.Remove(filepath.Join(cfg.DataDir, "certificates", dekFile)); err != nil {
		t.Fatal(err)
	}

	again := mustStart(t, cfg)
	if wrapped(t, cfg.DataDir, dekFile) {
		t.Fatal("the new DEK file is wrapped without autolock")
	}
	eventually(t, 20*time.Second, "values rewritten sealed", func() error {
		resp, err := again.store.Client().Get(ctx, store.Root, clientv3.WithPrefix())
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			if !seal.IsSealedValue(kv.Value) {
				return errors.New(string(kv.Key) + " is in clear")
			}
		}
		return nil
	})
	if after, err := again.Swarm(ctx); err != nil || after.JoinTokens != before.JoinTokens {
		t.Fatalf("the migrated store reads %v, %v", after, err)
	}
}

// TestAutoLockPromoteDemote: under autolock a worker's key stays plain;
// promoted, it gets the store key and the unlock key and wraps its files
// from the start; demoted, its files are plain again and its store key gone.
func TestAutoLockPromoteDemote(t *testing.T) {
	cfg := config(t, "mgr")
	cfg.Init, cfg.AutoLock = true, true
	m := mustStart(t, cfg)
	ctx := ctxT(t, 120*time.Second)
	sw, err := m.Swarm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wc := joinCfg(t, m, "node1", sw.JoinTokens.Worker)
	w := mustStart(t, wc)
	if wrapped(t, wc.DataDir, ca.NodeKeyFile) {
		t.Fatal("a worker's node key is wrapped")
	}

	setRole(t, m, w.NodeID(), swarm.NodeRoleWorker, swarm.NodeRoleManager)
	w = restartAfterRoleChange(t, w)
	if !w.IsManager() || w.HeldUnlockKey() != m.HeldUnlockKey() {
		t.Fatalf("after promotion: manager %v, same unlock key %v", w.IsManager(), w.HeldUnlockKey() == m.HeldUnlockKey())
	}
	for _, f := range []string{ca.RootKeyFile, ca.NodeKeyFile, dekFile} {
		if !wrapped(t, wc.DataDir, f) {
			t.Errorf("promoted manager: %s is not wrapped", f)
		}
	}
	if _, err := w.UnlockKey(ctx); err != nil {
		t.Fatalf("the promoted manager reads the store: %v", err)
	}

	setRole(t, m, w.NodeID(), swarm.NodeRoleManager, swarm.NodeRoleWorker)
	w = restartAfterRoleChange(t, w)
	if w.IsManager() || wrapped(t, wc.DataDir, ca.NodeKeyFile) {
		t.Fatalf("after demotion: manager %v, or its node key is wrapped", w.IsManager())
	}
	if _, err := os.Stat(filepath.Join(wc.DataDir, "certificates", dekFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the demoted node keeps the store key: %v", err)
	}
}

// TestAutoLockRootRotation: a root rotation under autolock writes the new
// root's key wrapped (the trust bundle and chain beside it in clear), keeps
// autolock on (the update's spec says so), and the manager, restarted and
// unlocked, loads the same root, chain and key.
func TestAutoLockRootRotation(t *testing.T) {
	cfg := config(t, "mgr")
	cfg.Init, cfg.AutoLock = true, true
	m := mustStart(t, cfg)
	ctx := ctxT(t, 120*time.Second)
	key := m.HeldUnlockKey()
	if err := updateSpec(ctx, m, func(s *swarm.Spec) { s.CAConfig.ForceRotate++ }); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "rotation done", func() error { return rotationDone(ctx, m) })
	if got, _ := m.UnlockKey(ctx); got != key {
		t.Fatalf("the CA update changed the unlock key (autolock %v)", m.autoLocked(ctx))
	}
	if !wrapped(t, cfg.DataDir, ca.RootKeyFile) {
		t.Fatal("the new root's key is not wrapped")
	}
	trust, chain, signer := m.root.TrustPEM(), m.root.ChainPEM(), m.root.KeyPEM()
	m.stop()

	cfg.Init = false
	c := startLocked(t, cfg)
	if err := c.Unlock(key); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.root.TrustPEM(), trust) || !bytes.Equal(c.root.ChainPEM(), chain) || !bytes.Equal(c.root.KeyPEM(), signer) {
		t.Fatal("the restarted manager loaded another root, chain or key")
	}
}

// A manager's keys do not stay in seal's cache once it is done with them:
// the KEK of an unlock key rotated away, and its DEK and KEK once it stops
// (a demoted manager goes on as a worker in the same process).
func TestKeysForgotten(t *testing.T) {
	cfg := config(t, "mgr")
	cfg.Init, cfg.AutoLock = true, true
	m := mustStart(t, cfg)
	ctx := ctxT(t, 60*time.Second)
	if _, err := m.Nodes(ctx); err != nil { // reads the store: the DEK in use
		t.Fatal(err)
	}
	m.keyMu.Lock()
	dek, first := m.dek, *m.kek
	m.keyMu.Unlock()
	if !seal.Held(dek) || !seal.Held(first) {
		t.Fatalf("keys in use are not cached (DEK %v, KEK %v): the test shows nothing", seal.Held(dek), seal.Held(first))
	}
	if err := m.UpdateAutoLock(ctx, nil, true); err != nil {
		t.Fatal(err)
	}
	m.keyMu.Lock()
	rotated := *m.kek
	m.keyMu.Unlock()
	if seal.Held(first) {
		t.Error("the KEK of the unlock key rotated away is still cached")
	}
	m.stop()
	if seal.Held(dek) || seal.Held(rotated) {
		t.Errorf("a stopped manager's keys are still cached: DEK %v, KEK %v", seal.Held(dek), seal.Held(rotated))
	}
}
