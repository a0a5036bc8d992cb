package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
)

// protoTunnel is the ALPN name agents use; anything else on the cluster
// port is HTTP (bootstrap, join, the manager list).
const protoTunnel = "shoal-tunnel"

// serverTLS admits anyone for bootstrap and join, but a client that
// presents a certificate must hold a valid one of this cluster. A revoked
// one passes the handshake so that the node can be told why it is refused
// (dispatch and peer refuse it). The chain is verified in VerifyConnection
// against the roots trusted at the handshake, which a root CA rotation changes.
func (c *Cluster) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.kp.Get(), nil
		},
		ClientAuth: tls.RequestClientCert,
		NextProtos: []string{protoTunnel, "http/1.1"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			if _, err := c.peerIdentity(cs); !errors.Is(err, ca.ErrRevoked) {
				return err
			}
			return nil
		},
	}
}

// portIdle is how long the cluster port keeps an idle HTTP connection:
// longer than a node's poll (~15 s), whose calls go over TLS while its
// tunnel is down or its manager is of an older release.
const portIdle = 45 * time.Second

// serve runs the cluster port until ctx ends.
func (c *Cluster) serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", c.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("cluster: listen %s: %w", c.cfg.ListenAddr, err)
	}
	defer ln.Close()
	httpLn := newChanListener(ln.Addr())
	// A node's polls go through its tunnel (tunnelcalls.go): the TLS
	// connections of its rarer calls (joins, renewals) and of calls made
	// while its tunnel was down are closed once idle for a while.
	srv := &http.Server{Handler: markTunnelCalls(c.handler()), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: portIdle,
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				c.portConns.Add(1)
			case http.StateClosed, http.StateHijacked:
				c.portConns.Add(-1)
			}
		}}
	go srv.Serve(httpLn)
	defer shutdown(srv) // overlay.go
	context.AfterFunc(ctx, func() { ln.Close() })
	conf := c.serverTLS()
	c.log.Info("serving the cluster port", "addr", ln.Addr().String())
	for {
		raw, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go c.dispatch(ctx, raw, conf, httpLn)
	}
}

// dispatch completes a connection's handshake and hands it to the tunnels
// (ALPN shoal-tunnel) or to the HTTP server.
func (c *Cluster) dispatch(ctx context.Context, raw net.Conn, conf *tls.Config, httpLn *chanListener) {
	tc := tls.Server(raw, conf)
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		c.log.Debug("cluster port: handshake refused", "remote", raw.RemoteAddr(), "err", err)
		raw.Close()
		return
	}
	if tc.ConnectionState().NegotiatedProtocol == protoTunnel {
		if err := c.admitTunnel(tc); err != nil {
			tc.Close()
			return
		}
		// The tunnel's reader lives as long as the node is connected, and
		// a goroutine keeps, until collections shrink it, the stack its
		// deepest call needed: the handshake's (certificate checks) was
		// this one's. A goroutine of its own starts small.
		go func() {
			if err := c.tunnels.ServeConn(ctx, tc); err != nil {
				c.log.Debug("cluster port: tunnel ended", "remote", raw.RemoteAddr(), "err", err)
			}
		}()
		return
	}
	httpLn.put(tc)
}

// handler serves the cluster port's HTTP calls: the CA and joining for
// anyone, the rest for nodes with a certificate.
func (c *Cluster) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ca", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(c.root.CertPEM())
	})
	mux.HandleFunc("POST /join", c.handleJoin)
	mux.HandleFunc("GET /self", c.handleSelf)
	mux.HandleFunc("GET /overlay", c.handleOverlay)
	mux.HandleFunc("POST /certificate", c.handleCertificate)
	mux.HandleFunc("POST /leave", c.handleLeave)
	mux.HandleFunc("GET /managers", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := c.peer(w, r); !ok {
			return
		}
		writeJSONResp(w, c.managerAddrs())
	})
	return mux
}

// managerAddrs lists the managers' cluster ports, this one first.
func (c *Cluster) managerAddrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mgrAddrs != nil {
		return slices.Clone(c.mgrAddrs)
	}
	return c.managerAddrsLocked()
}

func (c *Cluster) managerAddrsLocked() []string {
	out := []string{c.st.ClusterAddr}
	for _, n := range c.cache {
		if n.Role == RoleManager && !n.Left && n.ClusterAddr != "" && !slices.Contains(out, n.ClusterAddr) {
			out = append(out, n.ClusterAddr)
		}
	}
	slices.Sort(out[1:])
	return out
}

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Message string `json:"message"`
	}{msg})
}

func writeJSONResp(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// chanListener hands connections accepted elsewhere to an http.Server.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) put(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error { l.once.Do(func() { close(l.done) }); return nil }

func (l *chanListener) Addr() net.Addr { return l.addr }
