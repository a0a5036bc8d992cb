package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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

// roleChange says whether this node, now in role cur, must change to the
// role its record gives (an unknown role is left alone).
func roleChange(cur, recorded string) (string, bool) {
	if recorded == cur || (recorded != RoleManager && recorded != RoleWorker) {
		return "", false
	}
	return recorded, true
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
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/self?trust="+trustDigest(c.root.TrustPEM()), nil)
		if err != nil {
			return selfResponse{}, err
		}
		var out selfResponse
		if err := doJSON(hc, req, &out); err != nil {
			if errors.Is(err, ErrRemoved) {
				return selfResponse{}, err // any manager's word is final
			}
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

// changeRole acts on a promotion or demotion: it gets a certificate for
// the new role, leaves the store (demotion) or records where to join it
// (promotion), and saves the new state; Run then returns ErrRoleChanged.
func (c *Cluster) changeRole(ctx context.Context, hc *http.Client, want string) error {
	if want == RoleWorker && c.store != nil {
		if err := c.leaveOwnStore(ctx); err != nil {
			return err
		}
		c.log.Info("cluster: role change: out of the store")
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
	c.log.Info("cluster: role change: certificate issued", "role", resp.Role)
	ns, err := nextState(c.st, want, req.ClusterAddr, resp)
	if err != nil {
		return err
	}
	if want == RoleWorker && c.store != nil {
		if closeWithin(func() { c.store.Close() }, storeCloseWait) {
			c.log.Info("cluster: role change: store closed")
		} else {
			c.log.Warn("cluster: role change: the store member is still shutting down; going on as a worker", "waited", storeCloseWait)
		}
	}
	if err := c.roleSecrets(want, resp.storeSecrets); err != nil {
		return err
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

// storeCloseWait bounds how long a demotion waits for the store member it
// left to shut down before it goes on as a worker.
const storeCloseWait = 15 * time.Second

// closeWithin runs stop, waiting at most d for it: a member already out
// of the cluster has nothing left to hand over, and a shutdown that hangs
// (etcd waits on its servers' streams) must not keep a demoted node from
// coming back as a worker. It reports whether stop returned in time.
func closeWithin(stop func(), d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		stop()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// leaveOwnStore makes sure a demoted manager's member is out of the store:
// the manager that took the demotion removed it already, unless it could
// not; then this node does, through the other members.
func (c *Cluster) leaveOwnStore(ctx context.Context) error {
	err := c.store.RemoveMember(ctx, c.st.NodeID)
	if err == nil || errors.Is(err, store.ErrNoMember) {
		return nil
	}
	select {
	case <-c.store.Stopped(): // removed: our member stopped itself
		return nil
	default:
		return fmt.Errorf("cluster: leave the store: %w", err)
	}
}

// nextState is the state of a node in cur moving to role want with the
// certificate reply resp: a new manager serves clusterAddr and joins the
// store through the members resp names; a new worker forgets both.
func nextState(cur state, want, clusterAddr string, resp certResponse) (state, error) {
	if resp.Role != want {
		return cur, fmt.Errorf("cluster: asked for a %s certificate, got %s", want, resp.Role)
	}
	ns := cur
	ns.Role, ns.Managers = want, resp.Managers
	if want == RoleManager {
		if len(resp.StoreURLs) == 0 {
			return cur, errors.New("cluster: no store member to join through")
		}
		ns.ClusterAddr, ns.StoreJoin = clusterAddr, resp.StoreURLs
		return ns, nil
	}
	ns.Managers = slices.DeleteFunc(slices.Clone(ns.Managers), func(a string) bool { return a == cur.ClusterAddr })
	ns.ClusterAddr, ns.StoreJoin = "", nil
	return ns, nil
}

// dropManagerFiles removes what only managers keep: the store's data and
// the root CA key.
func (c *Cluster) dropManagerFiles() {
	if err := os.RemoveAll(c.storeDir()); err != nil {
		c.log.Warn("cluster: remove store data", "err", err)
	}
	for _, f := range []string{ca.RootKeyFile, ca.RootChainFile, dekFile} {
		if err := os.Remove(filepath.Join(c.certDir(), f)); err != nil && !os.IsNotExist(err) {
			c.log.Warn("cluster: remove manager key", "file", f, "err", err)
		}
	}
}
