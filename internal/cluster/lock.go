package cluster

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/seal"
	"github.com/shoal-dev/shoal/internal/store"
)

// Errors of autolock, worded and classed as dockerd's (the API edge maps
// the class to the status: 503, 401, 400, 409).
var (
	// ErrLocked is returned by Start on a manager whose keys are wrapped
	// with the unlock key: it serves the locked API until Unlock.
	ErrLocked = errdefs.ErrUnavailable.WithMessage(`Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker swarm unlock" to unlock it.`)
	// ErrWrongUnlockKey is an unlock key that does not open this manager's keys.
	ErrWrongUnlockKey = errdefs.ErrUnauthenticated.WithMessage("swarm could not be unlocked: invalid key provided")
	// ErrUnlockKeyFormat is a string that is not an unlock key at all.
	ErrUnlockKeyFormat = errdefs.ErrInvalidArgument.WithMessage("invalid key string")
	// ErrNotLocked is an unlock of a manager that runs.
	ErrNotLocked = errdefs.ErrConflict.WithMessage("swarm is not locked")
)

// keyLock is the autolock setting and the unlock key, shared by the
// managers through the (encrypted) store.
const keyLock = store.PrefixCA + "lock"

// lockRecord is swarm mode's EncryptionConfig and unlock key.
type lockRecord struct {
	AutoLock  bool   `json:"autolock"`
	UnlockKey string `json:"unlock_key,omitempty"`
}

// secrets are this manager's keys in memory (see keys.go).
type secrets struct {
	keyMu     sync.Mutex
	dek       seal.Key  // the store's data-encryption key
	hasDEK    bool      // false on a manager of a cluster made before encryption at rest
	noDEK     bool      // this manager's DEK file is missing (legacyDEK)
	kek       *seal.Key // the unlock key's KEK while autolock is on
	unlockKey string    // the unlock key kek derives from
	mem       *memKey   // the node key in clear for the store's TLS
	sealedAll bool      // the leader rewrote the values written in clear (secrets.go)
}

// storeSecrets are what a manager joining (or promoted) is given with its
// certificate, over the cluster port's TLS, to read and write the store:
// the DEK and, under autolock, the unlock key its files are wrapped with.
type storeSecrets struct {
	StoreKey  []byte `json:"store_key,omitempty"`
	UnlockKey string `json:"unlock_key,omitempty"`
}

// shareSecrets is what this manager hands a new manager.
func (c *Cluster) shareSecrets() storeSecrets {
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	s := storeSecrets{UnlockKey: c.unlockKey}
	if c.hasDEK {
		s.StoreKey = bytes.Clone(c.dek[:])
	}
	return s
}

// takeSecrets adopts the secrets a manager handed this new manager.
// A manager of a store still in clear (see legacyDEK) sends no DEK.
func (c *Cluster) takeSecrets(s storeSecrets) error {
	if len(s.StoreKey) != 0 && len(s.StoreKey) != seal.KeySize {
		return fmt.Errorf("%w: the manager sent a store key of %d bytes", ErrJoinRefused, len(s.StoreKey))
	}
	if err := c.setUnlockKey(s.UnlockKey); err != nil {
		return err
	}
	if len(s.StoreKey) == 0 {
		c.log.Warn("cluster: the manager sent no store key: this cluster's store predates encryption at rest")
		return nil
	}
	c.dek, c.hasDEK = seal.Key(s.StoreKey), true
	return nil
}

// forgetKeys drops this manager's keys from seal's cache once it stops
// (a role change restarts the node in this process: a worker keeps no
// store key).
func (c *Cluster) forgetKeys() {
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	if c.hasDEK {
		seal.Forget(c.dek)
	}
	if c.kek != nil {
		seal.Forget(*c.kek)
	}
}

// setUnlockKey makes key ("" for none) the one this manager's files are wrapped with.
func (c *Cluster) setUnlockKey(key string) error {
	if key == "" {
		c.kek, c.unlockKey = nil, ""
		return nil
	}
	kek, err := seal.ParseUnlockKey(key)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnlockKeyFormat, err)
	}
	c.kek, c.unlockKey = &kek, key
	return nil
}

