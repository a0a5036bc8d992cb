package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"os"

	"github.com/shoal-dev/shoal/internal/seal"
)

// initSecrets makes a new cluster's DEK (and unlock key with autolock)
// and writes the DEK file, before any key file is written.
func (c *Cluster) initSecrets() (lockRecord, error) {
	rec, err := c.newSecrets()
	if err != nil {
		return rec, err
	}
	if err := c.openSecrets(); err != nil {
		return rec, err
	}
	return rec, c.saveDEK()
}

// seedLock records a new cluster's autolock setting.
func (c *Cluster) seedLock(ctx context.Context, rec lockRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return c.store.Put(ctx, keyLock, b)
}

// loadSecrets reads a restarting manager's DEK: ErrLocked when autolock
// wrapped it and no unlock key was given.
func (c *Cluster) loadSecrets() error {
	if err := c.openSecrets(); err != nil {
		return err
	}
	err := c.loadDEK()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, seal.ErrLocked):
		return ErrLocked
	case errors.Is(err, seal.ErrOpen):
		return ErrWrongUnlockKey
	case errors.Is(err, os.ErrNotExist):
		c.noDEK = true // a cluster made before encryption at rest: see legacyDEK
		return nil
	}
	return err
}

// legacyDEK gives the store of a cluster made before encryption at rest a
// DEK, once this manager's member has opened it. The sole member makes one
// (its values are then rewritten sealed, see syncSecrets); with several,
// none can make one alone without the others reading what they cannot
// decrypt, so the store stays in clear: demoting the other managers,
// restarting this one and promoting them again encrypts it.
func (c *Cluster) legacyDEK(ctx context.Context) error {
	if !c.noDEK {
		return nil
	}
	members, err := c.store.Members(ctx)
	if err != nil {
		return err
	}
	if len(members) != 1 {
		c.log.Warn("cluster: this cluster's store predates encryption at rest and has several managers: its values stay in clear", "members", len(members))
		return nil
	}
	dek, err := seal.NewKey()
	if err != nil {
		return err
	}
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	c.dek, c.hasDEK, c.noDEK = dek, true, false
	if err := c.saveDEK(); err != nil {
		return err
	}
	c.store.SetCipher(c.storeCipher())
	c.log.Info("cluster: this cluster's store predates encryption at rest: made its key; its values are rewritten encrypted")
	return nil
}

// joinSecrets adopts a joining manager's secrets and writes its DEK file.
func (c *Cluster) joinSecrets(s storeSecrets) error {
	if err := c.takeSecrets(s); err != nil {
		return err
	}
	if err := c.openSecrets(); err != nil {
		return err
	}
	if !c.hasDEK {
		return nil
	}
	return c.saveDEK()
}

// roleSecrets prepares the keys of a node changing role: a new manager
// takes the store's secrets (its files are wrapped from the start under
// autolock), a new worker drops them (workers are never locked).
func (c *Cluster) roleSecrets(want string, s storeSecrets) error {
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	if want != RoleManager {
		c.kek, c.unlockKey, c.hasDEK = nil, "", false
		return nil
	}
	if err := c.takeSecrets(s); err != nil {
		return err
	}
	if !c.hasDEK {
		return nil
	}
	return c.saveDEK()
}

// syncSecrets follows the cluster's autolock setting and, on the leader,
// rewrites in sealed form what was written in clear before encryption.
func (c *Cluster) syncSecrets(ctx context.Context) {
	c.syncLock(ctx)
	c.keyMu.Lock()
	hasDEK := c.hasDEK
	c.keyMu.Unlock()
	if c.sealedAll || !hasDEK || !c.IsLeader() {
		return
	}
	n, err := c.store.EncryptPlain(ctx)
	if err != nil {
		c.log.Warn("cluster: encrypt the store's values written in clear", "err", err)
		return
	}
	if n > 0 {
		c.log.Info("cluster: store values written in clear rewritten encrypted", "count", n)
	}
	c.sealedAll = true
}
