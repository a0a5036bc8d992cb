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
	"time"

	"github.com/hashicorp/yamux"
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

func (t Timing) yamux() *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = true
	c.KeepAliveInterval = cmp(t.KeepAliveInterval, DefaultKeepAliveInterval)
	c.ConnectionWriteTimeout = cmp(t.KeepAliveTimeout, DefaultKeepAliveTimeout)
	// Engine streams (logs, attach, image pulls) can be long and bulky;
	// a larger window keeps one slow stream from throttling throughput.
	c.MaxStreamWindowSize = 1 << 20
	c.LogOutput = nil
	c.Logger = log.New(io.Discard, "", 0)
	return c
}

func cmp(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}
