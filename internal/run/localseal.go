package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/shoal-dev/shoal/internal/seal"
	"github.com/shoal-dev/shoal/internal/store"
)

// manage's local store encrypts every value at rest, as the built-in
// cluster's does: its key (a DEK) is a file readable by shoal's user only
// in the data directory, beside etcd's data but apart from it, so that
// etcd's files (WAL, snapshots, database, and copies of them) hold no
// secret's data, nor any value, in clear.

// localKeyFile holds the local store's key.
const localKeyFile = "store-key.pem"

// localCipher reads the local store's key, made the first time.
func localCipher(dir string) (store.Cipher, error) {
	path := filepath.Join(dir, localKeyFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return newLocalKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("store key: %w", err)
	}
	dek, err := seal.DecodeDEK(data, nil)
	if err != nil {
		return nil, fmt.Errorf("store key %s: %w", path, err)
	}
	return seal.Values{DEK: dek}, nil
}

// newLocalKey makes a key and writes it, created 0600 from the start.
func newLocalKey(path string) (store.Cipher, error) {
	dek, err := seal.NewKey()
	if err != nil {
		return nil, err
	}
	data, err := seal.EncodeDEK(dek, nil)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("store key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("store key: %w", err)
	}
	return seal.Values{DEK: dek}, f.Close()
}

// encryptOld rewrites, encrypted, the values a store made before it had a
// key still holds in clear.
func encryptOld(ctx context.Context, st *store.Store, log *slog.Logger) {
	n, err := st.EncryptPlain(ctx)
	if err != nil {
		log.Warn("local store: encrypting values written in clear", "error", err)
	} else if n > 0 {
		log.Info("local store: encrypted values written in clear before", "values", n)
	}
}
