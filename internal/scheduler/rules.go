package scheduler

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Label keys of classic Swarm that carry placement rules as JSON arrays of
// expressions, e.g. com.docker.swarm.constraints=["zone==eu","disk!=hdd"].
const (
	LabelConstraints = "com.docker.swarm.constraints"
	LabelAffinities  = "com.docker.swarm.affinities"
	LabelReschedule  = "com.docker.swarm.reschedule-policies"
)

// Reschedule policies accepted in reschedule:<policy> and LabelReschedule.
const (
	RescheduleOff           = "off"
	RescheduleOnNodeFailure = "on-node-failure"
)

// ErrInvalidRule is matched (errors.Is) by every error ParseRules returns,
// so the API layer can answer 400 without looking at the text.
var ErrInvalidRule = errors.New("scheduler: invalid placement rule")

// RuleError says which rule is malformed and why.
type RuleError struct {
	Kind   string // constraint, affinity, reschedule
	Expr   string // as the user wrote it
	Reason string
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Kind, e.Expr, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidRule) true.
func (e *RuleError) Is(target error) bool { return target == ErrInvalidRule }

// Op is the comparison of an expression.
type Op uint8

const (
	OpEq    Op = iota // ==
	OpNotEq           // !=
)

// Expr is one constraint or affinity: key, operator, value, and whether it
// is soft (==~ or !=~: dropped when no node satisfies it).
//
// Values are matched like classic Swarm: a value between slashes is a
// regular expression (unanchored: /^eu-/ anchors it), a value holding * or ?
// is a glob over the whole string, anything else must match exactly.
// Matching is case-sensitive.
type Expr struct {
	Key   string
	Op    Op
	Soft  bool
	Value string // as written, without the soft marker

	m matcher // compiled once at parse time
}

// String gives the expression back in the syntax the user wrote.
func (e *Expr) String() string {
	op := "=="
	if e.Op == OpNotEq {
		op = "!="
	}
	if e.Soft {
		op += "~"
	}
	return e.Key + op + e.Value
}

// matches reports whether one value matches the expression's pattern,
// ignoring the operator.
func (e *Expr) matches(v string) bool { return e.m.match(v) }

// Rules are the placement rules of one request.
type Rules struct {
	Constraints []Expr
	Affinities  []Expr
	Reschedule  string // "", RescheduleOff or RescheduleOnNodeFailure
}

// OnNodeFailure reports whether the container asked to be rescheduled
// when its node fails.
func (r *Rules) OnNodeFailure() bool { return r.Reschedule == RescheduleOnNodeFailure }

// Labels returns the rules in their label form (LabelConstraints,
// LabelAffinities, LabelReschedule), only for the kinds present. Storing
// them on the created container keeps env-given rules visible in inspect
// and available when the container must be rescheduled, as classic Swarm did.
func (r *Rules) Labels() map[string]string {
	out := map[string]string{}
	put := func(key string, exprs []Expr) {
		if len(exprs) == 0 {
			return
		}
		s := make([]string, len(exprs))
		for i := range exprs {
			s[i] = exprs[i].String()
		}
		b, _ := json.Marshal(s)
		out[key] = string(b)
	}
	put(LabelConstraints, r.Constraints)
	put(LabelAffinities, r.Affinities)
	if r.Reschedule != "" {
		b, _ := json.Marshal([]string{r.Reschedule})
		out[LabelReschedule] = string(b)
	}
	return out
}

func (r *Rules) empty() bool { return len(r.Constraints) == 0 && len(r.Affinities) == 0 }

// ParseRules extracts classic Swarm placement rules from a create request:
// env entries constraint:<expr>, affinity:<expr> and reschedule:<policy>,
// and the labels LabelConstraints, LabelAffinities and LabelReschedule
// (JSON arrays). It returns env without the rule entries, which must not
// reach the engine; when env holds none, env itself is returned. Labels are
// read, not changed. Every error matches ErrInvalidRule.
func ParseRules(env []string, labels map[string]string) (Rules, []string, error) {
	var (
		r      Rules
		policy []string
	)
	if err := parseLabel(labels, LabelConstraints, "constraint", &r.Constraints); err != nil {
		return Rules{}, nil, err
	}
	if err := parseLabel(labels, LabelAffinities, "affinity", &r.Affinities); err != nil {
		return Rules{}, nil, err
	}
	if v, ok := labels[LabelReschedule]; ok {
		if err := json.Unmarshal([]byte(v), &policy); err != nil {
			return Rules{}, nil, &RuleError{"reschedule", v, "label " + LabelReschedule + " must be a JSON array of strings"}
		}
	}

	clean := env
	for i, e := range env {
		kind, text, ok := ruleEntry(e)
		if !ok {
			if len(clean) < len(env) {
				clean = append(clean, e)
			}
			continue
		}
		if len(clean) == len(env) { // first rule entry: copy what came before
			clean = append(make([]string, 0, len(env)-1), env[:i]...)
		}
		switch kind {
		case "constraint", "affinity":
			x, err := ParseExpr(kind, text)
			if err != nil {
				return Rules{}, nil, err
			}
			if kind == "constraint" {
				r.Constraints = append(r.Constraints, x)
			} else {
				r.Affinities = append(r.Affinities, x)
			}
		case "reschedule":
			policy = append(policy, text)
		}
	}
	if len(clean) == len(env) && len(env) > 0 {
		clean = env
	}

	var err error
	if r.Reschedule, err = parsePolicy(policy); err != nil {
		return Rules{}, nil, err
	}
	return r, clean, nil
}

