package orchestrator

import (
	"errors"
	"strings"
)

// ErrInvalidConstraint is matched (errors.Is) by every error
// ParseConstraints returns, so the API can answer 400 without reading text.
var ErrInvalidConstraint = errors.New("orchestrator: invalid placement constraint")

// ConstraintError is a malformed placement constraint, worded as swarm
// mode words it (the docker CLI users know these texts).
type ConstraintError struct{ Text string }

func (e *ConstraintError) Error() string { return e.Text }

// Is makes errors.Is(err, ErrInvalidConstraint) true.
func (e *ConstraintError) Is(target error) bool { return target == ErrInvalidConstraint }

// Constraint is one parsed placement constraint: key == value or key != value.
type Constraint struct {
	Key   string
	NotEq bool
	Value string
}

// constraintOps are tried in this order: an expression holding "==" is
// an equality even if it also holds "!=", as in swarm mode.
var constraintOps = [...]string{"==", "!="}

// ParseConstraints parses swarm mode's --constraint expressions, with its
// rules for keys and values and its error texts.
func ParseConstraints(exprs []string) ([]Constraint, error) {
	out := make([]Constraint, 0, len(exprs))
	for _, e := range exprs {
		c, err := parseConstraint(e)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func parseConstraint(e string) (Constraint, error) {
	for i, op := range constraintOps {
		k, v, ok := strings.Cut(e, op)
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !validKey(k) {
			return Constraint{}, &ConstraintError{"key '" + k + "' is invalid"}
		}
		if !validValue(v) {
			return Constraint{}, &ConstraintError{"value '" + v + "' is invalid"}
		}
		return Constraint{Key: k, NotEq: i == 1, Value: v}, nil
	}
	return Constraint{}, &ConstraintError{"constraint expected one operator from ==, !="}
}

// validKey: a letter or underscore, then one or more letters, digits,
// '-', '_' or '.'.
func validKey(k string) bool {
	if len(k) < 2 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i] | 0x20 // lower-cases letters; other accepted bytes are unaffected below
		letter := c >= 'a' && c <= 'z'
		switch {
		case letter || k[i] == '_':
		case i > 0 && (k[i] >= '0' && k[i] <= '9' || k[i] == '-' || k[i] == '.'):
		default:
			return false
		}
	}
	return true
}

// validValue: letters, digits, white space and : - _ . * ( ) ? + [ ] \ ^ $ | /
// (no operator characters such as < > ~ = !).
func validValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(":-_.*()?+[]\\^$|/ \t\n\f\r", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Label key prefixes of constraints and spread preferences.
const (
	nodeLabelPrefix   = "node.labels."
	engineLabelPrefix = "engine.labels."
)

// value is what the constraint's key names on n; known is false for a
// key swarm mode does not know (such a constraint fails on every node).
// A missing label reads as "", so == fails and != holds.
func (c *Constraint) value(n *Node) (v string, known bool) {
	k := c.Key
	switch {
	case strings.EqualFold(k, "node.id"):
		return n.ID, true
	case strings.EqualFold(k, "node.hostname"):
		return n.Hostname, true
	case strings.EqualFold(k, "node.role"):
		return string(n.Role), true
	case strings.EqualFold(k, "node.platform.os"):
		return n.OS, true
	case strings.EqualFold(k, "node.platform.arch"):
		return n.Arch, true
	}
	if l, ok := cutFold(k, nodeLabelPrefix); ok {
		return n.Labels[l], true // the label key itself is case-sensitive
	}
	if l, ok := cutFold(k, engineLabelPrefix); ok {
		return n.EngineLabels[l], true
	}
	return "", false
}

// matches reports whether n satisfies c. Values compare case-insensitively.
func (c *Constraint) matches(n *Node) bool {
	v, known := c.value(n)
	if !known {
		return false
	}
	return strings.EqualFold(c.Value, v) != c.NotEq
}

// cutFold cuts a case-insensitive prefix off s, leaving a non-empty rest.
func cutFold(s, prefix string) (string, bool) {
	if len(s) > len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return "", false
}
