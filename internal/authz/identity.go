// Package authz says who a Docker API client is and what it may do: the
// identity a client certificate (or the kind of connection) gives, its
// role (viewer < operator < admin), its label scope, and the checks of
// requests that would give a lesser role the host's root.
package authz

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Role is what a client may do, each role everything the one below may.
type Role int

// The roles, weakest first. RoleNone may only ping and ask the version.
const (
	RoleNone Role = iota
	RoleViewer
	RoleOperator
	RoleAdmin
)

var roleNames = []string{"none", "viewer", "operator", "admin"}

func (r Role) String() string {
	if r < 0 || int(r) >= len(roleNames) {
		return fmt.Sprintf("role(%d)", int(r))
	}
	return roleNames[r]
}

// ErrUnknownRole is ParseRole's error for a name that is no role.
var ErrUnknownRole = errors.New("authz: unknown role")

// ParseRole reads a role name: none, viewer, operator or admin.
func ParseRole(s string) (Role, error) {
	if i := slices.Index(roleNames, strings.ToLower(strings.TrimSpace(s))); i >= 0 {
		return Role(i), nil
	}
	return RoleNone, fmt.Errorf("%w %q (want admin, operator, viewer or none)", ErrUnknownRole, s)
}

// Source is how a client reached the API, which decides how far its
// identity can be trusted.
type Source string

// The sources. Only SourceTLS identifies a person; whoever reaches a unix
// socket or a plain TCP listener is already trusted as root (the socket's
// permissions, or an explicit opt-out of TLS, decided that).
const (
	SourceTLS           Source = "tls"            // a verified client certificate
	SourceUnix          Source = "unix"           // a unix socket
	SourceLoopbackPlain Source = "loopback-plain" // TCP without a verified certificate, from loopback
	SourceInsecure      Source = "insecure"       // TCP without a verified certificate, from elsewhere
)

// Identity is who made a request.
type Identity struct {
	Name string // the certificate's CN; for other sources a description
	Role Role
	// Scope limits the containers the client sees and acts on to those
	// whose labels hold every key=value here (nil: all containers).
	Scope  map[string]string
	Source Source
	Addr   string // the client's address
}

// String names the identity in messages: "alice (viewer)".
func (id Identity) String() string { return fmt.Sprintf("%s (%s)", id.Name, id.Role) }

// Scoped reports whether the identity is limited to labelled containers.
func (id Identity) Scoped() bool { return len(id.Scope) > 0 }

// InScope reports whether labels carry every key=value of the scope.
func (id Identity) InScope(labels map[string]string) bool {
	for k, v := range id.Scope {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ScopeFilters are the scope as Docker "label" filter values (k=v), sorted.
func (id Identity) ScopeFilters() []string {
	out := make([]string, 0, len(id.Scope))
	for _, k := range slices.Sorted(maps.Keys(id.Scope)) {
		out = append(out, k+"="+id.Scope[k])
	}
	return out
}

type ctxKey struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// From returns the identity the API server attached to a request's context.
func From(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// The organizational units of the certificate convention: one OU of a user
// certificate is its role (requested first, but DER sorts the OUs), the
// others "scope:key=value".
const (
	OUAdmin     = "shoal-admin"
	OUOperator  = "shoal-operator"
	OUViewer    = "shoal-viewer"
	ScopePrefix = "scope:"
	// Node certificates of the built-in cluster.
	OUNodeManager = "swarm-manager"
	OUNodeWorker  = "swarm-worker"
)

var ouRoles = map[string]Role{
	OUAdmin: RoleAdmin, OUOperator: RoleOperator, OUViewer: RoleViewer,
	OUNodeManager: RoleAdmin, OUNodeWorker: RoleViewer,
}

// VerifiedLeaf is the client certificate of a connection if it was
// verified against the server's CAs; nil for none (no TLS, --tls without
// --tlsverify, or no certificate sent). An unverified certificate is
// never read: anyone can write any name and OU into one.
func VerifiedLeaf(cs *tls.ConnectionState) *x509.Certificate {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	return cs.VerifiedChains[0][0]
}

// IdentityFromTLS reads the identity of a verified client certificate by
// the shoal convention alone; ok is false when the connection has no
// verified certificate or the certificate carries no shoal or node role
// (Policy.Identify then applies its rules and default role).
func IdentityFromTLS(cs *tls.ConnectionState) (id Identity, ok bool) {
	leaf := VerifiedLeaf(cs)
	if leaf == nil {
		return Identity{}, false
	}
	return fromConvention(leaf)
}

// fromConvention applies the certificate convention to a verified leaf.
// The role OU is looked for among all OUs, not only the first: X.509
// encodes the OUs of one name as a SET, which DER sorts, so the order a
// certificate was requested in is not the order it carries.
func fromConvention(leaf *x509.Certificate) (Identity, bool) {
	role, found, many := RoleNone, false, false
	for _, ou := range leaf.Subject.OrganizationalUnit {
		if r, ok := ouRoles[ou]; ok {
			many = found && r != role
			role, found = r, true
		}
	}
	if !found {
		return Identity{}, false
	}
	id := Identity{Name: leaf.Subject.CommonName, Role: role, Source: SourceTLS}
	if many {
		// Fail closed: two roles in one certificate is a mistake, and
		// picking one could pick the wrong one.
		id.Role = RoleNone
		return id, true
	}
	return withScope(id, leaf), true
}

// withScope adds the certificate's scope OUs to id. A certificate whose
// scope cannot be honoured exactly gets no role at all.
func withScope(id Identity, leaf *x509.Certificate) Identity {
	scope, err := parseScope(leaf.Subject.OrganizationalUnit)
	if err != nil {
		id.Role = RoleNone
		return id
	}
	id.Scope = scope
	return id
}

// errScope says a certificate's scope entries contradict each other.
var errScope = errors.New("authz: conflicting scope")

// parseScope reads the "scope:key=value" entries among ous (others are
// ignored); one key with two values is an error.
func parseScope(ous []string) (map[string]string, error) {
	var scope map[string]string
	for _, ou := range ous {
		kv, ok := strings.CutPrefix(ou, ScopePrefix)
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("%w: %q", errScope, ou)
		}
		if scope == nil {
			scope = map[string]string{}
		}
		if old, dup := scope[k]; dup && old != v {
			return nil, fmt.Errorf("%w: %s=%s and %s=%s", errScope, k, old, k, v)
		}
		scope[k] = v
	}
	return scope, nil
}
