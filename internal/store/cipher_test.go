package store

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/seal"
)

func encryptedStore(t *testing.T) (*Store, Config) {
	t.Helper()
	dek, err := seal.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := newTestCA(t).config(t, "m1")
	cfg.Cipher = seal.Values{DEK: dek}
	return mustOpen(t, cfg), cfg
}

// TestEncryptedAtRest writes through every write path and checks that the
// values read back in clear while etcd (read with its own client, past the
// cipher, and its files on disk) holds none of them in clear.
func TestEncryptedAtRest(t *testing.T) {
	s, cfg := encryptedStore(t)
	ctx := ctxT(t, 30*time.Second)
	const secret = "topsecret-through-the-store"
	writes := map[string]func(key string) error{
		"put": func(k string) error { return s.Put(ctx, k, []byte(secret+"-put")) },
		"create": func(k string) error {
			_, err := s.Create(ctx, k, []byte(secret+"-create"))
			return err
		},
		"update": func(k string) error {
			return s.Update(ctx, k, func([]byte, bool) ([]byte, error) { return []byte(secret + "-update"), nil })
		},
	}
	watch := s.Watch(ctx, Root, 0)
	for name, w := range writes {
		key := Root + "test/" + name
		if err := w(key); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		kv, err := s.Get(ctx, key)
		if err != nil || string(kv.Value) != secret+"-"+name {
			t.Fatalf("%s: Get = %q, %v", name, kv.Value, err)
		}
		raw, err := s.Client().Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if v := raw.Kvs[0].Value; bytes.Contains(v, []byte(secret)) || !seal.IsSealedValue(v) {
			t.Fatalf("%s: etcd holds %q", name, v)
		}
		ev := <-watch
		if ev.Err != nil || string(ev.KV.Value) != secret+"-"+name {
			t.Fatalf("%s: watch event %+v", name, ev)
		}
	}
	kv, _ := s.Get(ctx, Root+"test/put")
	if _, err := s.Replace(ctx, kv.Key, kv.Revision, []byte(secret+"-replace")); err != nil {
		t.Fatal(err)
	}
	items, _, err := s.List(ctx, Root+"test/")
	if err != nil || len(items) != 3 || string(items[1].Value) != secret+"-replace" {
		t.Fatalf("List = %v, %v", items, err)
	}
	s.Close()
	if f := grepDir(t, cfg.Dir, secret); f != "" {
		t.Fatalf("%s holds a value in clear", f)
	}
}

// grepDir returns the first file under dir that contains s.
func grepDir(t *testing.T, dir, s string) string {
	t.Helper()
	var found string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(s)) {
			found = p
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestEncryptedLegacyAndSwap checks that values written before encryption
// are read and then rewritten sealed, and that a sealed value copied to
// another key does not decrypt there.
func TestEncryptedLegacyAndSwap(t *testing.T) {
	s := mustOpen(t, newTestCA(t).config(t, "m1"))
	ctx := ctxT(t, 30*time.Second)
	if err := s.Put(ctx, Root+"old", []byte(`{"plain":true}`)); err != nil {
		t.Fatal(err)
	}
	dek, err := seal.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	s.SetCipher(seal.Values{DEK: dek})
	if kv, err := s.Get(ctx, Root+"old"); err != nil || string(kv.Value) != `{"plain":true}` {
		t.Fatalf("legacy value: %q, %v", kv.Value, err)
	}
	n, err := s.EncryptPlain(ctx)
	if err != nil || n != 1 {
		t.Fatalf("EncryptPlain = %d, %v; want 1", n, err)
	}
	raw, _ := s.Client().Get(ctx, Root+"old")
	if !seal.IsSealedValue(raw.Kvs[0].Value) {
		t.Fatal("the legacy value is still in clear")
	}
	if kv, err := s.Get(ctx, Root+"old"); err != nil || string(kv.Value) != `{"plain":true}` {
		t.Fatalf("migrated value: %q, %v", kv.Value, err)
	}
	if _, err := s.Client().Put(ctx, Root+"moved", string(raw.Kvs[0].Value)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, Root+"moved"); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("a sealed value moved to another key: %v, want seal.ErrOpen", err)
	}
}
