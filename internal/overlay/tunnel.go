package overlay

// The encrypted networks' userspace switch: one tunnel per network reads
// the frames the bridge hands its TAP device, seals them and sends them
// to the peer that has the destination MAC (learned from what arrives),
// or to every peer for broadcast, multicast and unknown destinations
// (as the kernel VXLAN device floods with its all-zeros entries); one
// UDP socket per node receives for every encrypted network, opens each
// datagram and writes the frame to the network's TAP device. Anything
// that does not open under the key, or was seen before, is dropped.

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// vnetHdrLen is the virtio-net header before each frame of the TAP device
// (its offloads: see openTap). It travels sealed with the frame, and the
// peer's TAP device takes it as it is.
const vnetHdrLen = 10

// maxSealed is the largest datagram: the UDP maximum (the kernel
// fragments it in IP on the underlay and puts it together again).
const maxSealed = 65507

// learnTTL is how long a learned MAC address stays with its peer without
// a frame from it (the kernel bridge's default ageing time).
const learnTTL = 5 * time.Minute

// maxSenders bounds the replay windows a tunnel keeps: one per peer and
// agent run (the nonce prefix changes when an agent restarts).
const maxSenders = 1024

// transport sends datagrams to the peers: the node's UDP socket, or a
// fake in tests.
type transport interface {
	send(pkt []byte, to netip.AddrPort) error
}

type mac [6]byte

type learned struct {
	peer netip.AddrPort
	at   time.Time
}

type senderKey struct {
	from   netip.Addr
	prefix uint32
}

// tunnel carries one encrypted network's frames between its TAP device
// and the peer nodes.
type tunnel struct {
	nw   Network
	log  *slog.Logger
	dev  io.ReadWriteCloser // the TAP device
	tx   transport
	seal *sealer
	now  func() time.Time

	mu    sync.Mutex
	peers []netip.AddrPort
	macs  map[mac]learned

	// the receiving goroutine's own
	windows map[senderKey]*replayWindow
	rxbuf   []byte
}

func newTunnel(nw Network, dev io.ReadWriteCloser, tx transport, prefix uint32, log *slog.Logger) (*tunnel, error) {
	s, err := newSealer(nw.Key, nw.VNI, nw.ID, prefix)
	if err != nil {
		return nil, err
	}
	return &tunnel{nw: nw, log: log, dev: dev, tx: tx, seal: s, now: time.Now, macs: map[mac]learned{},
		windows: map[senderKey]*replayWindow{}, rxbuf: make([]byte, 0, 1<<17)}, nil
}

// setPeers follows the node list: MACs learned behind a peer that left are forgotten.
func (t *tunnel) setPeers(peers []netip.AddrPort) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.peers = peers
	for m, l := range t.macs {
		if !slices.Contains(peers, l.peer) {
			delete(t.macs, m)
		}
	}
}

// destinations are the peers a frame to dst goes to.
func (t *tunnel) destinations(dst mac) []netip.AddrPort {
	t.mu.Lock()
	defer t.mu.Unlock()
	if dst[0]&1 == 0 { // unicast
		if l, ok := t.macs[dst]; ok && t.now().Sub(l.at) < learnTTL {
			return []netip.AddrPort{l.peer}
		}
	}
	return t.peers
}

// readLoop forwards the TAP device's frames until it is closed.
func (t *tunnel) readLoop() {
	frame := make([]byte, 1<<17)
	pkt := make([]byte, 0, 1<<17+headerLen+tagLen)
	for {
		n, err := t.dev.Read(frame)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				t.log.Debug("overlay: encrypted tunnel stops reading", "network", t.nw.Name, "err", err)
			}
			return
		}
		pkt = t.forward(pkt[:0], frame[:n])
	}
}

