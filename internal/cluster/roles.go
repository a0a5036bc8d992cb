package cluster

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/store"
)

// ErrRoleChanged is returned by Run when this node has been promoted or
// demoted: its new identity is saved in the data directory, and the
// caller starts the node again (Start, Run) to come back in its new role.
var ErrRoleChanged = errors.New("cluster: this node's role changed")

// selfPeriod is how often a node asks a manager for its own record (role,
// managers); a promotion or demotion is acted on within about that long.
const selfPeriod = 2 * time.Second

// ---------------------------------------------------------------- manager side

// certLifetime is the validity of the certificates this cluster issues.
func (c *Cluster) certLifetime(ctx context.Context) time.Duration {
	kv, err := c.store.Get(ctx, store.PrefixCA+"config")
	if err != nil {
		return ca.DefaultNodeLifetime
	}
	var cr configRecord
	if json.Unmarshal(kv.Value, &cr) != nil || cr.NodeCertExpiry <= 0 {
		return ca.DefaultNodeLifetime
	}
	return cr.NodeCertExpiry
}

// sign issues a node certificate for a CSR with the identity given here.
func (c *Cluster) sign(ctx context.Context, csr []byte, id string, role ca.Role, addr string) ([]byte, error) {
	return c.root.SignCSR(csr, ca.NodeRequest{NodeID: id, Role: role, Hosts: certHosts(role, addr),
		Lifetime: c.certLifetime(ctx), AllowShort: true})
}

func certHosts(role ca.Role, addr string) []string {
	hosts := []string{addr}
	if role == ca.RoleManager {
		hosts = append(hosts, "127.0.0.1", "localhost")
	}
	return hosts
}

// peer is the verified identity of the node calling the cluster port.
func (c *Cluster) peer(w http.ResponseWriter, r *http.Request) (ca.Identity, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		httpError(w, http.StatusUnauthorized, "a node certificate is required")
		return ca.Identity{}, false
	}
	id, err := c.root.PeerIdentity(*r.TLS)
	if err != nil {
		httpError(w, http.StatusForbidden, err.Error())
		return ca.Identity{}, false
	}
	return id, true
}

// record reads the calling node's record, answering 404 when it is gone.
func (c *Cluster) peerRecord(w http.ResponseWriter, r *http.Request) (Node, bool) {
	id, ok := c.peer(w, r)
	if !ok {
		return Node{}, false
	}
	it, err := c.nodes.Get(r.Context(), id.NodeID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		httpError(w, http.StatusNotFound, "node "+id.NodeID+" is not in the cluster")
		return Node{}, false
	case err != nil:
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return Node{}, false
	}
	return it.Value, true
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

// handleSelf tells a node its role as recorded and where the managers are.
func (c *Cluster) handleSelf(w http.ResponseWriter, r *http.Request) {
	n, ok := c.peerRecord(w, r)
	if !ok {
		return
	}
	resp := selfResponse{Role: n.Role, Managers: c.managerAddrs()}
	writeJSONResp(w, resp)
}

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
		err := c.write(ctx, func(ctx context.Context) error {
			return c.nodes.Modify(ctx, n.ID, func(cur Node, exists bool) (Node, error) {
				if !exists {
					return cur, store.ErrNotFound
				}
				cur.ClusterAddr = req.ClusterAddr
				return cur, nil
			})
		})
		if err != nil {
			httpError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		n.ClusterAddr = req.ClusterAddr
		c.syncOnce(ctx)
	}
	certPEM, err := c.sign(ctx, req.CSR, n.ID, role, n.Addr)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, ca.ErrInvalidCSR) {
			status = http.StatusBadRequest
		}
		httpError(w, status, err.Error())
		return
	}
	resp := certResponse{Role: n.Role, Cert: certPEM, Managers: c.managerAddrs()}
	if role == ca.RoleManager {
		resp.StoreURLs = c.voterURLs(ctx)
		if n.ClusterAddr != "" && !slices.Contains(resp.Managers, n.ClusterAddr) {
			resp.Managers = append(resp.Managers, n.ClusterAddr)
		}
	}
	c.log.Info("certificate issued", "node", n.ID, "role", n.Role, "remote", r.RemoteAddr)
	writeJSONResp(w, resp)
}

// ---------------------------------------------------------------- node side

// myClusterAddr is the cluster port this node serves when a manager.
func (c *Cluster) myClusterAddr() string {
	return net.JoinHostPort(c.st.Addr, strconv.Itoa(c.listenPort()))
}

// askOrder lists the managers to ask about this node: the others first,
// since this node's own copy may be the one that is out of date.
func (c *Cluster) askOrder() []string {
	var out, self []string
	for _, a := range c.st.Managers {
		if a == c.st.ClusterAddr && c.st.ClusterAddr != "" {
			self = append(self, a)
			continue
		}
		out = append(out, a)
	}
	return append(out, self...)
}

func (c *Cluster) fetchSelf(ctx context.Context, hc *http.Client) (selfResponse, error) {
	var last error = errors.New("no manager known")
	for _, addr := range c.askOrder() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/self", nil)
		if err != nil {
			return selfResponse{}, err
		}
		var out selfResponse
		if err := doJSON(hc, req, &out); err != nil {
			last = err
			continue
		}
		slices.Sort(out.Managers)
		return out, nil
	}
	return selfResponse{}, last
}

