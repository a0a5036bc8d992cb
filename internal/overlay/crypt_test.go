package overlay

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func testSealer(t *testing.T, key []byte, vni uint32, id string, prefix uint32) *sealer {
	t.Helper()
	s, err := newSealer(key, vni, id, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpen(t *testing.T) {
	key := NewKey()
	began := time.Now()
	tx := testSealer(t, key, 4097, "net1", 0xa1b2c3d4)
	rx := testSealer(t, key, 4097, "net1", 7)
	frame := []byte("\xff\xff\xff\xff\xff\xff\x02\x42\x0a\x00\x01\x02\x08\x06 an ARP request, say")
	pkt := tx.seal(nil, frame)
	if len(pkt) != headerLen+len(frame)+tagLen {
		t.Fatalf("datagram of %d bytes for a frame of %d", len(pkt), len(frame))
	}
	if bytes.Contains(pkt, []byte("ARP request")) {
		t.Fatal("the frame is in clear in the datagram")
	}
	if vni, err := datagramVNI(pkt); err != nil || vni != 4097 {
		t.Errorf("datagramVNI = %d, %v", vni, err)
	}
	got, prefix, ctr, err := rx.open(nil, pkt)
	if err != nil || !bytes.Equal(got, frame) || prefix != 0xa1b2c3d4 || ctr < uint64(began.UnixNano()) {
		t.Fatalf("open = %q, %x, %d, %v (the counter starts at the clock)", got, prefix, ctr, err)
	}
	if _, _, next, _ := rx.open(nil, tx.seal(nil, frame)); next != ctr+1 {
		t.Errorf("second datagram's counter %d, want %d (a nonce is never reused)", next, ctr+1)
	}
	if again := testSealer(t, key, 4097, "net1", 0xa1b2c3d4); again.ctr.Load() <= ctr+1 {
		t.Errorf("a later run with the same prefix starts its counter at %d, at or before the earlier run's %d", again.ctr.Load(), ctr+1)
	}
}

func TestOpenRefuses(t *testing.T) {
	key := NewKey()
	tx := testSealer(t, key, 4097, "net1", 1)
	pkt := tx.seal(nil, []byte("0123456789abcdef a frame"))
	tamper := func(i int) []byte {
		b := bytes.Clone(pkt)
		b[i] ^= 0x01
		return b
	}
	for name, c := range map[string]struct {
		rx   *sealer
		pkt  []byte
		want error
	}{
		"tampered payload": {testSealer(t, key, 4097, "net1", 2), tamper(headerLen + 3), ErrForged},
		"tampered tag":     {testSealer(t, key, 4097, "net1", 2), tamper(len(pkt) - 1), ErrForged},
		"tampered counter": {testSealer(t, key, 4097, "net1", 2), tamper(15), ErrForged},
		"tampered VNI":     {testSealer(t, key, 4096, "net1", 2), tamper(3), ErrForged}, // 4097^1: the receiver of 4096 takes it up, GCM refuses it
		"wrong key":        {testSealer(t, NewKey(), 4097, "net1", 2), pkt, ErrForged},
		"other network ID": {testSealer(t, key, 4097, "net2", 2), pkt, ErrForged},
		"other VNI":        {testSealer(t, key, 4098, "net1", 2), pkt, ErrForged},
		"truncated":        {testSealer(t, key, 4097, "net1", 2), pkt[:headerLen+tagLen-1], ErrNotSealed},
		"other version":    {testSealer(t, key, 4097, "net1", 2), tamper(0), ErrNotSealed},
	} {
		if got, _, _, err := c.rx.open(nil, c.pkt); !errors.Is(err, c.want) || got != nil {
			t.Errorf("%s: open = %q, %v, want %v", name, got, err, c.want)
		}
	}
	if _, err := newSealer(make([]byte, 16), 1, "x", 1); !errors.Is(err, ErrBadKey) {
		t.Errorf("a 16-byte key: %v", err)
	}
}

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	for _, c := range []struct {
		n    uint64
		want bool
	}{
		{0, false}, {1, true}, {1, false}, {3, true}, {2, true}, {2, false}, {3, false},
		{100, true}, {37, true}, {36, false}, // 100-64: out of the window
		{99, true}, {99, false}, {300, true}, {100, false}, {299, true},
	} {
		if got := w.accept(c.n); got != c.want {
			t.Errorf("accept(%d) = %v, want %v", c.n, got, c.want)
		}
	}
}
