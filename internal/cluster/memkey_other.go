//go:build !linux

package cluster

// memKey needs Linux's memfd. Elsewhere there is none and the store reads
// the node key file on disk, so autolock, which wraps that file, cannot
// be used there (shoal's managers run on Linux).
type memKey struct{}

func newMemKey() (*memKey, error) { return nil, nil }

func (m *memKey) path() string { return "" }

func (m *memKey) set([]byte) error { return nil }

func (m *memKey) close() error { return nil }
