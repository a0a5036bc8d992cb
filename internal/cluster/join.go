package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/store"
)

// join bootstraps trust from the token, asks a manager for a certificate
// and, with a manager token, joins the store.
func (c *Cluster) join(ctx context.Context) error {
	root, localIP, err := c.trustedRoot(ctx)
	if err != nil {
		return err
	}
	addr, err := c.advertise(localIP)
	if err != nil {
		return err
	}
	csr, key, err := ca.NewCSR()
	if err != nil {
		return err
	}
	clusterAddr := net.JoinHostPort(addr, strconv.Itoa(c.listenPort()))
	req := joinRequest{Token: c.cfg.Token, CSR: csr, Hostname: c.cfg.Hostname, Addr: addr, ClusterAddr: clusterAddr}
	resp, err := c.askToJoinRetrying(ctx, root, req)
	if err != nil {
		return err
	}
	c.root = root
	c.st = state{NodeID: resp.NodeID, ClusterID: resp.ClusterID, Role: resp.Role, Addr: addr, Managers: resp.Managers}
	if resp.Role == RoleManager {
		c.st.ClusterAddr = clusterAddr
		if err := c.joinSecrets(resp.storeSecrets); err != nil {
			return err
		}
	}
	if err := c.saveIdentity(ca.NodeCert{CertPEM: resp.Cert, KeyPEM: key}); err != nil {
		return err
	}
	if resp.Role == RoleManager {
		if err := c.joinStore(ctx, resp.StoreURLs); err != nil {
			return err
		}
	}
	c.log.Info("joined the cluster", "node", c.st.NodeID, "role", c.st.Role, "cluster", c.st.ClusterID)
	return c.saveState()
}

// trustedRoot fetches the cluster's root CA from the manager to join and
// trusts it only if it is the one the token pins.
func (c *Cluster) trustedRoot(ctx context.Context) (*ca.RootCA, string, error) {
	tok, err := ca.ParseJoinToken(c.cfg.Token)
	if err != nil {
		return nil, "", err
	}
	rootPEM, localIP, err := fetchCA(ctx, c.cfg.JoinAddr)
	if err != nil {
		return nil, "", err
	}
	if !tok.MatchesCA(rootPEM) {
		return nil, "", fmt.Errorf("%w: the manager at %s presented a root CA whose digest is not the token's", ca.ErrTokenCAMismatch, c.cfg.JoinAddr)
	}
	root, err := ca.LoadRootCA(rootPEM, nil)
	return root, localIP, err
}

// askToJoin presents the token and CSR to the manager, which it now
// authenticates with the trusted root.
func (c *Cluster) askToJoin(ctx context.Context, root *ca.RootCA, req joinRequest) (joinResponse, error) {
	var resp joinResponse
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS12, RootCAs: root.Pool(), ServerName: string(ca.RoleManager), NextProtos: []string{"http/1.1"},
	}}}
	defer hc.CloseIdleConnections()
	err := postJSON(ctx, hc, "https://"+c.cfg.JoinAddr+"/join", req, &resp)
	return resp, err
}

// joinBackoff paces the tries of a join the manager could not admit for
// now: the first wait, the longest, and how long to keep trying.
var joinBackoff = struct{ first, max, total time.Duration }{time.Second, 16 * time.Second, 3 * time.Minute}

// askToJoinRetrying asks to join until the manager admits or refuses this
// node, trying again with backoff while it only cannot admit it now (it
// answered 503: its store did not commit the node record in time, on a
// loaded manager with many nodes joining) or did not answer. The request
// is the same each time: the manager derives the node ID from its key, so
// a try whose answer was lost but whose record was written is taken up by
// the next one, and no stray record is left.
func (c *Cluster) askToJoinRetrying(ctx context.Context, root *ca.RootCA, req joinRequest) (joinResponse, error) {
	start, wait := time.Now(), joinBackoff.first
	for attempt := 1; ; attempt++ {
		resp, err := c.askToJoin(ctx, root, req)
		if err == nil || !isTransient(err) || ctx.Err() != nil || time.Since(start)+wait > joinBackoff.total {
			return resp, err
		}
		d := wait/2 + rand.N(wait/2+1) // jitter: nodes refused together do not come back together
		c.log.Warn("join: the manager cannot admit this node now; trying again", "attempt", attempt, "in", d.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return resp, err
		case <-time.After(d):
		}
		wait = min(2*wait, joinBackoff.max)
	}
}

// transientError is a call to a manager that another try may get through:
// the manager answered 503 (no quorum, which a loaded store also answers
// when a write takes too long) or did not answer at all.
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

func isTransient(err error) bool {
	var te transientError
	return errors.As(err, &te)
}

// joinStore adds a new manager's member to the store and takes the CA key
// the managers share from it.
func (c *Cluster) joinStore(ctx context.Context, members []string) error {
	s, err := store.Open(ctx, c.storeConfig(members))
	if err != nil {
		return fmt.Errorf("cluster: join store: %w", err)
	}
	c.store = s
	return c.loadRootKey(ctx)
}

// fetchCA reads the cluster's root CA from a manager without trusting it
// yet (the caller checks it against the token), and returns the local IP
// this host reached the manager from.
func fetchCA(ctx context.Context, addr string) ([]byte, string, error) {
	var localIP string
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}},
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, network, a)
			if err == nil {
				localIP, _, _ = net.SplitHostPort(conn.LocalAddr().String())
			}
			return conn, err
		},
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Timeout: 15 * time.Second, Transport: tr}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/ca", nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("cluster: reach manager %s: %w", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("cluster: fetch CA from %s: %d %v", addr, resp.StatusCode, err)
	}
	return b, localIP, nil
}

func postJSON(ctx context.Context, hc *http.Client, url string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return doJSON(hc, req, out)
}

func doJSON(hc *http.Client, req *http.Request, out any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return transientError{fmt.Errorf("cluster: %s %s: %w", req.Method, req.URL.Host, err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct{ Message string }
		_ = json.Unmarshal(body, &e)
		switch resp.StatusCode {
		case http.StatusGone:
			return fmt.Errorf("%w: %s", ErrRemoved, e.Message)
		case http.StatusServiceUnavailable:
			return transientError{fmt.Errorf("%w: %s", ErrJoinRefused, e.Message)}
		}
		return fmt.Errorf("%w: %s", ErrJoinRefused, e.Message)
	}
	return json.Unmarshal(body, out)
}
