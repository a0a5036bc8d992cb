// Package agent carries the managers' requests to a node's Docker engine
// over one outbound mutual-TLS connection that the node dials, multiplexed
// with yamux: the engine never listens on TCP and a node behind NAT works.
// The node side serves each stream by proxying it to the local engine; the
// manager side accepts these tunnels and dials the engine through them.
package agent

import (
	"errors"
	"io"
	"log"
	"net"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/shoal-dev/shoal/internal/agent/tunmux"
)

// Errors returned by this package; test with errors.Is.
var (
	ErrNotConnected = errors.New("agent: node not connected")
	ErrClosed       = errors.New("agent: closed")
	ErrIdentity     = errors.New("agent: peer identity refused")
)

// Heartbeats: each side pings the other every KeepAliveInterval and drops
// the tunnel when a ping is unanswered for KeepAliveTimeout, so a dead
// node is noticed within about three heartbeat periods.
const (
	DefaultKeepAliveInterval = 5 * time.Second
	DefaultKeepAliveTimeout  = 10 * time.Second
)

// Timing tunes the tunnel's heartbeats; zero fields take the defaults.
type Timing struct {
	KeepAliveInterval time.Duration
	KeepAliveTimeout  time.Duration
}

// maxStreamWindow is how much a stream may receive ahead of its reader,
// on both ends of a tunnel.
const maxStreamWindow = 1 << 20

func (t Timing) yamux() *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = true
	c.KeepAliveInterval = cmp(t.KeepAliveInterval, DefaultKeepAliveInterval)
	c.ConnectionWriteTimeout = cmp(t.KeepAliveTimeout, DefaultKeepAliveTimeout)
	// Engine streams (logs, attach, image pulls) can be long and bulky;
	// a larger window keeps one slow stream from throttling throughput.
	c.MaxStreamWindowSize = maxStreamWindow
	c.LogOutput = nil
	c.Logger = log.New(io.Discard, "", 0)
	return c
}

// mux is the manager's side (tunmux): it sends no pings of its own. Every
// node pings its manager each KeepAliveInterval (and has since the first
// release), so a manager that hears nothing from a node for an interval
// and a timeout drops the tunnel (silentAfter) without pinging a thousand
// nodes each interval itself.
func (t Timing) mux() tunmux.Config {
	return tunmux.Config{
		MaxStreamWindow: maxStreamWindow,
		// A write that waits this long means a node that reads nothing
		// for longer than its silence would take to end the tunnel: a
		// slow node is not cut off by its manager's writes first.
		WriteTimeout: 2 * t.silentAfter(),
	}
}

// silentAfter is how long a manager waits for anything from a node
// before it counts the tunnel dead: a ping unanswered for the timeout.
func (t Timing) silentAfter() time.Duration {
	return cmp(t.KeepAliveInterval, DefaultKeepAliveInterval) + cmp(t.KeepAliveTimeout, DefaultKeepAliveTimeout)
}

// readDeadline fails a read once nothing has been read for idle: each
// read moves the connection's read deadline to idle from then (at most
// every idle/8, which bounds the syscalls and keeps the wait within
// 7/8·idle and idle of the last byte).
type readDeadline struct {
	net.Conn
	idle time.Duration
	set  time.Time // when the deadline was last moved
}

func (c *readDeadline) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(c.set) >= c.idle/8 {
		if err := c.Conn.SetReadDeadline(now.Add(c.idle)); err != nil {
			return 0, err
		}
		c.set = now
	}
	return c.Conn.Read(p)
}

func cmp(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}
