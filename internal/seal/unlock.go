package seal

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// unlockPrefix is swarm mode's: the docker CLI shows and reads keys so.
const unlockPrefix = "SWMKEY-1-"

// kekInfo binds derived keys to this use, so an unlock key's bytes never
// serve as a key directly.
const kekInfo = "shoal key-encryption key v1"

// NewUnlockKey returns a fresh unlock key in swarm mode's human-readable
// form (SWMKEY-1-<base64 of 32 random bytes>).
func NewUnlockKey() (string, error) {
	var b [KeySize]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("seal: random unlock key: %w", err)
	}
	return unlockPrefix + base64.RawStdEncoding.EncodeToString(b[:]), nil
}

// ParseUnlockKey checks an unlock key's form and derives the KEK from it.
// Surrounding blanks (a pasted line) are ignored.
func ParseUnlockKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, unlockPrefix)
	if !ok {
		return Key{}, fmt.Errorf("%w: it does not start with %s", ErrUnlockKey, unlockPrefix)
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(b) != KeySize {
		return Key{}, fmt.Errorf("%w: not %d bytes of base64", ErrUnlockKey, KeySize)
	}
	raw, err := hkdf.Key(sha256.New, b, nil, kekInfo, KeySize)
	if err != nil {
		return Key{}, fmt.Errorf("seal: derive key: %w", err)
	}
	return Key(raw), nil
}

// UnlockKeyForm says whether s has an unlock key's form (the prefix and
// base64), whatever its length: dockerd refuses other strings as
// malformed and these, when they do not open the keys, as the wrong key.
func UnlockKeyForm(s string) bool {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), unlockPrefix)
	if !ok {
		return false
	}
	_, err := base64.RawStdEncoding.DecodeString(rest)
	return err == nil
}
