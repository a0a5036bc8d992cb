package store

import (
	"crypto/rand"
	"math/big"
)

// idLen is the length of swarm mode's object IDs: 128 random bits in base
// 36 take at most 25 digits.
const idLen = 25

// NewID returns a new object ID (service, task) shaped as swarm mode's:
// 25 lowercase base-36 characters from 128 random bits.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("store: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	s := new(big.Int).SetBytes(b[:]).Text(36)
	for len(s) < idLen {
		s = "0" + s
	}
	return s
}
