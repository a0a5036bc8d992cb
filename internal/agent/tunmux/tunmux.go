// Package tunmux is the manager's end of a node's tunnel: a multiplexer
// that speaks yamux's wire protocol (github.com/hashicorp/yamux, which
// nodes run) with one goroutine per tunnel instead of three, and no
// buffer kept for a stream while it has nothing unread.
//
// A manager holds a tunnel to every node, each with an engine event
// stream open for as long as the node is connected. With yamux that
// costs, per node, a receive loop, a send loop and an accept loop, a
// 4 KiB read buffer and the session's queues, and a receive buffer per
// stream that keeps the capacity of twice the largest frame it ever
// held: ~30 KiB a node, ~30 MiB at 1,000 nodes. Here the caller's own
// goroutine reads the connection (Session.Run), frames are written by
// whichever goroutine sends them (one at a time, under a lock), streams
// the peer opens are handed to a callback, and what a stream receives is
// kept only until it is read.
//
// Only the client side is implemented (the manager dials nothing: it
// is yamux's client on a connection the node opened), and it sends no
// pings of its own: the node pings, and the manager answers.
package tunmux

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"time"
)

// The wire protocol: each frame is a 12-byte header (version, type,
// flags, stream ID, length), followed for data frames by length bytes.
const (
	protoVersion = 0
	headerSize   = 12

	typeData         = 0
	typeWindowUpdate = 1
	typePing         = 2
	typeGoAway       = 3

	flagSYN = 1
	flagACK = 2
	flagFIN = 4
	flagRST = 8

	goAwayNormal   = 0
	goAwayProtoErr = 1

	// initialWindow is what either side may send on a new stream before
	// the other's first window update.
	initialWindow = 256 << 10
	// maxFrame bounds the data frames this side writes (the peer accepts
	// any up to its window): a write of more is sent in several.
	maxFrame = 32 << 10
)

// Errors returned by sessions and streams.
var (
	ErrSessionShutdown  = errors.New("tunmux: session shutdown")
	ErrStreamClosed     = errors.New("tunmux: stream closed")
	ErrConnectionReset  = errors.New("tunmux: stream reset by peer")
	ErrRemoteGoAway     = errors.New("tunmux: peer accepts no new streams")
	ErrStreamsExhausted = errors.New("tunmux: stream IDs exhausted")
	ErrProtocol         = errors.New("tunmux: protocol error")
	ErrOpenTimeout      = errors.New("tunmux: a stream opened was not acknowledged in time")
)

// Config tunes a session; zero fields take the defaults (those of yamux).
type Config struct {
	// MaxStreamWindow is how much a stream may receive ahead of its
	// reader (yamux's MaxStreamWindowSize; default and minimum 256 KiB).
	MaxStreamWindow uint32
	// WriteTimeout bounds each write to the connection; one that takes
	// longer ends the session (default 10 s).
	WriteTimeout time.Duration
	// AcceptBacklog is how many streams the peer opened may wait to be
	// accepted (more are reset) and how many opened here may wait for the
	// peer's acknowledgement (Open waits beyond). Default 256.
	AcceptBacklog int
	// OpenTimeout ends the session when a stream opened here is not
	// acknowledged in that time: the peer no longer accepts (75 s).
	OpenTimeout time.Duration
	// CloseTimeout resets a stream closed here (Close, not CloseWrite)
	// that the peer has not closed in that time (5 min).
	CloseTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxStreamWindow < initialWindow {
		c.MaxStreamWindow = initialWindow
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.AcceptBacklog <= 0 {
		c.AcceptBacklog = 256
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = 75 * time.Second
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = 5 * time.Minute
	}
	return c
}

// Session is the client end of a yamux connection. Run reads it; any
// goroutine may open streams and write.
type Session struct {
	conn net.Conn
	cfg  Config
	syn  chan struct{} // a token per stream opened here and not yet acknowledged

	wmu sync.Mutex // one frame at a time on conn

	mu         sync.Mutex
	streams    map[uint32]*Stream
	nextID     uint32
	unaccepted int // streams the peer opened, not yet accepted
	goneAway   bool
	err        error // why the session ended (once done is closed)
	done       chan struct{}
}

// Client returns a session on conn, whose peer runs yamux's server side.
// Nothing is read from conn until Run.
func Client(conn net.Conn, cfg Config) *Session {
	cfg = cfg.withDefaults()
	return &Session{conn: conn, cfg: cfg, syn: make(chan struct{}, cfg.AcceptBacklog),
		streams: map[uint32]*Stream{}, nextID: 1, done: make(chan struct{})}
}

// Done is closed once the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended (nil while it runs).
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Addr is the connection's local address (as yamux's Session.Addr).
func (s *Session) Addr() net.Addr { return s.conn.LocalAddr() }

