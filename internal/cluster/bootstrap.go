package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/store"
)

// initCluster creates a new cluster with this node as its first manager.
func (c *Cluster) initCluster(ctx context.Context) error {
	addr, err := c.advertise("")
	if err != nil {
		return err
	}
	clusterID := c.cfg.ClusterID
	if clusterID == "" {
		clusterID = newID()
	}
	if c.root, err = ca.NewRootCA(clusterID, time.Now()); err != nil {
		return err
	}
	c.st = state{NodeID: newID(), ClusterID: clusterID, Role: RoleManager, Addr: addr,
		ClusterAddr: net.JoinHostPort(addr, strconv.Itoa(c.listenPort()))}
	c.st.Managers = []string{c.st.ClusterAddr}
	life := c.cfg.CertExpiry
	if life <= 0 {
		life = ca.DefaultNodeLifetime
	}
	nc, err := c.root.IssueNode(ca.NodeRequest{NodeID: c.st.NodeID, Role: ca.RoleManager, Hosts: certHosts(ca.RoleManager, addr, c.localNames()...), Lifetime: life, AllowShort: true})
	if err != nil {
		return err
	}
	lock, err := c.initSecrets()
	if err != nil {
		return err
	}
	if err := c.saveIdentity(nc); err != nil {
		return err
	}
	if c.store, err = store.Open(ctx, c.storeConfig(nil)); err != nil {
		return fmt.Errorf("cluster: open store: %w", err)
	}
	if err := c.seed(ctx, life); err != nil {
		return err
	}
	if err := c.seedLock(ctx, lock); err != nil {
		return err
	}
	c.log.Info("cluster initialised", "cluster", clusterID, "node", c.st.NodeID, "addr", c.st.ClusterAddr)
	return c.saveState()
}

// seed writes a new cluster's first records: the CA every manager shares,
// its settings, the join tokens and this node.
func (c *Cluster) seed(ctx context.Context, life time.Duration) error {
	tokens, err := ca.NewJoinTokens(c.root.CertPEM())
	if err != nil {
		return err
	}
	records := []struct {
		key string
		v   any
	}{
		{keyRoot, rootRecord{Cert: c.root.CertPEM(), Key: c.root.KeyPEM()}},
		{keyConfig, configRecord{NodeCertExpiry: life}},
		{keyTokens, tokensRecord{Tokens: tokens, Version: 1, Created: time.Now()}},
	}
	for _, r := range records {
		b, _ := json.Marshal(r.v)
		if err := c.store.Put(ctx, r.key, b); err != nil {
			return err
		}
	}
	now := time.Now().UTC()
	self := Node{ID: c.st.NodeID, Hostname: c.cfg.Hostname, Role: RoleManager, Availability: "active", Addr: c.st.Addr,
		ClusterAddr: c.st.ClusterAddr, Version: 1, CreatedAt: now, UpdatedAt: now}
	return store.NewCollection[Node](c.store, store.PrefixNodes).Put(ctx, self.ID, self)
}

// saveIdentity writes the root (with its key when held) and the node
// certificate, and loads the certificate for TLS.
func (c *Cluster) saveIdentity(nc ca.NodeCert) error {
	if err := c.saveRoot(c.root); err != nil {
		return err
	}
	if err := c.saveNodeCert(nc); err != nil {
		return err
	}
	return c.useCert(nc)
}

// useCert makes nc this node's certificate for TLS.
func (c *Cluster) useCert(nc ca.NodeCert) error {
	cert, err := nc.TLS()
	if err != nil {
		return err
	}
	c.kp = ca.NewKeypair(cert)
	return nil
}

// restart reloads a node from its data directory.
func (c *Cluster) restart(ctx context.Context) error {
	if err := c.loadIdentity(); err != nil {
		return err
	}
	if !c.IsManager() {
		c.dropManagerFiles() // a demoted manager that stopped half-way
		c.log.Info("cluster node restarted", "node", c.st.NodeID, "role", c.st.Role)
		return nil
	}
	if c.root.CanSign() && c.renewIn() == 0 {
		// A manager that was down past its renewal point signs its own,
		// so its store peers accept it again.
		if err := c.reissueSelf(ctx); err != nil {
			return err
		}
	}
	joining := len(c.st.StoreJoin) > 0
	s, err := store.Open(ctx, c.storeConfig(c.st.StoreJoin))
	if err != nil {
		return fmt.Errorf("cluster: open store: %w", err)
	}
	c.store = s
	if err := c.legacyDEK(ctx); err != nil {
		return err
	}
	if joining {
		if err := c.finishPromotion(ctx); err != nil {
			return err
		}
	}
	c.log.Info("cluster node restarted", "node", c.st.NodeID, "role", c.st.Role, "joined_store", joining)
	return nil
}

// loadIdentity reads the state, the root CA and this node's certificate.
func (c *Cluster) loadIdentity() error {
	if err := c.loadState(); err != nil {
		return err
	}
	if c.IsManager() {
		if err := c.loadSecrets(); err != nil {
			return err
		}
	}
	root, err := c.loadRoot()
	if err != nil {
		return err
	}
	c.root = root
	nc, err := c.loadNodeCert()
	if err != nil {
		return err
	}
	if err := c.setMemKey(nc.KeyPEM); err != nil {
		return err
	}
	return c.useCert(nc)
}

// finishPromotion runs once a promoted node has joined the store: the root
// key comes from the store, as on a manager join, and the node no longer
// needs to know where to join.
func (c *Cluster) finishPromotion(ctx context.Context) error {
	if err := c.loadRootKey(ctx); err != nil {
		return err
	}
	c.st.StoreJoin = nil
	return c.saveState()
}

// loadRootKey reads the CA key managers share through the store (with a
// rotation's next root, if one is under way) and saves it.
func (c *Cluster) loadRootKey(ctx context.Context) error {
	rr, _, err := c.readRoot(ctx)
	if err != nil {
		return err
	}
	return c.useRootRecord(rr)
}

// reissueSelf signs a fresh certificate for this manager with its own CA
// key, keeping the lifetime of the one it replaces.
func (c *Cluster) reissueSelf(ctx context.Context) error {
	life := ca.DefaultNodeLifetime
	if l := c.leaf(); l != nil {
		life = l.NotAfter.Sub(l.NotBefore) - 5*time.Minute // the backdate
	}
	nc, err := c.root.IssueNode(ca.NodeRequest{NodeID: c.st.NodeID, Role: ca.RoleManager, Hosts: certHosts(ca.RoleManager, c.st.Addr, c.localNames()...),
		Lifetime: max(life, ca.MinTestLifetime), AllowShort: true})
	if err != nil {
		return err
	}
	c.log.Info("certificate reissued locally at restart", "node", c.st.NodeID)
	return c.installCert(nc)
}