// forward seals one frame from the bridge (after its virtio-net header)
// and sends it where its destination is; it returns pkt for reuse.
func (t *tunnel) forward(pkt, frame []byte) []byte {
	if len(frame) < vnetHdrLen+14 {
		return pkt
	}
	if len(frame)+headerLen+tagLen > maxSealed {
		// TCP's segments stay under it (its size goal leaves room for
		// headers); anything else this big is not ours to carry
		t.log.Debug("overlay: encrypted tunnel: frame too big, dropped", "network", t.nw.Name, "bytes", len(frame))
		return pkt
	}
	dsts := t.destinations(mac(frame[vnetHdrLen : vnetHdrLen+6]))
	if len(dsts) == 0 {
		return pkt
	}
	pkt = t.seal.seal(pkt, frame)
	for _, d := range dsts {
		if err := t.tx.send(pkt, d); err != nil {
			t.log.Debug("overlay: encrypted tunnel send", "network", t.nw.Name, "peer", d, "err", err)
		}
	}
	return pkt
}

// receive opens a datagram from a peer and hands its frame to the bridge.
// It is called by one goroutine at a time (the socket's reader).
func (t *tunnel) receive(pkt []byte, from netip.AddrPort) error {
	t.mu.Lock()
	known := slices.Contains(t.peers, from)
	t.mu.Unlock()
	if !known {
		return fmt.Errorf("%w: from %s, not a peer", ErrForged, from)
	}
	frame, prefix, ctr, err := t.seal.open(t.rxbuf[:0], pkt)
	if err != nil {
		return err
	}
	key := senderKey{from.Addr(), prefix}
	w := t.windows[key]
	if w == nil {
		if len(t.windows) >= maxSenders {
			clear(t.windows)
		}
		w = &replayWindow{}
		t.windows[key] = w
	}
	if !w.accept(ctr) {
		return ErrReplayed
	}
	if len(frame) < vnetHdrLen+14 {
		return nil
	}
	if src := mac(frame[vnetHdrLen+6 : vnetHdrLen+12]); src[0]&1 == 0 {
		t.mu.Lock()
		t.macs[src] = learned{peer: from, at: t.now()}
		t.mu.Unlock()
	}
	_, err = t.dev.Write(frame)
	return err
}

// udpTransport is the node's socket for every encrypted network.
type udpTransport struct{ conn *net.UDPConn }

func (u udpTransport) send(pkt []byte, to netip.AddrPort) error {
	_, err := u.conn.WriteToUDPAddrPort(pkt, to)
	return err
}

// cryptSwitch runs the tunnels of a node's encrypted networks over one
// UDP socket.
type cryptSwitch struct {
	log     *slog.Logger
	addr    string // where the socket listens ("": the node's address, port CryptPort)
	port    uint16 // the peers' port
	openTap func(name string) (io.ReadWriteCloser, error)
	prefix  uint32

	mu      sync.Mutex
	conn    *net.UDPConn
	bound   string             // conn's address
	done    chan struct{}      // the reader of conn has returned
	tunnels map[uint32]*tunnel // by VNI
}

func newCryptSwitch(log *slog.Logger) *cryptSwitch {
	var p [4]byte
	rand.Read(p[:])
	return &cryptSwitch{log: log, port: CryptPort, openTap: openTap,
		prefix: binary.BigEndian.Uint32(p[:]), tunnels: map[uint32]*tunnel{}}
}

// sync opens a tunnel for each encrypted network of want, follows their
// peers, and closes those no longer wanted (their TAP devices go with
// them); the socket is open while there is a tunnel.
func (c *cryptSwitch) sync(want []Network) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	wanted := map[uint32]Network{}
	addr := c.addr
	for _, nw := range want {
		if nw.Tap != "" {
			wanted[nw.VNI] = nw
			if c.addr == "" {
				// bound to the node's address, so that datagrams leave
				// from the address the peers know it by
				addr = net.JoinHostPort(nw.Local, fmt.Sprint(c.port))
			}
		}
	}
	rebind := c.conn != nil && c.bound != addr
	for vni, t := range c.tunnels {
		if nw, ok := wanted[vni]; rebind || !ok || nw.ID != t.nw.ID || string(nw.Key) != string(t.nw.Key) {
			t.dev.Close()
			delete(c.tunnels, vni)
		}
	}
	if len(wanted) == 0 || rebind {
		c.closeConn()
	}
	if len(wanted) == 0 {
		return nil
	}
	if err := c.openConn(addr); err != nil {
		return err
	}
	var errs []error
	for vni, nw := range wanted {
		t := c.tunnels[vni]
		if t == nil {
			var err error
			if t, err = c.openTunnel(nw); err != nil {
				errs = append(errs, err)
				continue
			}
			c.tunnels[vni] = t
		}
		t.setPeers(c.peers(nw))
	}
	return errors.Join(errs...)
}

