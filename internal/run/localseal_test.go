package run

import (
	"bytes"
	"context"
	"encoding/base64"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/seal"
	"github.com/shoal-dev/shoal/internal/store"
)

// A secret written to manage's local store is nowhere in clear in the
// data directory's files (etcd's WAL, snapshots and database), reads back
// after a restart with the key file made the first time (0600), and a
// value written in clear before the store had a key is encrypted at open.
func TestLocalStoreEncryptsAtRest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manage")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	secret := []byte("s3cr3t-marker-9f2c4e7a1b")
	st := openLocalT(t, dir)
	if _, err := store.NewSecrets(st.Store).Create(ctx, "sec1", swarm.SecretSpec{Annotations: swarm.Annotations{Name: "pw"}, Data: secret}, time.Now()); err != nil {
		t.Fatalf("create: %v", err)
	}
	st.Close()
	if fi, err := os.Stat(filepath.Join(dir, localKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	// Records are JSON: a secret's data is in base64 there.
	for _, needle := range [][]byte{secret, []byte(base64.StdEncoding.EncodeToString(secret))} {
		if where := grepDir(t, dir, needle); where != "" {
			t.Fatalf("the secret's data is in clear in %s", where)
		}
	}
	st = openLocalT(t, dir)
	defer st.Close()
	got, err := store.NewSecrets(st.Store).Get(ctx, "sec1")
	if err != nil || !bytes.Equal(got.Spec.Data, secret) {
		t.Fatalf("after restart: %+v, %v", got, err)
	}
}

// grepDir is the first file under dir holding needle, "" if none.
func grepDir(t *testing.T, dir string, needle []byte) string {
	t.Helper()
	found := ""
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			found = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// A value written by a store made before it had a key is encrypted when
// the store opens with one (older revisions keep it until etcd compacts).
func TestLocalStoreEncryptsOldValues(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manage")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	files, err := localTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	old, err := startLocal(ctx, dir, files, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.NewSecrets(old).Create(ctx, "sec1", swarm.SecretSpec{Annotations: swarm.Annotations{Name: "pw"}, Data: []byte("x")}, time.Now()); err != nil {
		t.Fatal(err)
	}
	old.Close()
	st := openLocalT(t, dir)
	defer st.Close()
	resp, err := st.Client().Get(ctx, store.PrefixSecrets+"sec1")
	if err != nil || len(resp.Kvs) != 1 || !seal.IsSealedValue(resp.Kvs[0].Value) {
		t.Fatalf("stored value: %v, %v; want it sealed", resp, err)
	}
}
