package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/cluster/nodeapi"
	"github.com/shoal-dev/shoal/internal/store"
)

// peer is the verified identity of the node calling the cluster port.
func (c *Cluster) peer(w http.ResponseWriter, r *http.Request) (ca.Identity, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		httpError(w, http.StatusUnauthorized, "a node certificate is required")
		return ca.Identity{}, false
	}
	id, err := c.peerIdentity(*r.TLS)
	if errors.Is(err, ca.ErrRevoked) {
		rid := peerID(*r.TLS)
		c.refuseRemoved(rid, r.RemoteAddr)
		httpError(w, http.StatusGone, "node "+rid+": certificate revoked by docker node rm")
		return ca.Identity{}, false
	}
	if err != nil {
		httpError(w, http.StatusForbidden, err.Error())
		return ca.Identity{}, false
	}
	return id, true
}

// peerRecord reads the calling node's record from the store, answering
// 404 when it is gone.
func (c *Cluster) peerRecord(w http.ResponseWriter, r *http.Request) (Node, bool) {
	n, _, ok := c.peerRecordID(w, r, false)
	return n, ok
}

// peerRecordID is peerRecord with the caller's verified identity. With
// cached, the record is the one the sync loop last read (at most a second
// old, and fresh after a change made through this manager): what the
// nodes' polls read, every node every second or two. A record not cached
// yet (a node that just joined) is read from the store.
func (c *Cluster) peerRecordID(w http.ResponseWriter, r *http.Request, cached bool) (Node, ca.Identity, bool) {
	id, ok := c.peer(w, r)
	if !ok {
		return Node{}, id, false
	}
	if cached {
		c.mu.Lock()
		n, ok := c.cache[id.NodeID]
		c.mu.Unlock()
		if ok {
			return n, id, true
		}
	}
	it, err := c.nodes.Get(r.Context(), id.NodeID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		httpError(w, http.StatusNotFound, "node "+id.NodeID+" is not in the cluster")
		return Node{}, id, false
	case err != nil:
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return Node{}, id, false
	}
	return it.Value, id, true
}

// voterURLs are the client URLs of the store's voting members.
func (c *Cluster) voterURLs(ctx context.Context) []string {
	members, err := c.store.Members(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range members {
		if !m.Learner && m.Reachable {
			out = append(out, m.ClientURLs...)
		}
	}
	return out
}

// handleSelf tells a node its role as recorded, where the managers are,
// the roots to trust and whether to renew its certificate now; and records
// what the node shows of its certificates (its TLSInfo).
func (c *Cluster) handleSelf(w http.ResponseWriter, r *http.Request) {
	n, id, ok := c.peerRecordID(w, r, true)
	if !ok {
		return
	}
	ctx := r.Context()
	seen := &nodeapi.NodeTLS{TrustDigest: r.URL.Query().Get("trust"), IssuerSubject: id.IssuerSubject, IssuerPublicKey: id.IssuerPublicKey}
	if !seen.Equal(n.TLS) {
		c.recordTLS(ctx, n.ID, seen)
	}
	resp := selfResponse{Role: n.Role, Managers: c.managerAddrs(), Left: n.Left,
		Renew: !bytes.Equal(id.IssuerPublicKey, c.root.Issuer().RawSubjectPublicKeyInfo), CertExpiry: c.cachedLifetime(ctx), Wakes: true}
	if roots := c.root.TrustPEM(); seen.TrustDigest != trustDigest(roots) {
		resp.Roots = roots // only to a node that trusts other roots: every node asks every 2 s
	}
	writeJSONResp(w, resp)
}

// recordTLS keeps what a node showed of its certificates in its record
// (without a new spec version: it is the node's state, not its spec). The
// record it was compared with may be a second old: one that shows it
// already is not written again.
func (c *Cluster) recordTLS(ctx context.Context, id string, seen *nodeapi.NodeTLS) {
	err := c.write(ctx, func(ctx context.Context) error {
		return c.nodes.Modify(ctx, id, func(cur Node, exists bool) (Node, error) {
			if !exists {
				return cur, store.ErrNotFound
			}
			if seen.Equal(cur.TLS) {
				return cur, errUnchanged
			}
			cur.TLS = seen
			return cur, nil
		})
	})
	if errors.Is(err, errUnchanged) {
		return
	}
	if err == nil {
		c.mu.Lock()
		if n, ok := c.cache[id]; ok {
			n.TLS = seen // until the next sync pass: the next call must not write again
			c.cache[id] = n
		}
		c.mu.Unlock()
		return
	}
	c.log.Warn("cluster: record node TLS info", "node", id, "err", err)
}

// errUnchanged ends a Modify that has nothing to write.
var errUnchanged = errors.New("cluster: record unchanged")

// handleCertificate issues a new certificate to the calling node with the
// role of its record: renewal, promotion and demotion alike. A node
// becoming a manager has its cluster port recorded and is told the store's
// members to join through.
func (c *Cluster) handleCertificate(w http.ResponseWriter, r *http.Request) {
	var req certRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "bad certificate request: "+err.Error())
		return
	}
	n, ok := c.peerRecord(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	role := certRole(n.Role)
	if role == ca.RoleManager && req.ClusterAddr != "" && n.ClusterAddr != req.ClusterAddr {
		if err := c.setClusterAddr(ctx, n.ID, req.ClusterAddr); err != nil {
			httpError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		n.ClusterAddr = req.ClusterAddr
	}
	certPEM, err := c.sign(ctx, req.CSR, n.ID, role, n.Addr, n.Hostname)
	if err != nil {
		httpError(w, signStatus(err), err.Error())
		return
	}
	resp := certResponse{Role: n.Role, Cert: certPEM, Managers: c.managerAddrs()}
	if role == ca.RoleManager {
		resp.StoreURLs = c.voterURLs(ctx)
		resp.storeSecrets = c.shareSecrets()
		if n.ClusterAddr != "" && !slices.Contains(resp.Managers, n.ClusterAddr) {
			resp.Managers = append(resp.Managers, n.ClusterAddr)
		}
	}
	c.log.Info("certificate issued", "node", n.ID, "role", n.Role, "remote", r.RemoteAddr)
	writeJSONResp(w, resp)
}

// setClusterAddr records where a node being promoted serves its cluster port.
func (c *Cluster) setClusterAddr(ctx context.Context, id, addr string) error {
	err := c.write(ctx, func(ctx context.Context) error {
		return c.nodes.Modify(ctx, id, func(cur Node, exists bool) (Node, error) {
			if !exists {
				return cur, store.ErrNotFound
			}
			cur.ClusterAddr = addr
			return cur, nil
		})
	})
	if err == nil {
		c.syncOnce(ctx)
	}
	return err
}

// signStatus is the HTTP status of a certificate that could not be signed.
func signStatus(err error) int {
	if errors.Is(err, ca.ErrInvalidCSR) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}
