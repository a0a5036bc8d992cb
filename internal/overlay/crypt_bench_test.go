package overlay

import "testing"

// BenchmarkSealOpen is the tunnel's crypto cost for a full-size frame.
func BenchmarkSealOpen(b *testing.B) {
	key := NewKey()
	tx, _ := newSealer(key, 4097, "net1", 1)
	rx, _ := newSealer(key, 4097, "net1", 2)
	frame := make([]byte, CryptMTU+14)
	pkt := make([]byte, 0, len(frame)+headerLen+tagLen)
	out := make([]byte, 0, len(frame))
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		pkt = tx.seal(pkt[:0], frame)
		if _, _, _, err := rx.open(out[:0], pkt); err != nil {
			b.Fatal(err)
		}
	}
}
