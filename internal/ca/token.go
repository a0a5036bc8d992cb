package ca

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// Join tokens use Docker swarm mode's format so users recognise them:
// SWMTKN-1-<digest>-<secret>, digest the SHA-256 of the root CA bundle and
// secret 128 random bits, both in base36 zero-padded to fixed widths.
const (
	tokenPrefix  = "SWMTKN"
	tokenVersion = "1"
	digestLen    = 50 // ceil(log36(2^256))
	secretLen    = 25 // ceil(log36(2^128))
	secretBytes  = 16
)

// Token errors.
var (
	ErrInvalidToken    = errors.New("ca: invalid join token")
	ErrTokenCAMismatch = errors.New("ca: join token does not match the cluster root CA")
)

// JoinToken is a parsed join token.
type JoinToken struct {
	Digest string // base36 SHA-256 of the root CA bundle, 50 characters
	Secret string // base36 random secret, 25 characters
}

// String renders the token in swarm format.
func (t JoinToken) String() string {
	return tokenPrefix + "-" + tokenVersion + "-" + t.Digest + "-" + t.Secret
}

// MatchesCA reports whether the token pins this root CA bundle: what a
// joining node checks before trusting a CA fetched over an unauthenticated channel.
func (t JoinToken) MatchesCA(rootPEM []byte) bool {
	return subtle.ConstantTimeCompare([]byte(t.Digest), []byte(CADigest(rootPEM))) == 1
}

// NewJoinToken returns a token for the root CA bundle with a fresh secret.
func NewJoinToken(rootPEM []byte) (JoinToken, error) {
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return JoinToken{}, fmt.Errorf("ca: token secret: %w", err)
	}
	return JoinToken{
		Digest: CADigest(rootPEM),
		Secret: base36Pad(new(big.Int).SetBytes(b[:]), secretLen),
	}, nil
}

// ParseJoinToken validates the shape of s: prefix, version, and the exact
// widths and alphabet of digest and secret.
func ParseJoinToken(s string) (JoinToken, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 4 || parts[0] != tokenPrefix || parts[1] != tokenVersion {
		return JoinToken{}, fmt.Errorf("%w: want %s-%s-<digest>-<secret>", ErrInvalidToken, tokenPrefix, tokenVersion)
	}
	if len(parts[2]) != digestLen || !isBase36(parts[2]) {
		return JoinToken{}, fmt.Errorf("%w: malformed CA digest", ErrInvalidToken)
	}
	if len(parts[3]) != secretLen || !isBase36(parts[3]) {
		return JoinToken{}, fmt.Errorf("%w: malformed secret", ErrInvalidToken)
	}
	return JoinToken{Digest: parts[2], Secret: parts[3]}, nil
}

// JoinTokens holds the cluster's current worker and manager tokens.
// Rotating one replaces its secret, so the old token admits nobody.
type JoinTokens struct {
	Worker  JoinToken
	Manager JoinToken
}

// NewJoinTokens creates both tokens for a root CA bundle.
func NewJoinTokens(rootPEM []byte) (JoinTokens, error) {
	w, err := NewJoinToken(rootPEM)
	if err != nil {
		return JoinTokens{}, err
	}
	m, err := NewJoinToken(rootPEM)
	if err != nil {
		return JoinTokens{}, err
	}
	return JoinTokens{Worker: w, Manager: m}, nil
}

// Rotate gives role's token a fresh secret and returns the new set.
func (t JoinTokens) Rotate(role Role, rootPEM []byte) (JoinTokens, error) {
	fresh, err := NewJoinToken(rootPEM)
	if err != nil {
		return JoinTokens{}, err
	}
	switch role {
	case RoleWorker:
		t.Worker = fresh
	case RoleManager:
		t.Manager = fresh
	default:
		return JoinTokens{}, fmt.Errorf("%w: %q", ErrInvalidRole, role)
	}
	return t, nil
}

// Admit returns the role a presented token grants. Both secrets are
// compared in constant time, and both comparisons always run, so timing
// reveals neither secret nor which role matched.
func (t JoinTokens) Admit(presented string) (Role, error) {
	tok, err := ParseJoinToken(presented)
	if err != nil {
		return "", err
	}
	if tok.Digest != t.Worker.Digest && tok.Digest != t.Manager.Digest {
		return "", ErrTokenCAMismatch
	}
	w := subtle.ConstantTimeCompare([]byte(tok.String()), []byte(t.Worker.String()))
	m := subtle.ConstantTimeCompare([]byte(tok.String()), []byte(t.Manager.String()))
	switch {
	case m == 1:
		return RoleManager, nil
	case w == 1:
		return RoleWorker, nil
	}
	return "", fmt.Errorf("%w: unknown or rotated secret", ErrInvalidToken)
}

func base36Pad(n *big.Int, width int) string {
	s := n.Text(36)
	if len(s) >= width {
		return s
	}
	return strings.Repeat("0", width-len(s)) + s
}

func isBase36(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}
