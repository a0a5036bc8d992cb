package seal

import (
	"encoding/pem"
	"fmt"
)

// wrapHeader marks a PEM block whose bytes are sealed with a KEK (the
// block type stays, so the file still says what it holds), as swarm mode
// marks its wrapped keys with PEM headers.
const (
	wrapHeader  = "Shoal-Kek"
	wrapVersion = "v1"
)

// dekType is the PEM type of a file holding a store DEK.
const dekType = "SHOAL STORE KEY"

// WrapPEM seals the bytes of the PEM block in data with kek for purpose
// (e.g. the file's name); the result is a PEM block of the same type with
// a header saying it is wrapped.
func WrapPEM(kek Key, data []byte, purpose string) ([]byte, error) {
	b, err := decodeOne(data)
	if err != nil {
		return nil, err
	}
	if _, ok := b.Headers[wrapHeader]; ok {
		return nil, fmt.Errorf("%w: %s is wrapped already", ErrFormat, purpose)
	}
	out := &pem.Block{Type: b.Type, Headers: map[string]string{wrapHeader: wrapVersion}}
	out.Bytes = kek.Seal(b.Bytes, wrapAD(b.Type, purpose))
	return pem.EncodeToMemory(out), nil
}

// UnwrapPEM returns the plain PEM of data: data itself when it is not
// wrapped, else its block opened with kek (nil kek: ErrLocked).
func UnwrapPEM(kek *Key, data []byte, purpose string) ([]byte, error) {
	b, err := decodeOne(data)
	if err != nil {
		return nil, err
	}
	v, wrapped := b.Headers[wrapHeader]
	if !wrapped {
		return data, nil
	}
	if v != wrapVersion {
		return nil, fmt.Errorf("%w: %s: unknown wrapping %q", ErrFormat, purpose, v)
	}
	if kek == nil {
		return nil, fmt.Errorf("%w: %s", ErrLocked, purpose)
	}
	plain, err := kek.Open(b.Bytes, wrapAD(b.Type, purpose))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", purpose, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: plain}), nil
}

// IsWrapped says whether data is a PEM block wrapped by WrapPEM.
func IsWrapped(data []byte) bool {
	b, err := decodeOne(data)
	if err != nil {
		return false
	}
	_, ok := b.Headers[wrapHeader]
	return ok
}

func wrapAD(typ, purpose string) []byte {
	return []byte("shoal wrapped pem\x00" + typ + "\x00" + purpose)
}

func decodeOne(data []byte) (*pem.Block, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrFormat)
	}
	return b, nil
}

// DEKPurpose is the purpose (additional data) of a wrapped DEK file.
const DEKPurpose = "store data-encryption key"

// EncodeDEK is the file form of a DEK: a PEM block, wrapped with kek when
// kek is not nil (autolock), plain otherwise.
func EncodeDEK(dek Key, kek *Key) ([]byte, error) {
	data := pem.EncodeToMemory(&pem.Block{Type: dekType, Bytes: dek[:]})
	if kek == nil {
		return data, nil
	}
	return WrapPEM(*kek, data, DEKPurpose)
}

// DecodeDEK reads a DEK file: ErrLocked if it is wrapped and kek is nil,
// ErrOpen if kek is not the one it was wrapped with.
func DecodeDEK(data []byte, kek *Key) (Key, error) {
	plain, err := UnwrapPEM(kek, data, DEKPurpose)
	if err != nil {
		return Key{}, err
	}
	b, err := decodeOne(plain)
	if err != nil {
		return Key{}, err
	}
	if b.Type != dekType || len(b.Bytes) != KeySize {
		return Key{}, fmt.Errorf("%w: not a store key", ErrFormat)
	}
	return Key(b.Bytes), nil
}
