package scheduler

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseExpr(t *testing.T) {
	tests := []struct {
		in    string
		key   string
		op    Op
		soft  bool
		value string
		kind  uint8
	}{
		{"zone==eu", "zone", OpEq, false, "eu", matchExact},
		{"zone!=eu", "zone", OpNotEq, false, "eu", matchExact},
		{"zone==~eu", "zone", OpEq, true, "eu", matchExact},
		{"zone!=~eu", "zone", OpNotEq, true, "eu", matchExact},
		{"node==web-*", "node", OpEq, false, "web-*", matchGlob},
		{"node==web-?", "node", OpEq, false, "web-?", matchGlob},
		{"image==/^redis:[0-9]+$/", "image", OpEq, false, "/^redis:[0-9]+$/", matchRegexp},
		{"com.example.role==front end", "com.example.role", OpEq, false, "front end", matchExact},
		{"node.labels.team!=~core", "node.labels.team", OpNotEq, true, "core", matchExact},
		{"k==a=b", "k", OpEq, false, "a=b", matchExact},
	}
	for _, tt := range tests {
		x, err := ParseExpr("constraint", tt.in)
		if err != nil {
			t.Errorf("ParseExpr(%q): %v", tt.in, err)
			continue
		}
		if x.Key != tt.key || x.Op != tt.op || x.Soft != tt.soft || x.Value != tt.value || x.m.kind != tt.kind {
			t.Errorf("ParseExpr(%q) = %+v, want key %q op %d soft %v value %q kind %d", tt.in, x, tt.key, tt.op, tt.soft, tt.value, tt.kind)
		}
		if x.String() != tt.in {
			t.Errorf("String() = %q, want %q", x.String(), tt.in)
		}
	}
}

