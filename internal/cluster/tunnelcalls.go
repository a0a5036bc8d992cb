package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/internal/agent"
)

// A node asks the managers about itself (GET /self) and its overlay
// networks (GET /overlay) every ~15 s and when woken. Over a TLS
// connection of its own, kept open between calls, that is a second TLS
// connection per node on every manager, with its buffers and a goroutine:
// at 1,000 nodes ~30 MiB of a manager's memory for connections idle
// nearly all the time (closing them between calls would cost a TLS
// handshake per call instead). A manager that serves these calls through
// the node's tunnel says so on its answers (tunnelCallsHeader); the node
// then sends them as streams of that tunnel, one per call, and the
// manager keeps nothing between calls.
//
// The calls still present the node's current certificate: the tunnel was
// opened with the one the node held then, and a renewal since (a root
// rotation's, a role change's) must show at once, as it does on a new TLS
// connection. The node sends its certificate chain (certHeader); the
// manager verifies it as the TLS handshake would and requires it to name
// the node the tunnel belongs to.
const (
	tunnelCallsHeader = "Shoal-Tunnel-Calls"
	certHeader        = "Shoal-Node-Certificate"
)

// tunnelCallsHandler serves the calls nodes send through their tunnels:
// the cluster port's handler, for the calls a node makes every poll.
func (c *Cluster) tunnelCallsHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/self" && r.URL.Path != "/overlay" {
			httpError(w, http.StatusNotFound, "not served through the tunnel: "+r.Method+" "+r.URL.Path)
			return
		}
		tunnel, ok := agent.CallPeer(r.Context())
		if !ok {
			httpError(w, http.StatusUnauthorized, "a node certificate is required")
			return
		}
		chain, err := parseCertHeader(r.Header.Get(certHeader))
		if err != nil {
			httpError(w, http.StatusBadRequest, "bad "+certHeader+": "+err.Error())
			return
		}
		cs := tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, PeerCertificates: chain}
		if len(chain) > 0 && peerID(cs) != tunnel.NodeID {
			httpError(w, http.StatusForbidden, "the certificate sent is not that of the node whose tunnel carried it")
			return
		}
		c.tunnelCalls.Add(1)
		r.TLS = &cs // what peer verifies, as for a call over TLS
		h.ServeHTTP(w, r)
	})
}

// parseCertHeader reads a chain sent in certHeader: DER certificates,
// base64, leaf first, separated by commas.
func parseCertHeader(v string) ([]*x509.Certificate, error) {
	if v == "" {
		return nil, nil
	}
	var out []*x509.Certificate
	for _, p := range strings.Split(v, ",") {
		der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(p))
		if err != nil {
			return nil, err
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		out = append(out, cert)
	}
	return out, nil
}

// certHeaderValue is a chain (tls.Certificate.Certificate) as certHeader
// carries it.
func certHeaderValue(chain [][]byte) string {
	parts := make([]string, len(chain))
	for i, der := range chain {
		parts[i] = base64.StdEncoding.EncodeToString(der)
	}
	return strings.Join(parts, ",")
}

// markTunnelCalls says, on every answer of the cluster port, that this
// manager serves node calls through tunnels.
func markTunnelCalls(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(tunnelCallsHeader, "1")
		h.ServeHTTP(w, r)
	})
}

// nodeCalls carries a node's calls to the managers: GET /self and GET
// /overlay through the tunnel to a manager that said it serves them
// there, everything else (and those too while the tunnel is down or
// refuses) over TLS to its cluster port.
type nodeCalls struct {
	tls    *http.Transport                                          // the cluster port over TLS
	tun    *http.Transport                                          // one stream per call, no connection kept
	dial   func(ctx context.Context, addr string) (net.Conn, error) // the tunnel to the manager at addr
	tunnel func(addr string) uint64                                 // that tunnel's number while up (agent.Node.Tunnel), 0 if none
	cert   func() [][]byte                                          // the node's current chain

	mu sync.Mutex
	// Managers (cluster port addresses) that serve calls through
	// tunnels, each with the tunnel up when it said so: an answer is
	// only good for that tunnel. A manager that restarts as an older
	// release drops the tunnel, and an answer it gave before (a call
	// under way while it shut down) must not send streams through the
	// next one, which it would never accept: yamux closes a session
	// whose opened stream is not accepted within 75 s.
	via map[string]uint64

	throughTunnel atomic.Int64 // calls answered through a tunnel (tests)
}

func (c *Cluster) newNodeCalls(tr *http.Transport) *nodeCalls {
	n := &nodeCalls{tls: tr, via: map[string]uint64{},
		dial: func(ctx context.Context, addr string) (net.Conn, error) {
			if node := c.tunnelTo(addr); node != nil {
				return node.Dial(ctx)
			}
			return nil, agent.ErrNotConnected
		},
		tunnel: func(addr string) uint64 {
			if node := c.tunnelTo(addr); node != nil {
				return node.Tunnel()
			}
			return 0
		},
		cert: func() [][]byte { return c.kp.Get().Certificate },
	}
	n.tun = &http.Transport{
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return n.dial(ctx, addr)
		},
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: 10 * time.Second,
	}
	return n
}

func (n *nodeCalls) RoundTrip(req *http.Request) (*http.Response, error) {
	// The tunnel up as the call starts: what the answer says holds for it.
	tunnel := n.tunnel(req.URL.Host)
	if req.Method == http.MethodGet && (req.URL.Path == "/self" || req.URL.Path == "/overlay") && n.serves(req.URL.Host, tunnel) {
		tr := req.Clone(req.Context())
		tr.Header.Set(certHeader, certHeaderValue(n.cert()))
		resp, err := n.tun.RoundTrip(tr)
		if err == nil && resp.StatusCode != http.StatusNotFound {
			n.throughTunnel.Add(1)
			n.note(req.URL.Host, tunnel, resp.Header.Get(tunnelCallsHeader) == "1")
			return resp, nil
		}
		if err == nil {
			resp.Body.Close() // not served there after all: over TLS, as before
		}
		n.note(req.URL.Host, tunnel, false) // over TLS until an answer says otherwise
	}
	resp, err := n.tls.RoundTrip(req)
	if err == nil {
		n.note(req.URL.Host, tunnel, resp.Header.Get(tunnelCallsHeader) == "1")
	}
	return resp, err
}

// serves tells whether the manager at addr said, while tunnel was up,
// that it serves calls through tunnels.
func (n *nodeCalls) serves(addr string, tunnel uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return tunnel != 0 && n.via[addr] == tunnel
}

// note records what the manager at addr said in an answer to a call
// that started while tunnel was up (0: none was; ok then counts for no
// tunnel).
func (n *nodeCalls) note(addr string, tunnel uint64, ok bool) {
	n.mu.Lock()
	was := n.via[addr] != 0 && n.via[addr] == tunnel
	if ok && tunnel != 0 {
		n.via[addr] = tunnel
	} else {
		delete(n.via, addr)
	}
	n.mu.Unlock()
	if ok && tunnel != 0 && !was {
		// The connection the call came over stays idle from now on: let
		// the manager have it back (a renewal dials anew).
		n.tls.CloseIdleConnections()
	}
}

// CloseIdleConnections closes the TLS connections kept between calls
// (renew: the next calls present the new certificate).
func (n *nodeCalls) CloseIdleConnections() { n.tls.CloseIdleConnections() }

// tunnelTo is this node's agent for the manager at addr, nil if none runs.
func (c *Cluster) tunnelTo(addr string) *agent.Node {
	as := c.agentsNow.Load()
	if as == nil {
		return nil
	}
	return as.node(addr)
}