// ruleEntry splits "constraint:zone==eu" into its kind and expression.
func ruleEntry(e string) (kind, text string, ok bool) {
	for _, k := range [...]string{"constraint", "affinity", "reschedule"} {
		if len(e) > len(k) && e[len(k)] == ':' && e[:len(k)] == k {
			return k, e[len(k)+1:], true
		}
	}
	return "", "", false
}

func parseLabel(labels map[string]string, key, kind string, into *[]Expr) error {
	v, ok := labels[key]
	if !ok {
		return nil
	}
	var list []string
	if err := json.Unmarshal([]byte(v), &list); err != nil {
		return &RuleError{kind, v, "label " + key + ` must be a JSON array of strings, e.g. ["zone==eu"]`}
	}
	for _, s := range list {
		x, err := ParseExpr(kind, s)
		if err != nil {
			return err
		}
		*into = append(*into, x)
	}
	return nil
}

func parsePolicy(policy []string) (string, error) {
	out := ""
	for _, p := range policy {
		if p != RescheduleOff && p != RescheduleOnNodeFailure {
			return "", &RuleError{"reschedule", p, "the policy must be off or on-node-failure"}
		}
		if out != "" && out != p {
			return "", &RuleError{"reschedule", p, "conflicts with reschedule policy " + out}
		}
		out = p
	}
	return out, nil
}

// ParseExpr parses one expression such as "zone==eu", "node!=~n1",
// "image==/^redis:/". kind ("constraint" or "affinity") only words errors.
func ParseExpr(kind, s string) (Expr, error) {
	bad := func(reason string) (Expr, error) { return Expr{}, &RuleError{kind, s, reason} }
	i := strings.IndexAny(s, "=!")
	for i >= 0 && (i+1 >= len(s) || s[i+1] != '=') { // skip a lone = or !
		j := strings.IndexAny(s[i+1:], "=!")
		if j < 0 {
			i = -1
			break
		}
		i += 1 + j
	}
	if i < 0 {
		return bad("expected key==value or key!=value (soft: ==~, !=~)")
	}
	x := Expr{Key: s[:i], Op: OpEq}
	if s[i] == '!' {
		x.Op = OpNotEq
	}
	v := s[i+2:]
	if strings.HasPrefix(v, "~") {
		x.Soft, v = true, v[1:]
	}
	if x.Key == "" {
		return bad("missing key before the operator")
	}
	if !validKey(x.Key) {
		return bad(fmt.Sprintf("key %q may only hold letters, digits and . _ - /", x.Key))
	}
	if v == "" {
		return bad("missing value after the operator")
	}
	if v[0] == '=' || v[0] == '~' {
		return bad(fmt.Sprintf("value %q starts with %q; the operators are ==, !=, ==~ and !=~", v, v[0]))
	}
	x.Value = v
	m, err := compile(v)
	if err != nil {
		return bad(err.Error())
	}
	x.m = m
	return x, nil
}

func validKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', c == '_', c == '-', c == '/':
		default:
			return false
		}
	}
	return true
}

// matcher is a compiled value: exact, glob or regular expression.
type matcher struct {
	kind uint8 // matchExact, matchGlob, matchRegexp
	s    string
	re   *regexp.Regexp
}

const (
	matchExact uint8 = iota
	matchGlob
	matchRegexp
)

func compile(v string) (matcher, error) {
	if len(v) >= 2 && v[0] == '/' && v[len(v)-1] == '/' {
		if len(v) == 2 {
			return matcher{}, errors.New("empty regular expression //")
		}
		re, err := regexp.Compile(v[1 : len(v)-1])
		if err != nil {
			return matcher{}, fmt.Errorf("bad regular expression: %v", err)
		}
		return matcher{kind: matchRegexp, s: v, re: re}, nil
	}
	if strings.ContainsAny(v, "*?") {
		return matcher{kind: matchGlob, s: v}, nil
	}
	return matcher{kind: matchExact, s: v}, nil
}

// literal reports whether the value is matched by plain equality.
func (m *matcher) literal() bool { return m.kind == matchExact }

func (m *matcher) match(v string) bool {
	switch m.kind {
	case matchExact:
		return v == m.s
	case matchGlob:
		return glob(m.s, v)
	case matchRegexp:
		return m.re.MatchString(v)
	}
	return false
}

// glob matches s against pattern p where * is any run of characters and
// ? exactly one; everything else is literal. Iterative, no allocation.
func glob(p, s string) bool {
	px, sx := 0, 0
	starP, starS := -1, 0
	for sx < len(s) {
		if px < len(p) {
			switch p[px] {
			case '*':
				starP, starS = px, sx
				px++
				continue
			case '?':
				_, w := utf8.DecodeRuneInString(s[sx:])
				px, sx = px+1, sx+w
				continue
			default:
				if p[px] == s[sx] {
					px, sx = px+1, sx+1
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		_, w := utf8.DecodeRuneInString(s[starS:])
		starS += w
		px, sx = starP+1, starS
	}
	for px < len(p) && p[px] == '*' {
		px++
	}
	return px == len(p)
}