// newSecrets makes a new cluster's DEK and, with autolock, its unlock key.
func (c *Cluster) newSecrets() (lockRecord, error) {
	var rec lockRecord
	dek, err := seal.NewKey()
	if err != nil {
		return rec, err
	}
	c.dek, c.hasDEK = dek, true
	if c.cfg.AutoLock {
		rec.AutoLock = true
		if rec.UnlockKey, err = seal.NewUnlockKey(); err != nil {
			return rec, err
		}
	}
	return rec, c.setUnlockKey(rec.UnlockKey)
}

// openSecrets prepares a manager's keys before its certificates are
// written or read: the memory file for the store's TLS and the unlock key
// the node was started with (a restart after a role change).
func (c *Cluster) openSecrets() error {
	if c.mem == nil {
		m, err := newMemKey() // nil without memfd: the store reads the file on disk
		if err != nil {
			return err
		}
		c.mem = m
	}
	if c.kek == nil && c.cfg.UnlockKey != "" {
		return c.setUnlockKey(c.cfg.UnlockKey)
	}
	return nil
}

// setMemKey hands the node key in clear to the store's TLS.
func (c *Cluster) setMemKey(keyPEM []byte) error {
	if c.mem == nil {
		return nil
	}
	return c.mem.set(keyPEM)
}

// nodeKeyPath is the node key file the store's TLS reads.
func (c *Cluster) nodeKeyPath(onDisk string) string {
	if c.mem == nil {
		return onDisk
	}
	return c.mem.path()
}

// storeCipher encrypts the store's values, once the DEK is known.
func (c *Cluster) storeCipher() store.Cipher {
	if !c.hasDEK {
		return nil
	}
	return seal.Values{DEK: c.dek}
}

// Unlock is docker swarm unlock on a manager that Start left locked: it
// checks key against this manager's DEK file and keeps it, so that Start,
// called again, reads the manager's keys. ErrNotLocked if not locked.
func (c *Cluster) Unlock(key string) error {
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	if !c.locked() {
		return ErrNotLocked
	}
	kek, err := seal.ParseUnlockKey(key)
	if err != nil {
		if seal.UnlockKeyForm(key) {
			return ErrWrongUnlockKey // dockerd's answer: the form is right, the bytes are not the key
		}
		return ErrUnlockKeyFormat
	}
	prev := c.kek
	c.kek = &kek
	if err := c.loadDEK(); err != nil {
		c.kek = prev
		seal.Forget(kek)
		if errors.Is(err, seal.ErrOpen) {
			return ErrWrongUnlockKey
		}
		return err
	}
	c.unlockKey = key
	return nil
}

// locked says whether this manager's DEK file is wrapped and not opened yet.
func (c *Cluster) locked() bool {
	if !c.IsManager() || c.kek != nil {
		return false
	}
	data, err := os.ReadFile(c.dekPath())
	return err == nil && seal.IsWrapped(data)
}

// LockedRootPool is the pool of the root certificate in the data
// directory, which a locked manager's API verifies clients with (the root
// is public; only its key is locked).
func (c *Cluster) LockedRootPool() (*x509.CertPool, error) {
	b, err := os.ReadFile(filepath.Join(c.certDir(), ca.RootCertFile))
	if err != nil {
		return nil, fmt.Errorf("cluster: read root certificate: %w", err)
	}
	root, err := ca.LoadRootCA(b, nil)
	if err != nil {
		return nil, err
	}
	return root.Pool(), nil
}

// HeldUnlockKey is the unlock key this manager holds ("" without autolock),
// to start it again in the same process without asking for it.
func (c *Cluster) HeldUnlockKey() string {
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	return c.unlockKey
}

// UnlockKey is docker swarm unlock-key: the current key, "" without autolock.
func (c *Cluster) UnlockKey(ctx context.Context) (string, error) {
	rec, err := c.lockRecord(ctx)
	return rec.UnlockKey, err
}

