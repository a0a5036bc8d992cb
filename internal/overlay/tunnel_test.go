package overlay

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeTap is a TAP device: frames written by the test come out of Read,
// frames the tunnel writes go to out.
type fakeTap struct {
	in     chan []byte
	out    chan []byte
	closed chan struct{}
	once   sync.Once
}

func newFakeTap() *fakeTap {
	return &fakeTap{in: make(chan []byte, 16), out: make(chan []byte, 16), closed: make(chan struct{})}
}

func (f *fakeTap) Read(p []byte) (int, error) {
	select {
	case b := <-f.in:
		return copy(p, b), nil
	case <-f.closed:
		return 0, io.EOF
	}
}

func (f *fakeTap) Write(p []byte) (int, error) {
	select {
	case <-f.closed:
		return 0, net.ErrClosed
	default:
	}
	f.out <- bytes.Clone(p)
	return len(p), nil
}

func (f *fakeTap) Close() error { f.once.Do(func() { close(f.closed) }); return nil }

// recordTx records what a tunnel sends.
type recordTx struct {
	mu   sync.Mutex
	sent []sent
}

type sent struct {
	pkt []byte
	to  netip.AddrPort
}

func (r *recordTx) send(pkt []byte, to netip.AddrPort) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, sent{bytes.Clone(pkt), to})
	return nil
}

func (r *recordTx) take() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sent
	r.sent = nil
	return out
}

var (
	peerA = netip.MustParseAddrPort("10.9.0.2:4790")
	peerB = netip.MustParseAddrPort("10.9.0.3:4790")
	macX  = mac{0x02, 0x42, 0x0a, 0, 1, 0x20} // a container behind peer A
	macY  = mac{0x02, 0x42, 0x0a, 0, 1, 0x02} // a container on this node
)

func cryptNet(key []byte) Network {
	n := testNet()
	n.Encrypt(key)
	return n
}

// frameOf is a frame as the TAP device reads it: a virtio-net header, then Ethernet.
func frameOf(dst, src mac, payload string) []byte {
	return append(append(append(append(make([]byte, vnetHdrLen), dst[:]...), src[:]...), 0x08, 0x00), payload...)
}

func testTunnel(t *testing.T, key []byte) (*tunnel, *fakeTap, *recordTx) {
	t.Helper()
	dev, tx := newFakeTap(), &recordTx{}
	tn, err := newTunnel(cryptNet(key), dev, tx, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	tn.setPeers([]netip.AddrPort{peerA, peerB})
	return tn, dev, tx
}

func destinationsOf(s []sent) []netip.AddrPort {
	var out []netip.AddrPort
	for _, x := range s {
		out = append(out, x.to)
	}
	return out
}

// TestTunnelLearnsAndFloods: unknown, broadcast and multicast frames go
// to every peer; once a frame from a MAC arrived from a peer, frames to
// it go to that peer only, until the peer leaves or the entry ages.
func TestTunnelLearnsAndFloods(t *testing.T) {
	key := NewKey()
	tn, dev, tx := testTunnel(t, key)
	now := time.Unix(1000, 0)
	tn.now = func() time.Time { return now }
	all := []netip.AddrPort{peerA, peerB}

	tn.forward(nil, frameOf(macX, macY, "unknown yet"))
	if got := destinationsOf(tx.take()); !slices.Equal(got, all) {
		t.Errorf("unknown unicast went to %v, want every peer", got)
	}
	// peer A sends a frame from macX
	remote := testSealer(t, key, 4097, testNet().ID, 2)
	if err := tn.receive(remote.seal(nil, frameOf(mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, macX, "who has")), peerA); err != nil {
		t.Fatal(err)
	}
	if got := <-dev.out; !bytes.Contains(got, []byte("who has")) {
		t.Errorf("the TAP got %q", got)
	}
	tn.forward(nil, frameOf(macX, macY, "to X"))
	if got := destinationsOf(tx.take()); !slices.Equal(got, []netip.AddrPort{peerA}) {
		t.Errorf("a frame to a learned MAC went to %v, want peer A only", got)
	}
	for _, dst := range []mac{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0x01, 0x00, 0x5e, 0, 0, 1}} {
		tn.forward(nil, frameOf(dst, macY, "flood"))
		if got := destinationsOf(tx.take()); !slices.Equal(got, all) {
			t.Errorf("a frame to %x went to %v, want every peer", dst, got)
		}
	}
	now = now.Add(learnTTL)
	tn.forward(nil, frameOf(macX, macY, "aged"))
	if got := destinationsOf(tx.take()); !slices.Equal(got, all) {
		t.Errorf("after the entry aged, a frame went to %v, want every peer", got)
	}
	now = now.Add(-learnTTL)
	tn.setPeers([]netip.AddrPort{peerB}) // A left
	tn.forward(nil, frameOf(macX, macY, "A gone"))
	if got := destinationsOf(tx.take()); !slices.Equal(got, []netip.AddrPort{peerB}) {
		t.Errorf("after peer A left, a frame to X went to %v, want B (flooded)", got)
	}
	// what is sent opens under the key, at a peer
	tn.forward(nil, frameOf(macX, macY, "sealed"))
	s := tx.take()
	if len(s) != 1 || bytes.Contains(s[0].pkt, []byte("sealed")) {
		t.Fatalf("sent %v", s)
	}
	if got, _, _, err := remote.open(nil, s[0].pkt); err != nil || !bytes.HasSuffix(got, []byte("sealed")) {
		t.Errorf("the peer opens %q, %v", got, err)
	}
}

