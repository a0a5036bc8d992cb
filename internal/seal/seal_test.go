package seal

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func mustKey(t *testing.T) Key {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := mustKey(t)
	plain := []byte("the secret")
	a, b := k.Seal(plain, []byte("ad")), k.Seal(plain, []byte("ad"))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one value are equal: the nonce is not random")
	}
	if bytes.Contains(a, plain) {
		t.Fatal("sealed data holds the plaintext")
	}
	got, err := k.Open(a, []byte("ad"))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	k, other := mustKey(t), mustKey(t)
	sealed := k.Seal([]byte("the secret"), []byte("key-a"))
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	cases := map[string]struct {
		k    Key
		data []byte
		ad   string
	}{
		"wrong key":   {other, sealed, "key-a"},
		"tampered":    {k, tampered, "key-a"},
		"ad mismatch": {k, sealed, "key-b"},
		"truncated":   {k, sealed[:10], "key-a"},
	}
	for name, c := range cases {
		if _, err := c.k.Open(c.data, []byte(c.ad)); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: err = %v, want ErrOpen", name, err)
		}
	}
}

func TestUnlockKey(t *testing.T) {
	s, err := NewUnlockKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "SWMKEY-1-") {
		t.Fatalf("key %q lacks swarm mode's prefix", s)
	}
	k1, err := ParseUnlockKey(s)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParseUnlockKey(" " + s + "\n")
	if err != nil || k1 != k2 {
		t.Fatalf("a pasted key with blanks derives another KEK (%v)", err)
	}
	for _, bad := range []string{"", "SWMKEY-1-", "SWMKEY-1-!!!", "SWMKEY-2-" + strings.TrimPrefix(s, "SWMKEY-1-"), s[:len(s)-4]} {
		if _, err := ParseUnlockKey(bad); !errors.Is(err, ErrUnlockKey) {
			t.Errorf("ParseUnlockKey(%q) = %v, want ErrUnlockKey", bad, err)
		}
	}
}

func keyPEM(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func TestWrapUnwrapPEM(t *testing.T) {
	kek, other := mustKey(t), mustKey(t)
	plain := keyPEM(t)
	body, _ := pem.Decode(plain)
	wrapped, err := WrapPEM(kek, plain, "node key")
	if err != nil {
		t.Fatal(err)
	}
	if !IsWrapped(wrapped) || IsWrapped(plain) {
		t.Fatal("IsWrapped does not tell wrapped from plain")
	}
	b, _ := pem.Decode(wrapped)
	if b.Type != "EC PRIVATE KEY" || b.Headers["Shoal-Kek"] != "v1" || bytes.Contains(wrapped, plain[30:60]) || bytes.Contains(b.Bytes, body.Bytes) {
		t.Fatalf("wrapped block: type %q headers %v, or it holds the key in clear", b.Type, b.Headers)
	}
	got, err := UnwrapPEM(&kek, wrapped, "node key")
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("UnwrapPEM = %v", err)
	}
	if _, err := UnwrapPEM(nil, wrapped, "node key"); !errors.Is(err, ErrLocked) {
		t.Errorf("no KEK: %v, want ErrLocked", err)
	}
	if _, err := UnwrapPEM(&other, wrapped, "node key"); !errors.Is(err, ErrOpen) {
		t.Errorf("wrong KEK: %v, want ErrOpen", err)
	}
	if _, err := UnwrapPEM(&kek, wrapped, "CA key"); !errors.Is(err, ErrOpen) {
		t.Errorf("another file's purpose: %v, want ErrOpen", err)
	}
	if got, err := UnwrapPEM(nil, plain, "node key"); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("a plain file is not read as it is: %v", err)
	}
	if _, err := WrapPEM(kek, wrapped, "node key"); !errors.Is(err, ErrFormat) {
		t.Errorf("wrapping twice: %v, want ErrFormat", err)
	}
}

