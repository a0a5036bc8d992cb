package cluster

import (
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/cluster/nodeapi"
)

// Node is a node's record in the store (see nodeapi.Node).
type Node = nodeapi.Node

// Roles as the node API spells them.
const (
	RoleWorker  = nodeapi.RoleWorker
	RoleManager = nodeapi.RoleManager
)

func certRole(role string) ca.Role {
	if role == RoleManager {
		return ca.RoleManager
	}
	return ca.RoleWorker
}

func apiRole(r ca.Role) string {
	if r == ca.RoleManager {
		return RoleManager
	}
	return RoleWorker
}

// rootRecord is the CA material managers share through the store: the
// cluster's root and its key, and while a root rotation runs, the next
// root (see rotation.go).
type rootRecord struct {
	Cert []byte `json:"cert"`
	Key  []byte `json:"key"`
	// Chain is sent after each certificate issued: the root cross-signed
	// by the one before it (kept after a rotation for the store members,
	// which load their trusted roots only when they start).
	Chain    []byte       `json:"chain,omitempty"`
	Rotation *ca.Rotation `json:"rotation,omitempty"`
	// LastForced is the spec's ForceRotate that started the last rotation.
	LastForced uint64 `json:"last_forced,omitempty"`
	// Created is when the cluster was created, kept across rotations
	// (zero: the root's issue time, which was it until the first rotation).
	Created time.Time `json:"created,omitzero"`
}

// tokensRecord is the current join tokens and their version (for
// swarm update's version check).
type tokensRecord struct {
	Tokens  ca.JoinTokens `json:"tokens"`
	Version uint64        `json:"version"`
	Created time.Time     `json:"created"`
}

// revokedRecord lists the node IDs whose certificates are revoked.
type revokedRecord struct {
	IDs []string `json:"ids"`
}

// state is what a node keeps in its data directory to restart.
type state struct {
	NodeID      string   `json:"node_id"`
	ClusterID   string   `json:"cluster_id"`
	Role        string   `json:"role"`
	Addr        string   `json:"addr"`
	ClusterAddr string   `json:"cluster_addr,omitempty"`
	Managers    []string `json:"managers"`
	// StoreJoin is set on a node promoted to manager until it has joined
	// the store: the client URLs of the members to join through.
	StoreJoin []string `json:"store_join,omitempty"`
}

// joinRequest is what a joining node sends with its token.
type joinRequest struct {
	Token       string `json:"token"`
	CSR         []byte `json:"csr"`
	Hostname    string `json:"hostname"`
	Addr        string `json:"addr"`
	ClusterAddr string `json:"cluster_addr,omitempty"` // a joining manager's cluster port
}

// joinResponse is the node's identity and where the managers are.
type joinResponse struct {
	NodeID    string   `json:"node_id"`
	ClusterID string   `json:"cluster_id"`
	Role      string   `json:"role"`
	Cert      []byte   `json:"cert"`
	Managers  []string `json:"managers"`
	StoreURLs []string `json:"store_urls,omitempty"`
	storeSecrets
}

// configRecord is the cluster-wide settings (swarm update's CA config).
type configRecord struct {
	NodeCertExpiry time.Duration `json:"node_cert_expiry"`
	ForceRotate    uint64        `json:"force_rotate,omitempty"`
}

// selfResponse is what a manager tells a node of itself (GET /self): its
// role as the store has it, and where the managers are.
type selfResponse struct {
	Left      bool     `json:"left,omitempty"` // the node left (swarm leave): it stops
	Role      string   `json:"role"`
	Managers  []string `json:"managers"`
	StoreURLs []string `json:"store_urls,omitempty"`
	// Roots are the root certificates the node is to trust (PEM), Renew
	// says that its certificate is not from the cluster's signer (a root
	// rotation), CertExpiry is the lifetime certificates are issued for now.
	Roots      []byte        `json:"roots,omitempty"`
	Renew      bool          `json:"renew,omitempty"`
	CertExpiry time.Duration `json:"cert_expiry,omitempty"`
	// Wakes says that the manager wakes the node when what it would
	// answer changes (wake.go): the node may ask seldom.
	Wakes bool `json:"wakes,omitempty"`
}

// certRequest asks for a new certificate (renewal or role change) for the
// node the client certificate names; the role is the one of its record.
type certRequest struct {
	CSR         []byte `json:"csr"`
	ClusterAddr string `json:"cluster_addr,omitempty"` // the node's cluster port, should it be a manager
}

// certResponse is the new certificate and, for a manager, the store's members.
type certResponse struct {
	Role      string   `json:"role"`
	Cert      []byte   `json:"cert"`
	Managers  []string `json:"managers"`
	StoreURLs []string `json:"store_urls,omitempty"`
	storeSecrets
}