// requestCert asks the managers in turn for a new certificate for this node.
func (c *Cluster) requestCert(ctx context.Context, hc *http.Client, req certRequest) (certResponse, error) {
	var last error = errors.New("no manager known")
	for _, addr := range c.askOrder() {
		var out certResponse
		if err := postJSON(ctx, hc, "https://"+addr+"/certificate", req, &out); err != nil {
			last = err
			continue
		}
		return out, nil
	}
	return certResponse{}, last
}

// leaf is this node's current certificate.
func (c *Cluster) leaf() *x509.Certificate {
	cert := c.kp.Get()
	if cert.Leaf != nil {
		return cert.Leaf
	}
	l, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil
	}
	return l
}

// renewIn is how long until this node's certificate is due for renewal.
func (c *Cluster) renewIn() time.Duration {
	l := c.leaf()
	if l == nil {
		return 0
	}
	return ca.RenewInCert(l, time.Now(), c.renewFrac)
}

// renew gets a new certificate from a manager (or, on a manager that
// cannot reach one, signs its own) and swaps it in: new tunnels and store
// connections present it, live ones stay up.
func (c *Cluster) renew(ctx context.Context, hc *http.Client) error {
	csr, key, err := ca.NewCSR()
	if err != nil {
		return err
	}
	resp, err := c.requestCert(ctx, hc, certRequest{CSR: csr, ClusterAddr: c.st.ClusterAddr})
	if err != nil && c.IsManager() && c.root.CanSign() {
		resp.Role = c.st.Role
		resp.Cert, err = c.sign(ctx, csr, c.st.NodeID, certRole(c.st.Role), c.st.Addr)
	}
	if err != nil {
		return err
	}
	if resp.Role != c.st.Role {
		return fmt.Errorf("cluster: renewal gave a %s certificate to a %s; the role change comes next", resp.Role, c.st.Role)
	}
	if err := c.installCert(ca.NodeCert{CertPEM: resp.Cert, KeyPEM: key}); err != nil {
		return err
	}
	c.renewFrac = ca.RenewFraction()
	l := c.leaf()
	c.log.Info("certificate renewed", "serial", l.SerialNumber.Text(16), "not_after", l.NotAfter.Format(time.RFC3339), "renew_in", c.renewIn().Round(time.Second))
	return nil
}

// installCert writes the certificate (the store reads its files at each
// handshake) and makes it the one tunnels and the cluster port present.
func (c *Cluster) installCert(nc ca.NodeCert) error {
	cert, err := nc.TLS()
	if err != nil {
		return err
	}
	if err := ca.SaveNodeCert(c.certDir(), nc); err != nil {
		return err
	}
	c.kp.Set(cert)
	return nil
}

// changeRole acts on a promotion or demotion: it gets a certificate for
// the new role, leaves the store (demotion) or records where to join it
// (promotion), and saves the new state; Run then returns ErrRoleChanged.
func (c *Cluster) changeRole(ctx context.Context, hc *http.Client, want string) error {
	ns := c.st
	if want == RoleWorker && c.store != nil {
		// The manager that took the demotion removed us already, unless it
		// could not: then we do (through the other members).
		err := c.store.RemoveMember(ctx, c.st.NodeID)
		if err != nil && !errors.Is(err, store.ErrNoMember) {
			select {
			case <-c.store.Stopped(): // removed: our member stopped itself
			default:
				return fmt.Errorf("cluster: leave the store: %w", err)
			}
		}
	}
	csr, key, err := ca.NewCSR()
	if err != nil {
		return err
	}
	req := certRequest{CSR: csr}
	if want == RoleManager {
		req.ClusterAddr = c.myClusterAddr()
	}
	resp, err := c.requestCert(ctx, hc, req)
	if err != nil {
		return err
	}
	if resp.Role != want {
		return fmt.Errorf("cluster: asked for a %s certificate, got %s", want, resp.Role)
	}
	ns.Role = want
	ns.Managers = resp.Managers
	if want == RoleManager {
		if len(resp.StoreURLs) == 0 {
			return errors.New("cluster: no store member to join through")
		}
		ns.ClusterAddr, ns.StoreJoin = req.ClusterAddr, resp.StoreURLs
	} else {
		ns.Managers = slices.DeleteFunc(ns.Managers, func(a string) bool { return a == c.st.ClusterAddr })
		ns.ClusterAddr, ns.StoreJoin = "", nil
		if c.store != nil {
			c.store.Close()
		}
	}
	if err := c.installCert(ca.NodeCert{CertPEM: resp.Cert, KeyPEM: key}); err != nil {
		return err
	}
	if err := c.saveStateOf(ns); err != nil {
		return err
	}
	if want == RoleWorker {
		c.dropManagerFiles()
	}
	c.log.Info("role changed", "node", c.st.NodeID, "from", c.st.Role, "to", want)
	return nil
}

// dropManagerFiles removes what only managers keep: the store's data and
// the root CA key.
func (c *Cluster) dropManagerFiles() {
	if err := os.RemoveAll(c.storeDir()); err != nil {
		c.log.Warn("cluster: remove store data", "err", err)
	}
	if err := os.Remove(filepath.Join(c.certDir(), ca.RootKeyFile)); err != nil && !os.IsNotExist(err) {
		c.log.Warn("cluster: remove root key", "err", err)
	}
}
