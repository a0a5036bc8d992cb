package scheduler

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseExpr checks that any expression either parses and round-trips
// through String, or is refused with an error matching ErrInvalidRule.
func FuzzParseExpr(f *testing.F) {
	for _, s := range []string{
		"zone==eu", "node!=n1", "disk==~ssd", "node!=~n1", "image==/^redis:/",
		"region==eu-*", "name==web?", "a==b==c", "k=v", "k!v", "==v", "k==", "k==~",
		"k===v", "k==~~v", "k==//", "k==/(/", "k==/a{1000}/", "k==/" + strings.Repeat("(", 50) + "/",
		"com.docker.swarm/id==x", "k y==v", "!==", "=!=", "k!==v", "k==\xff\xfe", "k==*?*",
	} {
		f.Add("constraint", s)
	}
	f.Fuzz(func(t *testing.T, kind, s string) {
		x, err := ParseExpr(kind, s)
		if err != nil {
			if !errors.Is(err, ErrInvalidRule) {
				t.Fatalf("ParseExpr(%q): error %v does not match ErrInvalidRule", s, err)
			}
			return
		}
		if x.Key == "" || x.Value == "" || !validKey(x.Key) {
			t.Fatalf("ParseExpr(%q) = %+v: empty or invalid key or value", s, x)
		}
		y, err := ParseExpr(kind, x.String())
		if err != nil {
			t.Fatalf("ParseExpr(%q).String() = %q does not parse: %v", s, x.String(), err)
		}
		if y.Key != x.Key || y.Op != x.Op || y.Soft != x.Soft || y.Value != x.Value {
			t.Fatalf("round trip of %q: %+v became %+v", s, x, y)
		}
		if x.m.literal() && !x.matches(x.Value) {
			t.Fatalf("exact value %q does not match itself", x.Value)
		}
	})
}

// FuzzParseRules feeds env entries and the placement labels, checking that
// errors match ErrInvalidRule, rule entries never leak into the returned env,
// and the rules survive their label form.
func FuzzParseRules(f *testing.F) {
	f.Add("constraint:zone==eu", "PATH=/bin", `["disk==ssd"]`, `["container!=~web"]`, `["on-node-failure"]`)
	f.Add("affinity:image==/^redis/", "reschedule:off", `[]`, `null`, `["off","on-node-failure"]`)
	f.Add("constraint:", "reschedule:sometimes", `{"a":1}`, `["==x"]`, `[1]`)
	f.Add("CONSTRAINT:zone==eu", "constraint", `["k==/(/"]`, `"zone==eu"`, `["off","off"]`)
	f.Fuzz(func(t *testing.T, e1, e2, cons, aff, resched string) {
		labels := map[string]string{LabelConstraints: cons, LabelAffinities: aff, LabelReschedule: resched}
		env := []string{e1, e2}
		r, clean, err := ParseRules(env, labels)
		if err != nil {
			if !errors.Is(err, ErrInvalidRule) {
				t.Fatalf("error %v does not match ErrInvalidRule", err)
			}
			return
		}
		for _, e := range clean {
			if _, _, ok := ruleEntry(e); ok {
				t.Fatalf("rule entry %q left in env %q", e, clean)
			}
		}
		back, _, err := ParseRules(nil, r.Labels())
		if err != nil {
			t.Fatalf("labels %v of parsed rules do not parse: %v", r.Labels(), err)
		}
		if len(back.Constraints) != len(r.Constraints) || len(back.Affinities) != len(r.Affinities) || back.Reschedule != r.Reschedule {
			t.Fatalf("label round trip changed the rules: %+v became %+v", r, back)
		}
	})
}

// FuzzGlob checks glob against plain equality when the pattern holds no
// wildcard, and that a pattern made of * alone matches everything.
func FuzzGlob(f *testing.F) {
	f.Add("eu-*", "eu-west")
	f.Add("w?b", "wéb")
	f.Add("*a*b*c", "xxaxxbxxc")
	f.Add("**", "")
	f.Add("?", "\xff")
	f.Fuzz(func(t *testing.T, p, s string) {
		got := glob(p, s)
		if !strings.ContainsAny(p, "*?") && got != (p == s) {
			t.Fatalf("glob(%q, %q) = %v for a pattern without wildcards", p, s, got)
		}
		if strings.Trim(p, "*") == "" && p != "" && !got {
			t.Fatalf("glob(%q, %q) = false for a pattern of stars", p, s)
		}
	})
}
