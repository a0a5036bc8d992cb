package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
)

// refusedLogEvery bounds how often the refusal of one removed node is
// logged: its agent keeps knocking until it learns it was removed (one
// /self call, about selfPeriod), and an old agent that never learns it
// would otherwise fill the log.
const refusedLogEvery = time.Minute

// peerID is the node ID a client certificate names, verified or not.
func peerID(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return cs.PeerCertificates[0].Subject.CommonName
}

// admitTunnel refuses the tunnel of a removed node (revoked certificate)
// or of a node that left; the node learns why from its next /self call.
func (c *Cluster) admitTunnel(tc *tls.Conn) error {
	cs := tc.ConnectionState()
	id, err := c.peerIdentity(cs)
	if errors.Is(err, ca.ErrRevoked) {
		c.refuseRemoved(peerID(cs), tc.RemoteAddr().String())
		return err
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	n, ok := c.cache[id.NodeID]
	c.mu.Unlock()
	if ok && n.Left {
		return fmt.Errorf("%w: node %s left the cluster", ca.ErrRevoked, id.NodeID)
	}
	return nil
}

// refuseRemoved logs, at most once per refusedLogEvery per node, that a
// removed node tried to come back.
func (c *Cluster) refuseRemoved(id, remote string) {
	if !c.shouldLogRefusal(id, time.Now()) {
		return
	}
	host, _, _ := net.SplitHostPort(remote)
	c.log.Warn("refused a node removed from the cluster (docker node rm): its certificate is revoked", "node", id, "remote", host)
}

func (c *Cluster) shouldLogRefusal(id string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if last, ok := c.refused[id]; ok && now.Sub(last) < refusedLogEvery {
		return false
	}
	c.refused[id] = now
	return true
}