func TestDEKFile(t *testing.T) {
	dek, kek := mustKey(t), mustKey(t)
	plainFile, err := EncodeDEK(dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeDEK(plainFile, nil); err != nil || got != dek {
		t.Fatalf("plain DEK file: %v", err)
	}
	wrapped, err := EncodeDEK(dek, &kek)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wrapped, dek[:]) || !IsWrapped(wrapped) {
		t.Fatal("wrapped DEK file holds the key in clear or is not marked")
	}
	if _, err := DecodeDEK(wrapped, nil); !errors.Is(err, ErrLocked) {
		t.Errorf("no KEK: %v, want ErrLocked", err)
	}
	if got, err := DecodeDEK(wrapped, &kek); err != nil || got != dek {
		t.Errorf("wrapped DEK file: %v", err)
	}
	if _, err := DecodeDEK(keyPEM(t), nil); !errors.Is(err, ErrFormat) {
		t.Errorf("a key file read as DEK: %v, want ErrFormat", err)
	}
}

func TestValues(t *testing.T) {
	v := Values{DEK: mustKey(t)}
	plain := []byte(`{"key":"-----BEGIN EC PRIVATE KEY-----"}`)
	stored, err := v.Encrypt("/shoal/ca/root", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte("PRIVATE")) || !IsSealedValue(stored) {
		t.Fatal("stored value holds the plaintext or is not marked")
	}
	if got, err := v.Decrypt("/shoal/ca/root", stored); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Decrypt = %q, %v", got, err)
	}
	if _, err := v.Decrypt("/shoal/tokens/current", stored); !errors.Is(err, ErrOpen) {
		t.Errorf("a value moved to another key: %v, want ErrOpen", err)
	}
	if got, err := v.Decrypt("/shoal/ca/root", plain); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("a value written before encryption is not read as is: %v", err)
	}
}

// A key's AEAD is made once and shared: by goroutines at once too (run
// with -race), each value still opening only as sealed; past maxAEADs
// keys the cache starts again rather than grow.
func TestAEADShared(t *testing.T) {
	k1, _ := NewKey()
	k2, _ := NewKey()
	if k1.aead() != k1.aead() || k1.aead() == k2.aead() {
		t.Fatal("a key's AEAD is not one, or two keys share one")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				plain := fmt.Appendf(nil, "value %d of %d", i, g)
				ad := fmt.Appendf(nil, "key/%d", g)
				got, err := k1.Open(k1.Seal(plain, ad), ad)
				if err != nil || !bytes.Equal(got, plain) {
					errs <- fmt.Errorf("goroutine %d, value %d: %q, %v", g, i, got, err)
					return
				}
				if _, err := k2.Open(k1.Seal(plain, ad), ad); err == nil {
					errs <- errors.New("a value opened with another key")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for range 3 * maxAEADs {
		k, _ := NewKey()
		k.aead()
	}
	aeads.Lock()
	n := len(aeads.m)
	aeads.Unlock()
	if n > maxAEADs {
		t.Errorf("%d AEADs cached, at most %d wanted", n, maxAEADs)
	}
}

// Forget drops a key's AEAD, and only its; the key still seals and opens.
func TestForget(t *testing.T) {
	k1, _ := NewKey()
	k2, _ := NewKey()
	sealed := k1.Seal([]byte("v"), nil)
	k2.aead()
	if !Held(k1) || !Held(k2) {
		t.Fatal("used keys are not held")
	}
	Forget(k1)
	if Held(k1) || !Held(k2) {
		t.Fatalf("after Forget(k1): k1 held %v, k2 held %v", Held(k1), Held(k2))
	}
	if got, err := k1.Open(sealed, nil); err != nil || string(got) != "v" {
		t.Fatalf("a forgotten key opens %q, %v", got, err)
	}
}

// BenchmarkOpen is one store value (1 KiB) opened.
func BenchmarkOpen(b *testing.B) {
	k, _ := NewKey()
	ad := []byte("shoal store value\x00/shoal/nodes/x")
	sealed := k.Seal(bytes.Repeat([]byte("v"), 1024), ad)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(sealed, ad); err != nil {
			b.Fatal(err)
		}
	}
}
