package ca

import (
	"fmt"
	"os"
	"path/filepath"
)

// File names inside a node's certificate directory (swarm mode's names).
const (
	RootCertFile = "swarm-root-ca.crt"
	RootKeyFile  = "swarm-root-ca.key"
	NodeCertFile = "swarm-node.crt"
	NodeKeyFile  = "swarm-node.key"
)

// RootChainFile holds what a manager sends after each certificate it
// issues (the root cross-signed by the previous one); shoal's own.
const RootChainFile = "swarm-root-ca-chain.crt"

// Key files are private to the daemon's user; certificates are public.
const (
	keyPerm  os.FileMode = 0o600
	certPerm os.FileMode = 0o644
	dirPerm  os.FileMode = 0o700
)

// SaveRootCA writes the trusted roots (the cluster's first), and the
// signing key when the root holds one, into dir.
func SaveRootCA(dir string, r *RootCA) error {
	st := r.state()
	if err := writeFile(filepath.Join(dir, RootCertFile), st.trustPEM, certPerm); err != nil {
		return err
	}
	if st.key == nil {
		return nil
	}
	if err := writeFile(filepath.Join(dir, RootChainFile), st.chainPEM, certPerm); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, RootKeyFile), st.keyPEM, keyPerm)
}

// LoadRootCAFrom reads a root saved by SaveRootCA; a missing key file gives
// a verify-only root.
func LoadRootCAFrom(dir string) (*RootCA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, RootCertFile))
	if err != nil {
		return nil, fmt.Errorf("ca: read root certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, RootKeyFile))
	if os.IsNotExist(err) {
		return LoadRootCA(certPEM, nil)
	} else if err != nil {
		return nil, fmt.Errorf("ca: read root key: %w", err)
	}
	chainPEM, err := os.ReadFile(filepath.Join(dir, RootChainFile))
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("ca: read root chain: %w", err)
	}
	return loadRootBundle(certPEM, keyPEM, chainPEM)
}

// SaveNodeCert writes a node's certificate and key into dir.
func SaveNodeCert(dir string, n NodeCert) error {
	if err := writeFile(filepath.Join(dir, NodeKeyFile), n.KeyPEM, keyPerm); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, NodeCertFile), n.CertPEM, certPerm)
}

// LoadNodeCertFrom reads a node certificate saved by SaveNodeCert.
func LoadNodeCertFrom(dir string) (NodeCert, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, NodeCertFile))
	if err != nil {
		return NodeCert{}, fmt.Errorf("ca: read node certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, NodeKeyFile))
	if err != nil {
		return NodeCert{}, fmt.Errorf("ca: read node key: %w", err)
	}
	return NodeCert{CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// writeFile replaces path atomically, so a crash never leaves half a key,
// and creates the file with perm from the start, so a key is never readable by others.
func writeFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return fmt.Errorf("ca: create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("ca: chmod %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("ca: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("ca: close %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("ca: rename %s: %w", path, err)
	}
	return nil
}