func TestParseExprMalformed(t *testing.T) {
	tests := []struct{ in, want string }{
		{"zone", "expected key==value"},
		{"zone=eu", "expected key==value"},
		{"zone=~eu", "expected key==value"},
		{"==eu", "missing key"},
		{"zone==", "missing value"},
		{"zone==~", "missing value"},
		{"zone===eu", `starts with '='`},
		{"zone!==eu", `starts with '='`},
		{"zo ne==eu", "may only hold"},
		{"zone==/[a-/", "bad regular expression"},
		{"zone==//", "empty regular expression"},
	}
	for _, tt := range tests {
		_, err := ParseExpr("constraint", tt.in)
		if err == nil {
			t.Errorf("ParseExpr(%q) succeeded, want error containing %q", tt.in, tt.want)
			continue
		}
		if !errors.Is(err, ErrInvalidRule) {
			t.Errorf("ParseExpr(%q) error %v does not match ErrInvalidRule", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `invalid constraint "`+tt.in+`"`) {
			t.Errorf("ParseExpr(%q) error %q, want it to quote the rule and say %q", tt.in, err, tt.want)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, value string
		want           bool
	}{
		{"eu", "eu", true},
		{"eu", "EU", false},
		{"eu", "eu-1", false},
		{"eu*", "eu-1", true},
		{"eu*", "eu", true},
		{"eu*", "us-1", false},
		{"*-1", "eu-1", true},
		{"e?-1", "eu-1", true},
		{"e?-1", "e-1", false},
		{"?", "é", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a.c", "abc", false}, // a glob's . is literal
		{"*", "", true},
		{"/^eu-[0-9]$/", "eu-1", true},
		{"/^eu-[0-9]$/", "eu-12", false},
		{"/eu/", "xeux", true}, // unanchored, as in classic Swarm
	}
	for _, tt := range tests {
		m, err := compile(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.match(tt.value); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.pattern, tt.value, got, tt.want)
		}
	}
}

func TestParseRulesEnv(t *testing.T) {
	env := []string{
		"PATH=/bin",
		"constraint:zone==eu",
		"affinity:container!=db",
		"FOO=constraint:x",
		"reschedule:on-node-failure",
		"affinity:com.example.role==~front",
		"constraint:node==n*",
	}
	r, clean, err := ParseRules(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"PATH=/bin", "FOO=constraint:x"}; !slices.Equal(clean, want) {
		t.Errorf("clean env = %q, want %q", clean, want)
	}
	if got := exprStrings(r.Constraints); !slices.Equal(got, []string{"zone==eu", "node==n*"}) {
		t.Errorf("constraints = %q", got)
	}
	if got := exprStrings(r.Affinities); !slices.Equal(got, []string{"container!=db", "com.example.role==~front"}) {
		t.Errorf("affinities = %q", got)
	}
	if !r.OnNodeFailure() {
		t.Error("reschedule policy not parsed")
	}
	if env[1] != "constraint:zone==eu" {
		t.Error("ParseRules modified its input")
	}
}

func TestParseRulesEnvWithoutRulesIsUntouched(t *testing.T) {
	env := []string{"A=1", "B=2"}
	r, clean, err := ParseRules(env, map[string]string{"other": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if &clean[0] != &env[0] || len(clean) != 2 {
		t.Error("env without rules should be returned as is")
	}
	if !r.empty() || r.Reschedule != "" {
		t.Errorf("rules = %+v, want none", r)
	}
	if _, clean, _ := ParseRules(nil, nil); clean != nil {
		t.Errorf("nil env gave %q", clean)
	}
}

func TestParseRulesLabels(t *testing.T) {
	labels := map[string]string{
		LabelConstraints: `["zone==eu","disk!=hdd"]`,
		LabelAffinities:  `["image==redis"]`,
		LabelReschedule:  `["on-node-failure"]`,
		"com.example":    "kept",
	}
	r, _, err := ParseRules([]string{"constraint:rack==1"}, labels)
	if err != nil {
		t.Fatal(err)
	}
	if got := exprStrings(r.Constraints); !slices.Equal(got, []string{"zone==eu", "disk!=hdd", "rack==1"}) {
		t.Errorf("constraints = %q", got)
	}
	if got := exprStrings(r.Affinities); !slices.Equal(got, []string{"image==redis"}) {
		t.Errorf("affinities = %q", got)
	}
	if r.Reschedule != RescheduleOnNodeFailure {
		t.Errorf("reschedule = %q", r.Reschedule)
	}
	back := r.Labels()
	if back[LabelConstraints] != `["zone==eu","disk!=hdd","rack==1"]` || back[LabelAffinities] != `["image==redis"]` || back[LabelReschedule] != `["on-node-failure"]` {
		t.Errorf("Labels() = %v", back)
	}
	if len((&Rules{}).Labels()) != 0 {
		t.Error("empty rules should give no labels")
	}
}

func TestParseRulesErrors(t *testing.T) {
	tests := []struct {
		env    []string
		labels map[string]string
		want   string
	}{
		{[]string{"constraint:zone"}, nil, `invalid constraint "zone"`},
		{[]string{"affinity:container=db"}, nil, `invalid affinity "container=db"`},
		{nil, map[string]string{LabelConstraints: `zone==eu`}, "must be a JSON array"},
		{nil, map[string]string{LabelAffinities: `["image"]`}, `invalid affinity "image"`},
		{nil, map[string]string{LabelReschedule: `on-node-failure`}, "must be a JSON array"},
		{[]string{"reschedule:always"}, nil, "must be off or on-node-failure"},
		{[]string{"reschedule:off", "reschedule:on-node-failure"}, nil, "conflicts"},
	}
	for _, tt := range tests {
		_, _, err := ParseRules(tt.env, tt.labels)
		if err == nil || !errors.Is(err, ErrInvalidRule) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseRules(%q, %v) error = %v, want ErrInvalidRule saying %q", tt.env, tt.labels, err, tt.want)
		}
	}
}

func exprStrings(xs []Expr) []string {
	var out []string
	for i := range xs {
		out = append(out, xs[i].String())
	}
	return out
}
