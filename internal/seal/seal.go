// Package seal encrypts shoal's secrets at rest: the values managers write
// into the replicated store, with a data-encryption key (DEK) they share,
// and, under autolock, the managers' own key files, with a key-encryption
// key (KEK) derived from the unlock key the operator keeps.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
)

// Errors returned by this package; test with errors.Is.
var (
	// ErrOpen means sealed data did not open: a wrong key, data that was
	// changed, or data sealed for another place (additional data).
	ErrOpen = errors.New("seal: cannot decrypt: wrong key or tampered data")
	// ErrLocked means data is wrapped with the unlock key and none was given.
	ErrLocked = errors.New("seal: data is wrapped with the unlock key")
	// ErrFormat means the data is not what it should be (a PEM block, a key).
	ErrFormat = errors.New("seal: malformed data")
	// ErrUnlockKey means a string is not an unlock key (SWMKEY-1-...).
	ErrUnlockKey = errors.New("seal: invalid unlock key")
)

// KeySize is the size of every key: AES-256.
const KeySize = 32

// Key is an AES-256-GCM key: a DEK, or a KEK derived from an unlock key.
type Key [KeySize]byte

// NewKey returns a random key.
func NewKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("seal: random key: %w", err)
	}
	return k, nil
}

// aeads holds each key's AEAD once made: every store value read or
// written is sealed with the DEK, and making the cipher (AES key schedule,
// GCM tables: ~3 KB) for each one was most of what reading the node
// records allocated. Go's AES-GCM keeps no state between calls, so one
// serves every goroutine. Few keys are ever used (the DEK, and KEKs when
// unlocking); past maxAEADs the cache starts again.
var aeads struct {
	sync.Mutex
	m map[Key]cipher.AEAD
}

const maxAEADs = 16

func (k Key) aead() cipher.AEAD {
	aeads.Lock()
	defer aeads.Unlock()
	if g, ok := aeads.m[k]; ok {
		return g
	}
	if aeads.m == nil || len(aeads.m) >= maxAEADs {
		aeads.m = map[Key]cipher.AEAD{}
	}
	g := k.newAEAD()
	aeads.m[k] = g
	return g
}

// Forget drops keys' AEADs from the cache: a key the process is done with
// (a demoted or stopped manager's DEK, an unlock key's KEK once rotated or
// refused) is then no longer held where it stays reachable for the
// process's life. Goroutines using one keep it until they are done.
func Forget(keys ...Key) {
	aeads.Lock()
	defer aeads.Unlock()
	for _, k := range keys {
		delete(aeads.m, k)
	}
}

// Held says whether the cache holds k's AEAD: k was used and not forgotten.
func Held(k Key) bool {
	aeads.Lock()
	defer aeads.Unlock()
	_, ok := aeads.m[k]
	return ok
}

func (k Key) newAEAD() cipher.AEAD {
	b, err := aes.NewCipher(k[:])
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

// Seal encrypts plain for the place ad names (a store key, a file's
// purpose): the result opens only with the same key and the same ad, so a
// value cannot be moved to another place unnoticed. Each call draws a fresh
// random nonce, which precedes the ciphertext.
func (k Key) Seal(plain, ad []byte) []byte {
	g := k.aead()
	nonce := make([]byte, g.NonceSize(), g.NonceSize()+len(plain)+g.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return g.Seal(nonce, nonce, plain, ad)
}

// Open decrypts what Seal sealed for ad, or fails with ErrOpen.
func (k Key) Open(sealed, ad []byte) ([]byte, error) {
	g := k.aead()
	if len(sealed) < g.NonceSize()+g.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrOpen, len(sealed))
	}
	n := g.NonceSize()
	plain, err := g.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