func (c *Cluster) lockRecord(ctx context.Context, opts ...store.ReadOption) (lockRecord, error) {
	var rec lockRecord
	kv, err := c.store.Get(ctx, keyLock, opts...)
	if errors.Is(err, store.ErrNotFound) {
		return rec, nil
	}
	if err != nil {
		return rec, err
	}
	return rec, json.Unmarshal(kv.Value, &rec)
}

// autoLocked says whether autolock is on, for swarm inspect.
func (c *Cluster) autoLocked(ctx context.Context) bool {
	rec, err := c.lockRecord(ctx)
	return err == nil && rec.AutoLock
}

// UpdateAutoLock is swarm update's autolock part: autolock set on or off
// (nil: unchanged) and, with rotate, a new unlock key. Turning it on makes
// a key; turning it off drops it. This manager's files follow at once, the
// other managers' within a second (their sync loop).
func (c *Cluster) UpdateAutoLock(ctx context.Context, autolock *bool, rotate bool) error {
	var rec lockRecord
	err := c.write(ctx, func(ctx context.Context) error {
		return c.store.Update(ctx, keyLock, func(cur []byte, exists bool) ([]byte, error) {
			rec = lockRecord{}
			if exists {
				if err := json.Unmarshal(cur, &rec); err != nil {
					return nil, err
				}
			}
			next, err := nextLock(rec, autolock, rotate)
			if err != nil {
				return nil, err
			}
			rec = next
			return json.Marshal(rec)
		})
	})
	if err != nil {
		return err
	}
	return c.applyLock(rec)
}

// updateLock is swarm update's autolock part: the spec's
// EncryptionConfig.AutoLockManagers, as dockerd (the docker CLI sends the
// spec it read, changed), and rotateManagerUnlockKey. No spec (shoal
// join-token --rotate sends none) and no rotation change nothing.
func (c *Cluster) updateLock(ctx context.Context, u backend.SwarmUpdate) error {
	if u.Spec == nil && !u.RotateManagerUnlockKey {
		return nil
	}
	var autolock *bool
	if u.Spec != nil {
		autolock = &u.Spec.EncryptionConfig.AutoLockManagers
	}
	return c.UpdateAutoLock(ctx, autolock, u.RotateManagerUnlockKey)
}

// nextLock is rec after a swarm update: a key exists exactly while
// autolock is on, and rotate replaces it.
func nextLock(rec lockRecord, autolock *bool, rotate bool) (lockRecord, error) {
	if autolock != nil {
		rec.AutoLock = *autolock
	}
	if !rec.AutoLock {
		rec.UnlockKey = ""
		return rec, nil
	}
	if rec.UnlockKey != "" && !rotate {
		return rec, nil
	}
	key, err := seal.NewUnlockKey()
	if err != nil {
		return rec, err
	}
	rec.UnlockKey = key
	return rec, nil
}

// applyLock rewraps this manager's files when the cluster's unlock key
// differs from the one they are wrapped with.
func (c *Cluster) applyLock(rec lockRecord) error {
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	if rec.UnlockKey == c.unlockKey {
		return nil
	}
	old, oldKey := c.kek, c.unlockKey
	if err := c.setUnlockKey(rec.UnlockKey); err != nil {
		return err
	}
	if err := c.rewrapFiles(old, c.kek); err != nil {
		c.kek, c.unlockKey = old, oldKey
		return err
	}
	if old != nil {
		seal.Forget(*old) // the files are wrapped with the new key
	}
	c.log.Info("manager key files rewrapped", "autolock", rec.AutoLock)
	return nil
}

// syncLock applies the cluster's autolock setting (sync loop).
func (c *Cluster) syncLock(ctx context.Context) {
	rec, err := c.lockRecord(ctx)
	if err == nil {
		err = c.applyLock(rec)
	}
	if err != nil {
		c.log.Warn("cluster: apply autolock", "err", err)
	}
}
