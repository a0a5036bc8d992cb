package authz

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
)

// Policy turns a request's connection into an Identity.
type Policy struct {
	// DefaultRole is the role of a verified certificate that neither
	// carries a shoal or node OU nor matches a rule: a certificate of the
	// user's own PKI. Admin by default, as dockerd with --tlsverify
	// grants any verified client everything.
	DefaultRole Role
	// Rules map certificates of other PKIs to roles; the first match wins,
	// before the certificate convention.
	Rules []Rule
}

// Rule gives the certificates with a CN (or carrying an OU) a role and scope.
type Rule struct {
	CN    string            `json:"cn,omitempty"`
	OU    string            `json:"ou,omitempty"`
	Role  string            `json:"role"`
	Scope map[string]string `json:"scope,omitempty"`

	role Role
}

// Default is the policy without flags: certificates without a role OU are admin.
func Default() *Policy { return &Policy{DefaultRole: RoleAdmin} }

// ErrPolicy marks a policy file that cannot be used.
var ErrPolicy = errors.New("authz: bad policy")

// LoadPolicy reads a policy file, JSON of the form
//
//	{"rules": [{"cn": "alice", "role": "operator", "scope": {"team": "web"}},
//	           {"ou": "ops", "role": "admin"}]}
//
// with def as the default role. An empty path is no rules.
func LoadPolicy(path string, def Role) (*Policy, error) {
	p := &Policy{DefaultRole: def}
	if path == "" {
		return p, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	if err := p.parse(b); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrPolicy, path, err)
	}
	return p, nil
}

func (p *Policy) parse(b []byte) error {
	var f struct {
		Rules []Rule `json:"rules"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return err
	}
	for i := range f.Rules {
		r := &f.Rules[i]
		if (r.CN == "") == (r.OU == "") {
			return fmt.Errorf("rule %d: give exactly one of cn and ou", i+1)
		}
		role, err := ParseRole(r.Role)
		if err != nil {
			return fmt.Errorf("rule %d: %w", i+1, err)
		}
		r.role = role
	}
	p.Rules = f.Rules
	return nil
}

// match is the first rule for leaf.
func (p *Policy) match(leaf *x509.Certificate) (Rule, bool) {
	for _, r := range p.Rules {
		if (r.CN != "" && r.CN == leaf.Subject.CommonName) ||
			(r.OU != "" && slices.Contains(leaf.Subject.OrganizationalUnit, r.OU)) {
			return r, true
		}
	}
	return Rule{}, false
}

// Identify is the identity of the client of r: by its verified
// certificate (rules, then the convention, then the default role), or,
// without one, an admin named after how it came (unix socket, plain TCP).
func (p *Policy) Identify(r *http.Request) Identity {
	if p == nil {
		p = Default()
	}
	if leaf := VerifiedLeaf(r.TLS); leaf != nil {
		id := p.fromLeaf(leaf)
		id.Addr = r.RemoteAddr
		return id
	}
	id := Identity{Role: RoleAdmin, Addr: r.RemoteAddr}
	switch {
	case isUnix(r):
		id.Name, id.Source = "unix socket client", SourceUnix
	case isLoopback(r.RemoteAddr):
		id.Name, id.Source = "loopback client "+r.RemoteAddr, SourceLoopbackPlain
	default:
		id.Name, id.Source = "unverified client "+r.RemoteAddr, SourceInsecure
	}
	return id
}

func (p *Policy) fromLeaf(leaf *x509.Certificate) Identity {
	if r, ok := p.match(leaf); ok {
		return Identity{Name: leaf.Subject.CommonName, Role: r.role, Scope: r.Scope, Source: SourceTLS}
	}
	if id, ok := fromConvention(leaf); ok {
		return id
	}
	// Scope OUs hold whatever the role: a scoped certificate without a
	// role OU is not widened to every container.
	return withScope(Identity{Name: leaf.Subject.CommonName, Role: p.DefaultRole, Source: SourceTLS}, leaf)
}

// isUnix reports whether r came in on a unix socket listener.
func isUnix(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return ok && a.Network() == "unix"
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Config is what the flags say: --authz-default-role and --authz-policy.
type Config struct {
	DefaultRole string // "" is admin
	PolicyFile  string // "" is no rules
}

// Load builds the policy the configuration describes.
func (c Config) Load() (*Policy, error) {
	def := RoleAdmin
	if c.DefaultRole != "" {
		var err error
		if def, err = ParseRole(c.DefaultRole); err != nil {
			return nil, fmt.Errorf("--authz-default-role: %w", err)
		}
	}
	return LoadPolicy(c.PolicyFile, def)
}