func (c *cryptSwitch) openTunnel(nw Network) (*tunnel, error) {
	dev, err := c.openTap(nw.Tap)
	if err != nil {
		return nil, fmt.Errorf("overlay: network %s: TAP device %s: %w", nw.Name, nw.Tap, err)
	}
	t, err := newTunnel(nw, dev, udpTransport{c.conn}, c.prefix, c.log)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("overlay: network %s: %w", nw.Name, err)
	}
	c.log.Info("overlay: encrypted tunnel open", "network", nw.Name, "tap", nw.Tap)
	go t.readLoop()
	return t, nil
}

// peers are the other nodes' sockets.
func (c *cryptSwitch) peers(nw Network) []netip.AddrPort {
	var out []netip.AddrPort
	for _, p := range nw.Peers {
		if a, err := netip.ParseAddr(p); err == nil && p != nw.Local {
			out = append(out, netip.AddrPortFrom(a.Unmap(), c.port))
		}
	}
	return out
}

func (c *cryptSwitch) openConn(addr string) error {
	if c.conn != nil {
		return nil
	}
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return fmt.Errorf("overlay: encrypted tunnel socket: %w", err)
	}
	conn, err := net.ListenUDP("udp4", ua)
	if err != nil {
		return fmt.Errorf("overlay: encrypted tunnel socket: %w", err)
	}
	bigBuffers(conn, c.log)
	c.conn, c.bound, c.done = conn, addr, make(chan struct{})
	go c.readLoop(conn, c.done)
	return nil
}

// socketBuffer is the UDP socket's buffer each way: a burst of a TCP
// window's frames waits there while the one reader catches up, rather
// than being dropped (the default 208 KiB dropped a sixth of a bulk
// transfer's datagrams on a loaded 2-core machine, and TCP then crawled).
const socketBuffer = 8 << 20

// bigBuffers sets the socket's buffers past the system's default maximum
// (the agent runs as root: the FORCE options), or as big as allowed, and
// lets the kernel fragment datagrams bigger than the path's MTU (a 64 KiB
// frame is one datagram).
func bigBuffers(conn *net.UDPConn, log *slog.Logger) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT); err != nil {
			log.Debug("overlay: encrypted tunnel socket: fragmentation", "err", err)
		}
		for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], socketBuffer) != nil {
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], socketBuffer); err != nil {
					log.Debug("overlay: encrypted tunnel socket buffer", "err", err)
				}
			}
		}
	})
}

func (c *cryptSwitch) closeConn() {
	if c.conn == nil {
		return
	}
	c.conn.Close()
	c.mu.Unlock() // the reader may be waiting for c.mu
	<-c.done
	c.mu.Lock()
	c.conn = nil
}

// readLoop hands each datagram to its network's tunnel until conn closes.
func (c *cryptSwitch) readLoop(conn *net.UDPConn, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 1<<16)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				c.log.Warn("overlay: encrypted tunnel socket", "err", err)
			}
			return
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		vni, err := datagramVNI(buf[:n])
		if err != nil {
			continue
		}
		c.mu.Lock()
		t := c.tunnels[vni]
		c.mu.Unlock()
		if t == nil {
			continue
		}
		if err := t.receive(buf[:n], from); err != nil {
			c.log.Debug("overlay: encrypted datagram dropped", "network", t.nw.Name, "from", from, "err", err)
		}
	}
}

// close stops every tunnel and the socket (the agent stops: the TAP
// devices go, the bridges and the containers on them stay).
func (c *cryptSwitch) close() {
	_ = c.sync(nil)
}
