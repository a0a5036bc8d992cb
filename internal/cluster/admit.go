package cluster

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/store"
)

// handleJoin admits a node presenting a join token (POST /join).
func (c *Cluster) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req joinRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "bad join request: "+err.Error())
		return
	}
	resp, err := c.admit(r.Context(), req, r.RemoteAddr)
	if err != nil {
		c.log.Warn("join refused", "remote", r.RemoteAddr, "hostname", req.Hostname, "err", err)
		httpError(w, joinStatus(err), err.Error())
		return
	}
	writeJSONResp(w, resp)
}

// joinStatus is the HTTP status a refused join is answered with.
func joinStatus(err error) int {
	switch {
	case errors.Is(err, ca.ErrInvalidToken), errors.Is(err, ca.ErrTokenCAMismatch):
		// A token for another cluster's CA is refused like a wrong
		// secret: the caller is not allowed in, nothing failed here.
		return http.StatusForbidden
	case errors.Is(err, ca.ErrInvalidCSR):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrNoQuorum):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// admit checks a join token, issues the node's certificate and records it.
func (c *Cluster) admit(ctx context.Context, req joinRequest, remote string) (*joinResponse, error) {
	tr, err := c.tokens(ctx)
	if err != nil {
		return nil, err
	}
	role, err := tr.Tokens.Admit(req.Token)
	if err != nil {
		return nil, err
	}
	id, err := nodeIDOf(req.CSR)
	if err != nil {
		return nil, err
	}
	if c.root.Revocations().IsRevoked(id) {
		return nil, fmt.Errorf("%w: node %s was removed; join with a new key", ca.ErrRevoked, id)
	}
	n := newRecord(id, req, role, remote, time.Now())
	certPEM, err := c.sign(ctx, req.CSR, n.ID, role, n.Addr, n.Hostname)
	if err != nil {
		return nil, err
	}
	var rev int64
	err = c.write(ctx, createdOnce(func(ctx context.Context) (err error) { rev, err = c.nodes.Create(ctx, n.ID, n); return err }))
	if errors.Is(err, store.ErrExists) {
		err = c.sameJoin(ctx, n)
	}
	if err != nil {
		return nil, err
	}
	c.cacheJoined(n, rev)
	c.log.Info("node joined", "node", n.ID, "hostname", req.Hostname, "role", n.Role, "addr", n.Addr)
	resp := &joinResponse{NodeID: n.ID, ClusterID: c.st.ClusterID, Role: n.Role, Cert: certPEM, Managers: c.managerAddrs()}
	if role == ca.RoleManager {
		if err := c.addStoreJoin(ctx, resp, n); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// cacheJoined adds a node just admitted to the cache until the next sync
// pass reads it: this manager's info and the node's first calls know it
// at once (the pass after its tunnel connects may come 200 ms later). A
// pass that read the records before rev, the record's, is not applied.
func (c *Cluster) cacheJoined(n Node, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cacheRev = max(c.cacheRev, rev)
	if _, ok := c.cache[n.ID]; !ok {
		c.cache[n.ID] = n
		c.mgrAddrs, c.peerAddrList = c.managerAddrsLocked(), c.peerAddrsLocked()
	}
}

// nodeIDOf is the ID of a node joining with csr: derived from its public
// key, so that a join tried again with the same request (the joiner did
// not get the answer to the first) names the same node.
func nodeIDOf(csrPEM []byte) (string, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return "", fmt.Errorf("%w: no request block", ca.ErrInvalidCSR)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ca.ErrInvalidCSR, err)
	}
	sum := sha256.Sum256(csr.RawSubjectPublicKeyInfo)
	n := new(big.Int).SetBytes(sum[:])
	n.Mod(n, new(big.Int).Exp(big.NewInt(36), big.NewInt(25), nil))
	s := n.Text(36)
	for len(s) < 25 {
		s = "0" + s
	}
	return s, nil
}

// sameJoin accepts a node record that exists already if an earlier try of
// this same join wrote it; any other record of that ID refuses the join.
func (c *Cluster) sameJoin(ctx context.Context, n Node) error {
	it, err := c.nodes.Get(ctx, n.ID, store.Linearizable())
	if err != nil {
		return err
	}
	cur := it.Value
	if cur.Left || cur.Hostname != n.Hostname || cur.Addr != n.Addr || cur.Role != n.Role || cur.ClusterAddr != n.ClusterAddr {
		return fmt.Errorf("node %s: %w (another join with this key)", n.ID, store.ErrExists)
	}
	return nil
}

// newRecord is the record of node id being admitted with role; its address
// is the one it says it has, else the one it called from.
func newRecord(id string, req joinRequest, role ca.Role, remote string, now time.Time) Node {
	addr := req.Addr
	if addr == "" {
		addr, _, _ = net.SplitHostPort(remote)
	}
	now = now.UTC()
	n := Node{ID: id, Hostname: req.Hostname, Role: apiRole(role), Availability: "active", Addr: addr, Version: 1, CreatedAt: now, UpdatedAt: now}
	if role == ca.RoleManager {
		n.ClusterAddr = req.ClusterAddr
	}
	return n
}

// addStoreJoin tells a joining manager the store members to join through
// and counts it among the managers.
func (c *Cluster) addStoreJoin(ctx context.Context, resp *joinResponse, n Node) error {
	members, err := c.store.Members(ctx)
	if err != nil {
		return err
	}
	for _, m := range members {
		if !m.Learner {
			resp.StoreURLs = append(resp.StoreURLs, m.ClientURLs...)
		}
	}
	if n.ClusterAddr != "" && !slices.Contains(resp.Managers, n.ClusterAddr) {
		resp.Managers = append(resp.Managers, n.ClusterAddr)
	}
	resp.storeSecrets = c.shareSecrets()
	return nil
}

// sign issues a node certificate for a CSR with the identity given here.
func (c *Cluster) sign(ctx context.Context, csr []byte, id string, role ca.Role, addr, hostname string) ([]byte, error) {
	return c.root.SignCSR(csr, ca.NodeRequest{NodeID: id, Role: role, Hosts: certHosts(role, addr, hostname),
		Lifetime: c.certLifetime(ctx), AllowShort: true})
}

// certHosts are a node certificate's extra SANs. A manager's also name it
// as the docker CLI dials its API (advertise address, host name, loopback),
// so that the node certificate serves the API under --tlsverify.
func certHosts(role ca.Role, addr string, hostnames ...string) []string {
	hosts := []string{addr}
	if role == ca.RoleManager {
		hosts = append(hosts, "127.0.0.1", "localhost")
		for _, h := range hostnames {
			if isDNSName(h) && !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
	}
	return hosts
}

// createdOnce makes a create of a record under a fresh random ID safe to
// retry: an attempt that ran out of time may still have been committed,
// and the key its retry then finds is the record it made (many nodes
// joining at once slow each commit past one attempt's time: a join was
// refused with "key already exists").
func createdOnce(create func(context.Context) error) func(context.Context) error {
	tried := false
	return func(ctx context.Context) error {
		err := create(ctx)
		if tried && errors.Is(err, store.ErrExists) {
			return nil
		}
		tried = true
		return err
	}
}