// TestTunnelDrops: a forged, replayed or foreign datagram never reaches
// the bridge, nor teaches a MAC address.
func TestTunnelDrops(t *testing.T) {
	key := NewKey()
	tn, dev, tx := testTunnel(t, key)
	remote := testSealer(t, key, 4097, testNet().ID, 2)
	good := remote.seal(nil, frameOf(macY, macX, "hello"))
	forged := bytes.Clone(good)
	forged[len(forged)-20] ^= 0x80
	if err := tn.receive(forged, peerA); !errors.Is(err, ErrForged) {
		t.Errorf("tampered: %v", err)
	}
	if err := tn.receive(testSealer(t, NewKey(), 4097, testNet().ID, 2).seal(nil, frameOf(macY, macX, "x")), peerA); !errors.Is(err, ErrForged) {
		t.Errorf("wrong key: %v", err)
	}
	if err := tn.receive(good, netip.MustParseAddrPort("10.9.0.99:4790")); !errors.Is(err, ErrForged) {
		t.Errorf("from a stranger: %v", err)
	}
	if len(dev.out) != 0 {
		t.Fatalf("%d frames reached the TAP", len(dev.out))
	}
	tn.forward(nil, frameOf(macX, macY, "x"))
	if got := len(tx.take()); got != 2 {
		t.Errorf("a dropped datagram taught its MAC: a frame to it went to %d peers", got)
	}
	if err := tn.receive(good, peerA); err != nil {
		t.Fatal(err)
	}
	<-dev.out
	if err := tn.receive(good, peerA); !errors.Is(err, ErrReplayed) {
		t.Errorf("replayed: %v", err)
	}
	// the same counter from another agent run (another prefix) is another sender
	again := testSealer(t, key, 4097, testNet().ID, 3)
	if err := tn.receive(again.seal(nil, frameOf(macY, macX, "restarted")), peerA); err != nil {
		t.Errorf("a restarted peer's first datagram: %v", err)
	}
	if len(dev.out) != 1 {
		t.Errorf("%d frames reached the TAP, want 1", len(dev.out))
	}
}

// TestCryptSwitchesOverUDP runs two nodes' switches on loopback
// addresses: a frame written to one's TAP comes out of the other's, and
// back; a network removed closes its TAP.
func TestCryptSwitchesOverUDP(t *testing.T) {
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(probe.LocalAddr().(*net.UDPAddr).Port)
	probe.Close()
	key := NewKey()
	taps := map[string]*fakeTap{}
	var mu sync.Mutex
	node := func(local string) *cryptSwitch {
		c := newCryptSwitch(slog.New(slog.DiscardHandler))
		c.port = port
		c.openTap = func(name string) (io.ReadWriteCloser, error) {
			mu.Lock()
			defer mu.Unlock()
			taps[local] = newFakeTap()
			return taps[local], nil
		}
		t.Cleanup(c.close)
		return c
	}
	a, b := node("127.0.0.1"), node("127.0.0.2")
	nw := func(local string) []Network {
		n := cryptNet(key)
		n.Local, n.Peers = local, []string{"127.0.0.1", "127.0.0.2"}
		return []Network{n}
	}
	if err := a.sync(nw("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := b.sync(nw("127.0.0.2")); err != nil {
		t.Fatal(err)
	}
	recv := func(tap *fakeTap) []byte {
		select {
		case f := <-tap.out:
			return f
		case <-time.After(5 * time.Second):
			t.Fatal("no frame came out of the TAP")
			return nil
		}
	}
	taps["127.0.0.1"].in <- frameOf(mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, macY, "ping")
	if got := recv(taps["127.0.0.2"]); !bytes.HasSuffix(got, []byte("ping")) {
		t.Errorf("b's TAP got %q", got)
	}
	taps["127.0.0.2"].in <- frameOf(macY, macX, "pong")
	if got := recv(taps["127.0.0.1"]); !bytes.HasSuffix(got, []byte("pong")) {
		t.Errorf("a's TAP got %q", got)
	}
	if err := b.sync(nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-taps["127.0.0.2"].closed:
	default:
		t.Error("the TAP of a network no longer wanted is still open")
	}
	if b.conn != nil {
		t.Error("the socket is open with no encrypted network")
	}
}

// TestTunnelFrameSizes: a 60 KB frame (a TCP segment the TAP device's
// offloads leave whole) goes in one datagram; one that would not fit in a
// datagram is dropped.
func TestTunnelFrameSizes(t *testing.T) {
	tn, _, tx := testTunnel(t, NewKey())
	tn.forward(nil, frameOf(macX, macY, string(make([]byte, 60000))))
	if s := tx.take(); len(s) != 2 || len(s[0].pkt) > maxSealed {
		t.Errorf("a 60 KB frame: %d datagrams", len(s))
	}
	tn.forward(nil, frameOf(macX, macY, string(make([]byte, maxSealed))))
	if s := tx.take(); len(s) != 0 {
		t.Errorf("a frame too big for a datagram was sent")
	}
}
