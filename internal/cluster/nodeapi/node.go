// Package nodeapi is swarm mode's node API over the built-in cluster's node
// records, as decisions without I/O: finding a node by reference, checking
// and applying a spec update, whether a demotion or a removal may go ahead,
// and how a record reads as a swarm.Node. The cluster package reads the
// store, the store's members and the engines, and passes what it found in.
package nodeapi

import (
	"bytes"
	"errors"
	"time"
)

// Node is a node's record in the store: the desired state the node API
// edits (role, availability, labels) and what the node said of itself
// when it joined.
type Node struct {
	ID           string            `json:"id"`
	Hostname     string            `json:"hostname"`
	Role         string            `json:"role"`         // "worker" or "manager"
	Availability string            `json:"availability"` // "active", "pause", "drain"
	Labels       map[string]string `json:"labels,omitempty"`
	Addr         string            `json:"addr"`                   // IP the node joined from
	ClusterAddr  string            `json:"cluster_addr,omitempty"` // managers: host:port of the cluster port
	Version      uint64            `json:"version"`                // bumped by each spec update
	CreatedAt    time.Time         `json:"created_at"`
	UpdatedAt    time.Time         `json:"updated_at"`

	// Left is set when the node left the cluster (swarm leave): it shows
	// Down until docker node rm, as in swarm mode.
	Left bool `json:"left,omitempty"`

	// TLS is what the node last showed of its certificates (nil: nothing yet).
	TLS *NodeTLS `json:"tls,omitempty"`
}

// NodeTLS is what a node showed a manager of its certificates: the digest
// of the roots it trusts (as it says) and the issuer of the certificate it
// presented (as verified); swarm mode's TLSInfo, and how a root rotation
// knows which nodes have moved.
type NodeTLS struct {
	TrustDigest     string `json:"trust_digest,omitempty"`
	IssuerSubject   []byte `json:"issuer_subject,omitempty"`
	IssuerPublicKey []byte `json:"issuer_public_key,omitempty"`
}

// Equal says whether t and o say the same.
func (t *NodeTLS) Equal(o *NodeTLS) bool {
	if t == nil || o == nil {
		return t == o
	}
	return t.TrustDigest == o.TrustDigest && bytes.Equal(t.IssuerSubject, o.IssuerSubject) && bytes.Equal(t.IssuerPublicKey, o.IssuerPublicKey)
}

// Roles as the node API spells them.
const (
	RoleWorker  = "worker"
	RoleManager = "manager"
)

// ErrOutOfSequence is a node or swarm update whose version is not the
// current one (swarm mode's words).
var ErrOutOfSequence = errors.New("update out of sequence")

// Member is what the decisions need of a store member (a manager).
type Member struct {
	Learner   bool // still catching up; not counted for the quorum
	Leader    bool
	Reachable bool
}