// NumStreams is how many streams are open (not yet closed by both sides).
func (s *Session) NumStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

// Close ends the session: its connection is closed, its streams fail.
func (s *Session) Close() error {
	s.end(ErrSessionShutdown)
	return nil
}

// end ends the session for err (the first cause wins).
func (s *Session) end(err error) {
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		return
	default:
	}
	s.err = err
	close(s.done)
	streams := s.streams
	s.streams = map[uint32]*Stream{}
	s.mu.Unlock()
	s.conn.Close()
	for _, st := range streams {
		st.sessionEnded()
	}
}

// Run reads the connection until the session ends, and returns why.
// accept is called, from Run's goroutine, with each stream the peer
// opens; it must not block, and the stream is the peer's to use once
// accepted (Stream.Accept), which may come later, from any goroutine.
func (s *Session) Run(accept func(*Stream)) error {
	err := s.readLoop(accept)
	s.end(err)
	return s.Err()
}

func (s *Session) readLoop(accept func(*Stream)) error {
	var hdr [headerSize]byte
	for {
		if _, err := io.ReadFull(s.conn, hdr[:]); err != nil {
			return err
		}
		if hdr[0] != protoVersion {
			return fmt.Errorf("%w: version %d", ErrProtocol, hdr[0])
		}
		typ, flags := hdr[1], binary.BigEndian.Uint16(hdr[2:4])
		id, length := binary.BigEndian.Uint32(hdr[4:8]), binary.BigEndian.Uint32(hdr[8:12])
		var err error
		switch typ {
		case typeData, typeWindowUpdate:
			err = s.streamFrame(typ, flags, id, length, accept)
		case typePing:
			if flags&flagSYN != 0 {
				err = s.writeFrame(typePing, flagACK, 0, length, nil)
			}
		case typeGoAway:
			if length != goAwayNormal {
				return fmt.Errorf("%w: the peer went away (code %d)", ErrProtocol, length)
			}
			s.mu.Lock()
			s.goneAway = true
			s.mu.Unlock()
		default:
			return fmt.Errorf("%w: frame type %d", ErrProtocol, typ)
		}
		if err != nil {
			return err
		}
	}
}

