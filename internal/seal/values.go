package seal

import (
	"bytes"
	"fmt"
)

// valuePrefix starts every sealed store value. Values written before
// encryption existed are JSON, which never starts with a NUL, so both
// kinds can be told apart and old clusters stay readable.
var valuePrefix = []byte("\x00shoal-v1\x00")

// Values encrypts store values with a DEK, each bound to its store key.
// It satisfies the store's Cipher interface.
type Values struct{ DEK Key }

// Encrypt seals plain as the value of key.
func (v Values) Encrypt(key string, plain []byte) ([]byte, error) {
	return append(bytes.Clone(valuePrefix), v.DEK.Seal(plain, valueAD(key))...), nil
}

// Decrypt opens the value of key; a value without the prefix was written
// before encryption and is returned as it is.
func (v Values) Decrypt(key string, stored []byte) ([]byte, error) {
	sealed, ok := bytes.CutPrefix(stored, valuePrefix)
	if !ok {
		return stored, nil
	}
	plain, err := v.DEK.Open(sealed, valueAD(key))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return plain, nil
}

// IsSealedValue says whether a stored value was written by Encrypt.
func IsSealedValue(stored []byte) bool { return bytes.HasPrefix(stored, valuePrefix) }

func valueAD(key string) []byte { return []byte("shoal store value\x00" + key) }

// Sealed is IsSealedValue, for the store's Cipher interface.
func (Values) Sealed(stored []byte) bool { return IsSealedValue(stored) }
