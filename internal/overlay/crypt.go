package overlay

// Encrypted networks (network create -d overlay --opt encrypted). This
// kernel has neither IPsec ESP nor WireGuard, so the frames of such a
// network do not go through a kernel VXLAN device: the agent opens a TAP
// device on the network's bridge and carries each frame itself, sealed
// with AES-256-GCM under the network's key, in one UDP datagram to the
// peer nodes (see tunnel.go). This file is the datagram's format.
//
//	0      1               4                8                       16
//	| ver  | VNI (24 bits) | nonce prefix   | nonce counter (64 bits) | sealed frame + 16-byte tag
//
// The nonce is the sender's random per-process prefix and a counter
// started at the clock, so that it is never repeated under one key; the header and the network's
// ID are the additional data (a datagram sealed for one network never
// opens on another).

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Errors of the encrypted tunnel; test with errors.Is.
var (
	ErrNotSealed = errors.New("overlay: not an encrypted overlay datagram")
	ErrForged    = errors.New("overlay: datagram failed authentication")
	ErrReplayed  = errors.New("overlay: datagram replayed")
	ErrBadKey    = errors.New("overlay: an encrypted network's key is 32 bytes")
)

const (
	// CryptPort is the UDP port of every encrypted network of a node
	// (VXLAN's is Port): the header's VNI tells the networks apart.
	CryptPort = 4790
	// CryptMTU leaves room, inside a 1500-byte underlay, for IPv4 (20),
	// UDP (8), the header (16), the GCM tag (16) and the inner Ethernet
	// header (14): 1426, rounded down as WireGuard does.
	CryptMTU = 1420
	// KeyLen is an encrypted network's key: AES-256.
	KeyLen = 32

	tapPrefix    = "shy"
	cryptVersion = 1
	headerLen    = 16
	tagLen       = 16
)

// TapName is the TAP device of encrypted network id on every node.
func TapName(id string) string { return tapPrefix + short(id) }

// NewKey makes a new network key.
func NewKey() []byte {
	k := make([]byte, KeyLen)
	rand.Read(k) // never fails (crypto/rand)
	return k
}

// Encrypt makes n an encrypted network's: its frames go through a TAP
// device and the agent's sealed tunnel instead of a VXLAN device.
func (n *Network) Encrypt(key []byte) {
	n.Key, n.Tap, n.VXLAN, n.MTU = key, TapName(n.ID), "", CryptMTU
}

// Port is the device that joins the network's bridge to the other nodes:
// its VXLAN device, or an encrypted network's TAP device.
func (n Network) Port() string {
	if n.Tap != "" {
		return n.Tap
	}
	return n.VXLAN
}

// sealer seals and opens the datagrams of one network. One goroutine
// seals and one opens (each has its scratch buffer for the additional data).
type sealer struct {
	aead   cipher.AEAD
	vni    uint32
	id     string // the network's ID, bound as additional data
	prefix uint32 // this process's nonce prefix
	ctr    atomic.Uint64
	sealAD []byte
	openAD []byte
}

func newSealer(key []byte, vni uint32, id string, prefix uint32) (*sealer, error) {
	if len(key) != KeyLen {
		return nil, ErrBadKey
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	s := &sealer{aead: aead, vni: vni & 0xffffff, id: id, prefix: prefix,
		sealAD: make([]byte, 0, headerLen+len(id)), openAD: make([]byte, 0, headerLen+len(id))}
	// The counter starts at the clock (in ns): a later run of the agent,
	// even one that drew the same prefix, starts past every counter an
	// earlier one can have used (it would need a datagram a nanosecond).
	s.ctr.Store(uint64(max(time.Now().UnixNano(), 0)))
	return s, nil
}

// additional is the data authenticated with a frame, in buf: the header
// and the network's ID.
func (s *sealer) additional(buf, hdr []byte) []byte {
	return append(append(buf[:0], hdr[:headerLen]...), s.id...)
}

// seal appends to dst the datagram that carries frame.
func (s *sealer) seal(dst, frame []byte) []byte {
	var hdr [headerLen]byte
	binary.BigEndian.PutUint32(hdr[0:4], cryptVersion<<24|s.vni)
	binary.BigEndian.PutUint32(hdr[4:8], s.prefix)
	binary.BigEndian.PutUint64(hdr[8:16], s.ctr.Add(1))
	dst = append(dst, hdr[:]...)
	s.sealAD = s.additional(s.sealAD, hdr[:])
	return s.aead.Seal(dst, hdr[4:16], frame, s.sealAD)
}

// datagramVNI is the network a datagram is for.
func datagramVNI(pkt []byte) (uint32, error) {
	if len(pkt) < headerLen+tagLen || pkt[0] != cryptVersion {
		return 0, ErrNotSealed
	}
	return binary.BigEndian.Uint32(pkt[0:4]) & 0xffffff, nil
}

// open appends to dst the frame pkt carries, and says who sealed it (the
// nonce's prefix) and its counter, for the replay window.
func (s *sealer) open(dst, pkt []byte) (frame []byte, prefix uint32, ctr uint64, err error) {
	vni, err := datagramVNI(pkt)
	if err != nil {
		return nil, 0, 0, err
	}
	if vni != s.vni {
		return nil, 0, 0, ErrForged
	}
	s.openAD = s.additional(s.openAD, pkt)
	frame, err = s.aead.Open(dst, pkt[4:16], pkt[headerLen:], s.openAD)
	if err != nil {
		return nil, 0, 0, ErrForged
	}
	return frame, binary.BigEndian.Uint32(pkt[4:8]), binary.BigEndian.Uint64(pkt[8:16]), nil
}

// replayWindow remembers which of a sender's last 64 counters arrived
// (as IPsec's anti-replay window): a datagram seen before, or older than
// the window, is refused.
type replayWindow struct {
	top  uint64 // highest counter accepted
	seen uint64 // bit i: counter top-i arrived
}

// accept says whether counter n is new, and records it.
func (w *replayWindow) accept(n uint64) bool {
	switch {
	case n == 0:
		return false // counters start at 1
	case n > w.top:
		if d := n - w.top; d >= 64 {
			w.seen = 1
		} else {
			w.seen = w.seen<<d | 1
		}
		w.top = n
		return true
	case w.top-n >= 64:
		return false
	}
	bit := uint64(1) << (w.top - n)
	if w.seen&bit != 0 {
		return false
	}
	w.seen |= bit
	return true
}