// protocolError tells the peer it broke the protocol, and is the
// session's end.
func (s *Session) protocolError(format string, args ...any) error {
	_ = s.writeFrame(typeGoAway, 0, 0, goAwayProtoErr, nil)
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

func (s *Session) streamFrame(typ uint8, flags uint16, id, length uint32, accept func(*Stream)) error {
	if flags&flagSYN != 0 {
		st, err := s.incoming(id)
		if err != nil {
			return err
		}
		if st != nil {
			accept(st)
		}
	}
	s.mu.Lock()
	st := s.streams[id]
	s.mu.Unlock()
	if st == nil {
		// A stream reset or refused here: its data is dropped.
		if typ == typeData && length > 0 {
			if _, err := io.CopyN(io.Discard, s.conn, int64(length)); err != nil {
				return err
			}
		}
		return nil
	}
	if typ == typeWindowUpdate {
		st.windowUpdate(flags, length)
		return nil
	}
	return st.data(flags, length)
}

// incoming registers a stream the peer opens; nil if it was refused (a
// reset sent: too many wait to be accepted, or the session is ending).
func (s *Session) incoming(id uint32) (*Stream, error) {
	if id == 0 || id%2 != 0 {
		// The server's streams are even: odd ones are this side's.
		return nil, s.protocolError("stream %d opened by the server", id)
	}
	s.mu.Lock()
	if s.isDone() {
		// end has failed the streams it saw; this one would never end.
		s.mu.Unlock()
		return nil, ErrSessionShutdown
	}
	if _, dup := s.streams[id]; dup {
		s.mu.Unlock()
		return nil, s.protocolError("stream %d opened twice", id)
	}
	if s.unaccepted >= s.cfg.AcceptBacklog {
		s.mu.Unlock()
		return nil, s.writeFrame(typeWindowUpdate, flagRST, id, 0, nil)
	}
	st := newStream(s, id, initialWindow)
	st.waiting = true
	s.unaccepted++
	s.streams[id] = st
	s.mu.Unlock()
	return st, nil
}

// Open opens a stream to the peer. It waits while AcceptBacklog of the
// streams opened are not yet acknowledged, until ctx ends.
func (s *Session) Open(ctx context.Context) (*Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // select below may take a free token over it
	}
	s.mu.Lock()
	gone, done := s.goneAway, s.isDone()
	s.mu.Unlock()
	if done {
		return nil, ErrSessionShutdown
	}
	if gone {
		return nil, ErrRemoteGoAway
	}
	select {
	case s.syn <- struct{}{}:
	case <-s.done:
		return nil, ErrSessionShutdown
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	if s.isDone() {
		s.mu.Unlock()
		<-s.syn
		return nil, ErrSessionShutdown
	}
	id := s.nextID
	if id >= math.MaxUint32-1 {
		s.mu.Unlock()
		<-s.syn
		return nil, ErrStreamsExhausted
	}
	s.nextID += 2
	st := newStream(s, id, s.cfg.MaxStreamWindow)
	st.synHeld = true
	st.openTimer = time.AfterFunc(s.cfg.OpenTimeout, func() {
		st.mu.Lock()
		unacked := st.synHeld
		st.mu.Unlock()
		if unacked {
			s.end(ErrOpenTimeout)
		}
	})
	s.streams[id] = st
	s.mu.Unlock()
	// The SYN carries the window beyond the initial one, as yamux's does.
	if err := s.writeFrame(typeWindowUpdate, flagSYN, id, s.cfg.MaxStreamWindow-initialWindow, nil); err != nil {
		st.remove()
		return nil, err
	}
	return st, nil
}

// isDone reports whether the session ended; any lock.
func (s *Session) isDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// framePool holds the buffers a data frame is written from: header and
// data in one write, one TLS record rather than two.
var framePool = sync.Pool{New: func() any { b := make([]byte, headerSize+maxFrame); return &b }}

// writeData writes a data frame of st, unless st can no longer send
// (checked under the write lock, so that no data follows its FIN).
func (s *Session) writeData(st *Stream, data []byte) error {
	return s.write(typeData, 0, st.id, uint32(len(data)), data, st)
}

// writeFrame writes one frame; a failed write ends the session.
func (s *Session) writeFrame(typ uint8, flags uint16, id, length uint32, data []byte) error {
	return s.write(typ, flags, id, length, data, nil)
}

func (s *Session) write(typ uint8, flags uint16, id, length uint32, data []byte, st *Stream) error {
	var hdr [headerSize]byte
	hdr[0], hdr[1] = protoVersion, typ
	binary.BigEndian.PutUint16(hdr[2:4], flags)
	binary.BigEndian.PutUint32(hdr[4:8], id)
	binary.BigEndian.PutUint32(hdr[8:12], length)
	var frame []byte
	if len(data) == 0 {
		frame = hdr[:]
	} else {
		bp := framePool.Get().(*[]byte)
		defer framePool.Put(bp)
		frame = append(append((*bp)[:0], hdr[:]...), data...)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.isDone() {
		return ErrSessionShutdown
	}
	if st != nil {
		st.mu.Lock()
		err := st.sendErrLocked()
		st.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil {
		s.end(err)
		return ErrSessionShutdown
	}
	if _, err := s.conn.Write(frame); err != nil {
		s.end(fmt.Errorf("tunmux: write: %w", err))
		return ErrSessionShutdown
	}
	return nil
}

// Stream is one stream of a session: a net.Conn. Close ends both
// directions (data that comes after it resets the stream); CloseWrite
// ends only what is sent, as TCP's half-close.
type Stream struct {
	s  *Session
	id uint32

	wmu sync.Mutex // one Write at a time: its frames stay in order

	mu         sync.Mutex
	chunks     [][]byte // received and unread, in order (nil when none)
	off        int      // read from chunks[0]
	buffered   uint32   // bytes in chunks
	recvWindow uint32   // what the peer may still send
	sendWindow uint32   // what may still be sent to the peer
	synHeld    bool     // opened here, not yet acknowledged (holds a token of s.syn)
	waiting    bool     // opened by the peer, not yet accepted
	localFIN   bool     // CloseWrite or Close sent FIN
	closed     bool     // Close: nothing more is read
	remoteFIN  bool     // the peer sent FIN
	reset      bool     // reset by the peer (or here)
	ended      bool     // the session ended
	removed    bool     // no longer in the session's map
	rdl, wdl   time.Time
	openTimer  *time.Timer
	closeTimer *time.Timer
	// Closed (and cleared) to wake every Read, or every Write, that
	// waits; nil while none does.
	rwake, wwake chan struct{}
}

func newStream(s *Session, id, recvWindow uint32) *Stream {
	return &Stream{s: s, id: id, recvWindow: recvWindow, sendWindow: initialWindow}
}

// wakeLocked wakes all that wait on *c (st.mu held).
func wakeLocked(c *chan struct{}) {
	if *c != nil {
		close(*c)
		*c = nil
	}
}

// waitChanLocked is what to wait on for the next wakeLocked(c) (st.mu
// held, so that no wake-up is missed between the check and the wait).
func waitChanLocked(c *chan struct{}) chan struct{} {
	if *c == nil {
		*c = make(chan struct{})
	}
	return *c
}

// wakeAllLocked wakes every Read and Write that waits (st.mu held).
func (st *Stream) wakeAllLocked() {
	wakeLocked(&st.rwake)
	wakeLocked(&st.wwake)
}

// ID is the stream's number in the session.
func (st *Stream) ID() uint32 { return st.id }

// Accept acknowledges a stream the peer opened (handed to Run's accept),
// with the window beyond the initial one, as yamux's AcceptStream does.
func (st *Stream) Accept() error {
	st.mu.Lock()
	err := st.goneErrLocked()
	if err == nil && st.removed {
		err = ErrConnectionReset // reset before it was accepted
	}
	if err != nil || !st.waiting {
		st.mu.Unlock()
		return err
	}
	st.waiting = false
	delta := st.s.cfg.MaxStreamWindow - st.buffered - st.recvWindow
	st.recvWindow += delta
	st.mu.Unlock()
	st.s.mu.Lock()
	st.s.unaccepted--
	st.s.mu.Unlock()
	return st.s.writeFrame(typeWindowUpdate, flagACK, st.id, delta, nil)
}

// goneErrLocked is why the stream can no longer be used (st.mu held).
func (st *Stream) goneErrLocked() error {
	switch {
	case st.reset:
		return ErrConnectionReset
	case st.ended || st.s.isDone():
		return ErrSessionShutdown
	}
	return nil
}

// windowUpdate applies a window update frame from the peer.
func (st *Stream) windowUpdate(flags uint16, delta uint32) {
	st.mu.Lock()
	st.sendWindow += delta
	wakeLocked(&st.wwake)
	st.mu.Unlock()
	st.flags(flags)
}

// data reads a data frame's length bytes from the connection into the
// stream (Run's goroutine).
func (st *Stream) data(flags uint16, length uint32) error {
	st.mu.Lock()
	over, closed := length > st.recvWindow, st.closed
	st.mu.Unlock()
	if over {
		return st.s.protocolError("stream %d: %d bytes beyond its window", st.id, length)
	}
	if length > 0 && closed {
		// Closed here: nobody reads; as TCP, the peer is told by a reset.
		if _, err := io.CopyN(io.Discard, st.s.conn, int64(length)); err != nil {
			return err
		}
		st.Reset()
		return nil
	}
	if length > 0 {
		var chunk []byte
		var small *[]byte
		if length < smallFrame {
			small = smallPool.Get().(*[]byte)
			defer smallPool.Put(small)
			chunk = (*small)[:length]
		} else {
			chunk = make([]byte, length)
		}
		if _, err := io.ReadFull(st.s.conn, chunk); err != nil {
			return err
		}
		st.mu.Lock()
		dropped := st.reset || st.closed
		if !dropped {
			st.store(chunk, small != nil)
			st.buffered += length
			wakeLocked(&st.rwake)
		}
		st.recvWindow -= length
		closed := st.closed && !st.reset
		st.mu.Unlock()
		if closed {
			st.Reset() // closed while its data was read
			return nil
		}
	}
	st.flags(flags)
	return nil
}

// smallFrame: a data frame shorter is read into a pooled buffer and
// copied after what the stream holds unread (into one chunk while they
// fit in smallFrame), so that many small frames unread cost about their
// size, not an allocation and a slice header each.
const smallFrame = 4 << 10

var smallPool = sync.Pool{New: func() any { b := make([]byte, smallFrame); return &b }}

// store keeps data received; scratch says data is a pooled buffer (to
// copy). Under st.mu.
func (st *Stream) store(data []byte, scratch bool) {
	if n := len(st.chunks); scratch && n > 0 && len(st.chunks[n-1])+len(data) <= smallFrame {
		st.chunks[n-1] = append(st.chunks[n-1], data...)
		return
	}
	if scratch {
		data = append([]byte(nil), data...)
	}
	st.chunks = append(st.chunks, data)
}

// flags applies the ACK, FIN and RST a frame carries.
func (st *Stream) flags(flags uint16) {
	if flags&(flagACK|flagFIN|flagRST) == 0 {
		return
	}
	st.mu.Lock()
	releaseSyn := false
	if flags&(flagACK|flagRST) != 0 && st.synHeld {
		st.synHeld = false
		releaseSyn = true
	}
	if flags&flagFIN != 0 {
		st.remoteFIN = true
	}
	if flags&flagRST != 0 {
		st.reset = true
		st.chunks, st.off, st.buffered = nil, 0, 0
	}
	gone := st.reset || (st.remoteFIN && st.localFIN)
	st.wakeAllLocked()
	st.mu.Unlock()
	if releaseSyn {
		st.mu.Lock()
		t := st.openTimer
		st.mu.Unlock()
		stopTimers(t)
		<-st.s.syn
	}
	if gone {
		st.remove()
	}
}

// stopTimers stops those of ts that were set.
func stopTimers(ts ...*time.Timer) {
	for _, t := range ts {
		if t != nil {
			t.Stop()
		}
	}
}

// remove takes the stream out of the session once neither side will
// send on it: its token and timers go.
func (st *Stream) remove() {
	st.mu.Lock()
	if st.removed {
		st.mu.Unlock()
		return
	}
	st.removed = true
	releaseSyn := st.synHeld
	st.synHeld = false
	waiting := st.waiting
	st.waiting = false
	ot, ct := st.openTimer, st.closeTimer
	st.mu.Unlock()
	stopTimers(ot, ct)
	s := st.s
	s.mu.Lock()
	if s.streams[st.id] == st {
		delete(s.streams, st.id)
	}
	if waiting {
		s.unaccepted--
	}
	s.mu.Unlock()
	if releaseSyn {
		<-s.syn
	}
}

// Reset resets the stream from this side: both sides' reads and writes
// fail at once.
func (st *Stream) Reset() {
	st.mu.Lock()
	already := st.reset || st.ended
	st.reset = true
	st.chunks, st.off, st.buffered = nil, 0, 0
	st.wakeAllLocked()
	st.mu.Unlock()
	st.remove()
	if !already {
		_ = st.s.writeFrame(typeWindowUpdate, flagRST, st.id, 0, nil)
	}
}

// sessionEnded fails the stream's waits: the session is gone.
func (st *Stream) sessionEnded() {
	st.mu.Lock()
	st.ended = true
	ot, ct := st.openTimer, st.closeTimer
	st.wakeAllLocked()
	st.mu.Unlock()
	stopTimers(ot, ct)
}

// Read reads what the peer sent; io.EOF once it closed its side (or the
// session ended) and all was read. Past the read deadline it fails with
// os.ErrDeadlineExceeded, as a net.Conn's, even with data to read.
func (st *Stream) Read(b []byte) (int, error) {
	for {
		st.mu.Lock()
		switch {
		case st.closed:
			st.mu.Unlock()
			return 0, ErrStreamClosed
		case st.reset:
			st.mu.Unlock()
			return 0, ErrConnectionReset
		case passed(st.rdl):
			st.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		case st.buffered > 0:
			n := 0
			for n < len(b) && len(st.chunks) > 0 {
				c := st.chunks[0][st.off:]
				k := copy(b[n:], c)
				n += k
				if k == len(c) {
					st.chunks[0] = nil
					st.chunks = st.chunks[1:]
					st.off = 0
				} else {
					st.off += k
				}
			}
			if len(st.chunks) == 0 {
				st.chunks = nil
			}
			st.buffered -= uint32(n)
			delta, send := st.windowDeltaLocked()
			st.mu.Unlock()
			if send {
				_ = st.s.writeFrame(typeWindowUpdate, 0, st.id, delta, nil)
			}
			return n, nil
		case st.remoteFIN || st.ended || st.s.isDone():
			st.mu.Unlock()
			return 0, io.EOF
		case len(b) == 0:
			st.mu.Unlock()
			return 0, nil
		}
		c, dl := waitChanLocked(&st.rwake), st.rdl
		st.mu.Unlock()
		if err := wait(c, st.s.done, dl); err != nil {
			return 0, err
		}
	}
}

// passed reports whether deadline dl (zero: none) has passed.
func passed(dl time.Time) bool { return !dl.IsZero() && !time.Now().Before(dl) }

// windowDeltaLocked is the window update owed once the reader has caught
// up by half the window (as yamux's), and whether it is owed yet.
func (st *Stream) windowDeltaLocked() (uint32, bool) {
	if st.waiting || st.remoteFIN {
		return 0, false
	}
	max := st.s.cfg.MaxStreamWindow
	delta := max - st.buffered - st.recvWindow
	if delta < max/2 {
		return 0, false
	}
	st.recvWindow += delta
	return delta, true
}

// wait waits for c to be closed, the session's end, or the deadline dl.
func wait(c chan struct{}, done <-chan struct{}, dl time.Time) error {
	if dl.IsZero() {
		select {
		case <-c:
		case <-done:
		}
		return nil
	}
	d := time.Until(dl)
	if d <= 0 {
		return os.ErrDeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c:
	case <-done:
	case <-t.C:
		return os.ErrDeadlineExceeded
	}
	return nil
}

// Write sends b, in frames the peer's window allows. Past the write
// deadline it fails with os.ErrDeadlineExceeded, as a net.Conn's.
func (st *Stream) Write(b []byte) (int, error) {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	n := 0
	for n < len(b) {
		st.mu.Lock()
		if err := st.sendErrLocked(); err != nil {
			st.mu.Unlock()
			return n, err
		}
		switch {
		case passed(st.wdl):
			st.mu.Unlock()
			return n, os.ErrDeadlineExceeded
		case st.sendWindow == 0:
			c, dl := waitChanLocked(&st.wwake), st.wdl
			st.mu.Unlock()
			if err := wait(c, st.s.done, dl); err != nil {
				return n, err
			}
			continue
		}
		k := min(uint32(len(b)-n), st.sendWindow, maxFrame)
		st.sendWindow -= k
		st.mu.Unlock()
		if err := st.s.writeData(st, b[n:n+int(k)]); err != nil {
			return n, err
		}
		n += int(k)
	}
	return n, nil
}

// sendErrLocked is why the stream can no longer send (nil if it can).
func (st *Stream) sendErrLocked() error {
	switch {
	case st.reset:
		return ErrConnectionReset
	case st.localFIN || st.closed:
		return ErrStreamClosed
	case st.ended || st.s.isDone():
		return ErrSessionShutdown
	}
	return nil
}

// CloseWrite sends FIN: the peer reads to its end; this side still reads.
// A Write under way on another goroutine stops (ErrStreamClosed).
func (st *Stream) CloseWrite() error {
	st.mu.Lock()
	if st.localFIN || st.reset || st.ended {
		st.mu.Unlock()
		return nil
	}
	st.localFIN = true
	gone := st.remoteFIN
	// No close timer: as with TCP, the peer may answer for as long as it
	// takes (an attach whose stdin ended); Close arms it.
	st.wakeAllLocked() // a Write waiting for window stops
	st.mu.Unlock()
	err := st.s.writeFrame(typeWindowUpdate, flagFIN, st.id, 0, nil)
	if gone {
		st.remove()
	}
	return err
}

// startCloseTimerLocked resets the stream if the peer has not closed its
// side CloseTimeout after Close (a half-closed stream's owner still
// reads: it may for as long as the peer sends).
func (st *Stream) startCloseTimerLocked() {
	if st.closeTimer == nil {
		st.closeTimer = time.AfterFunc(st.s.cfg.CloseTimeout, st.Reset)
	}
}

// Close ends the stream here: FIN is sent (if it was not), what was
// received and not read is dropped, and data that still comes resets it.
// Reads and Writes waiting fail at once; the FIN waits for the frame a
// Write may be sending.
func (st *Stream) Close() error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	st.closed = true
	st.chunks, st.off, st.buffered = nil, 0, 0
	st.wakeAllLocked()
	live := !st.reset && !st.ended
	var flags uint16
	if live && !st.localFIN {
		flags = flagFIN
	}
	st.localFIN = true
	// What was dropped unread is window the peer may be waiting for: it
	// gets it back, sends, and is reset (data), rather than wait for the
	// close timer.
	var delta uint32
	if live && !st.remoteFIN && !st.waiting {
		delta = st.s.cfg.MaxStreamWindow - st.recvWindow
		st.recvWindow += delta
	}
	gone := st.remoteFIN || !live
	if !gone {
		st.startCloseTimerLocked()
	}
	st.mu.Unlock()
	var err error
	if flags != 0 || delta > 0 {
		err = st.s.writeFrame(typeWindowUpdate, flags, st.id, delta, nil)
	}
	if gone {
		st.remove()
	}
	if errors.Is(err, ErrSessionShutdown) {
		err = nil
	}
	return err
}

// LocalAddr is the tunnel connection's local address.
func (st *Stream) LocalAddr() net.Addr { return st.s.conn.LocalAddr() }

// RemoteAddr is the tunnel connection's remote address.
func (st *Stream) RemoteAddr() net.Addr { return st.s.conn.RemoteAddr() }

// SetDeadline sets both deadlines.
func (st *Stream) SetDeadline(t time.Time) error {
	st.mu.Lock()
	st.rdl, st.wdl = t, t
	st.wakeAllLocked()
	st.mu.Unlock()
	return nil
}

// SetReadDeadline sets when Reads, under way and later, fail with
// os.ErrDeadlineExceeded (zero: never).
func (st *Stream) SetReadDeadline(t time.Time) error {
	st.mu.Lock()
	st.rdl = t
	wakeLocked(&st.rwake)
	st.mu.Unlock()
	return nil
}

// SetWriteDeadline sets when Writes, under way and later, fail with
// os.ErrDeadlineExceeded (zero: never); a frame being written is
// bounded by the session's WriteTimeout instead.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	st.mu.Lock()
	st.wdl = t
	wakeLocked(&st.wwake)
	st.mu.Unlock()
	return nil
}
