package cluster

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// memKey holds this manager's node key in clear for the store, whose TLS
// reads the key from a file path at each handshake, in an anonymous memory
// file (memfd) reached as /proc/self/fd/N: under autolock the key on disk
// is wrapped, and the clear copy never reaches a disk.
type memKey struct{ f *os.File }

func newMemKey() (*memKey, error) {
	fd, err := unix.MemfdCreate("shoal-node-key", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("cluster: memfd for the node key: %w", err)
	}
	return &memKey{f: os.NewFile(uintptr(fd), "shoal-node-key")}, nil
}

// path is where the store reads the key.
func (m *memKey) path() string { return fmt.Sprintf("/proc/self/fd/%d", m.f.Fd()) }

// set replaces the key; a handshake reading it meanwhile fails once and is retried.
func (m *memKey) set(keyPEM []byte) error {
	if _, err := m.f.WriteAt(keyPEM, 0); err != nil {
		return err
	}
	return m.f.Truncate(int64(len(keyPEM)))
}

func (m *memKey) close() error { return m.f.Close() }
