package cluster

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/seal"
)

// A manager's secrets on disk: the root CA key, its node key and the
// store's data-encryption key (DEK). Without autolock they are plain files
// readable by the daemon's user only, as swarm mode's are; with autolock
// each is a PEM block wrapped with the key-encryption key (KEK) derived
// from the unlock key, and the manager cannot start until it is given that
// key. Every write of these files goes through this file's functions.

// dekFile holds the DEK the managers share (see storeConfig).
const dekFile = "store-dek.pem"

// Purposes bind a wrapped file to its role, so one cannot stand in for another.
const (
	purposeRootKey = "root CA key"
	purposeNodeKey = "node key"
)

func (c *Cluster) dekPath() string { return filepath.Join(c.certDir(), dekFile) }

// saveDEK writes the store's DEK, wrapped when autolock is on.
func (c *Cluster) saveDEK() error {
	data, err := seal.EncodeDEK(c.dek, c.kek)
	if err != nil {
		return err
	}
	return writeSecret(c.dekPath(), data)
}

// loadDEK reads the store's DEK: seal.ErrLocked when it is wrapped and no
// unlock key was given, os.ErrNotExist on a manager of a cluster made
// before encryption at rest.
func (c *Cluster) loadDEK() error {
	data, err := os.ReadFile(c.dekPath())
	if err != nil {
		return err
	}
	dek, err := seal.DecodeDEK(data, c.kek)
	if err != nil {
		return fmt.Errorf("cluster: %s: %w", dekFile, err)
	}
	c.dek, c.hasDEK = dek, true
	return nil
}

// saveRoot writes the root CA as ca.SaveRootCA lays it out (trusted
// roots, and with the signing key its chain), the key wrapped under
// autolock.
func (c *Cluster) saveRoot(r *ca.RootCA) error {
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	if c.kek == nil || !r.CanSign() {
		return ca.SaveRootCA(c.certDir(), r)
	}
	if err := writeFileMode(filepath.Join(c.certDir(), ca.RootCertFile), r.TrustPEM(), 0o644); err != nil {
		return err
	}
	if err := writeFileMode(filepath.Join(c.certDir(), ca.RootChainFile), r.ChainPEM(), 0o644); err != nil {
		return err
	}
	return c.saveKey(ca.RootKeyFile, r.KeyPEM(), purposeRootKey)
}

// saveNodeCert writes this node's certificate and key, and hands the key
// to the store's TLS (see memKey).
func (c *Cluster) saveNodeCert(nc ca.NodeCert) error {
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	if c.kek == nil {
		if err := ca.SaveNodeCert(c.certDir(), nc); err != nil {
			return err
		}
	} else {
		if err := c.saveKey(ca.NodeKeyFile, nc.KeyPEM, purposeNodeKey); err != nil {
			return err
		}
		if err := writeFileMode(filepath.Join(c.certDir(), ca.NodeCertFile), nc.CertPEM, 0o644); err != nil {
			return err
		}
	}
	return c.setMemKey(nc.KeyPEM)
}

// saveKey writes a key file wrapped with the KEK.
func (c *Cluster) saveKey(name string, keyPEM []byte, purpose string) error {
	wrapped, err := seal.WrapPEM(*c.kek, keyPEM, purpose)
	if err != nil {
		return err
	}
	return writeSecret(filepath.Join(c.certDir(), name), wrapped)
}

// loadRoot reads the root CA as ca.LoadRootCAFrom does (which it is,
// unless the key is wrapped), unwrapping its key.
func (c *Cluster) loadRoot() (*ca.RootCA, error) {
	raw, err := os.ReadFile(filepath.Join(c.certDir(), ca.RootKeyFile))
	if errors.Is(err, os.ErrNotExist) || (err == nil && !seal.IsWrapped(raw)) {
		return ca.LoadRootCAFrom(c.certDir())
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: read root key: %w", err)
	}
	key, err := c.readKey(ca.RootKeyFile, purposeRootKey)
	if err != nil {
		return nil, err
	}
	bundle, err := os.ReadFile(filepath.Join(c.certDir(), ca.RootCertFile))
	if err != nil {
		return nil, fmt.Errorf("cluster: read root certificate: %w", err)
	}
	chain, err := os.ReadFile(filepath.Join(c.certDir(), ca.RootChainFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cluster: read root chain: %w", err)
	}
	first, rest := splitPEM(bundle)
	return ca.LoadRoot(ca.RootMaterial{Cert: first, Trusted: rest, Key: key, Chain: chain})
}

// splitPEM is the first PEM block of data and the rest (the cluster's root
// and the further roots a rotation trusts, as the bundle file holds them).
func splitPEM(data []byte) (first, rest []byte) {
	b, tail := pem.Decode(data)
	if b == nil {
		return data, nil
	}
	return pem.EncodeToMemory(b), bytes.TrimLeft(tail, "\n")
}

// loadNodeCert reads this node's certificate, unwrapping its key when wrapped.
func (c *Cluster) loadNodeCert() (ca.NodeCert, error) {
	certPEM, err := os.ReadFile(filepath.Join(c.certDir(), ca.NodeCertFile))
	if err != nil {
		return ca.NodeCert{}, fmt.Errorf("cluster: read node certificate: %w", err)
	}
	keyPEM, err := c.readKey(ca.NodeKeyFile, purposeNodeKey)
	if err != nil {
		return ca.NodeCert{}, err
	}
	return ca.NodeCert{CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

func (c *Cluster) readKey(name, purpose string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(c.certDir(), name))
	if err != nil {
		return nil, err
	}
	plain, err := seal.UnwrapPEM(c.kek, data, purpose)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s: %w", name, err)
	}
	return plain, nil
}

// rewrapFiles rewrites this manager's secret files for a new KEK (nil:
// plain), each read with the old one. A missing file (a manager without the
// root key) is skipped.
func (c *Cluster) rewrapFiles(old, next *seal.Key) error {
	for _, f := range []struct{ name, purpose string }{
		{ca.RootKeyFile, purposeRootKey}, {ca.NodeKeyFile, purposeNodeKey}, {dekFile, seal.DEKPurpose},
	} {
		if err := rewrap(filepath.Join(c.certDir(), f.name), f.purpose, old, next); err != nil {
			return err
		}
	}
	return nil
}

func rewrap(path, purpose string, old, next *seal.Key) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	plain, err := seal.UnwrapPEM(old, data, purpose)
	if err != nil {
		return fmt.Errorf("cluster: rewrap %s: %w", filepath.Base(path), err)
	}
	out := plain
	if next != nil {
		if out, err = seal.WrapPEM(*next, plain, purpose); err != nil {
			return err
		}
	}
	return writeSecret(path, out)
}

// writeSecret replaces a secret file atomically, readable by its owner only.
func writeSecret(path string, data []byte) error { return writeFileMode(path, data, 0o600) }

// writeFileMode replaces path atomically, created with perm from the
// start, so a crash never leaves half a key nor a key readable by others.
func writeFileMode(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
