package ca

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

var tokenRE = regexp.MustCompile(`^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$`)

func TestJoinTokenFormat(t *testing.T) {
	r := mustRoot(t, "c")
	for range 200 {
		tok, err := NewJoinToken(r.CertPEM())
		if err != nil {
			t.Fatal(err)
		}
		s := tok.String()
		if !tokenRE.MatchString(s) {
			t.Fatalf("token %q not in swarm format", s)
		}
		back, err := ParseJoinToken(s)
		if err != nil || back != tok {
			t.Fatalf("round trip %q: %v", s, err)
		}
		if !back.MatchesCA(r.CertPEM()) {
			t.Fatal("token does not match its CA")
		}
	}
}

// A known vector: the digest of an empty bundle is SHA-256("") in base36.
func TestCADigestVector(t *testing.T) {
	// Computed independently (Python) from the hex digest:
	// int('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',16) in base36.
	const want = "5oaq0bjhj6un82wg98mgigso5q7qlhc63je4gw7ivixqqhkd3p"
	if got := CADigest(nil); got != want {
		t.Fatalf("CADigest(empty) = %s, want %s", got, want)
	}
	if len(CADigest([]byte("x"))) != 50 {
		t.Fatal("digest not padded to 50")
	}
}

func TestParseJoinTokenRefuses(t *testing.T) {
	d := strings.Repeat("a", 50)
	s := strings.Repeat("b", 25)
	bad := []string{
		"",
		"SWMTKN-1-" + d,
		"SWMTKN-2-" + d + "-" + s,
		"SWMTKX-1-" + d + "-" + s,
		"SWMTKN-1-" + d[:49] + "-" + s,
		"SWMTKN-1-" + d + "-" + s + "c",
		"SWMTKN-1-" + strings.ToUpper(d) + "-" + s,
		"SWMTKN-1-" + d + "-" + s + "-x",
	}
	for _, b := range bad {
		if _, err := ParseJoinToken(b); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("ParseJoinToken(%q) = %v", b, err)
		}
	}
	if _, err := ParseJoinToken("SWMTKN-1-" + d + "-" + s); err != nil {
		t.Fatal(err)
	}
}

func TestAdmitAndRotate(t *testing.T) {
	r := mustRoot(t, "c")
	toks, err := NewJoinTokens(r.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	if toks.Worker == toks.Manager {
		t.Fatal("worker and manager tokens equal")
	}
	if role, err := toks.Admit(toks.Worker.String()); err != nil || role != RoleWorker {
		t.Fatalf("worker: %v %v", role, err)
	}
	if role, err := toks.Admit(toks.Manager.String()); err != nil || role != RoleManager {
		t.Fatalf("manager: %v %v", role, err)
	}
	old := toks.Worker.String()
	toks, err = toks.Rotate(RoleWorker, r.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := toks.Admit(old); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("rotated token admitted: %v", err)
	}
	if role, err := toks.Admit(toks.Worker.String()); err != nil || role != RoleWorker {
		t.Fatalf("new worker token: %v %v", role, err)
	}
	if role, _ := toks.Admit(toks.Manager.String()); role != RoleManager {
		t.Fatal("rotating worker changed manager token")
	}
	other := mustRoot(t, "c")
	foreign := JoinToken{Digest: other.Digest(), Secret: toks.Worker.Secret}
	if _, err := toks.Admit(foreign.String()); !errors.Is(err, ErrTokenCAMismatch) {
		t.Fatalf("wrong CA digest: %v", err)
	}
	if foreign.MatchesCA(r.CertPEM()) {
		t.Fatal("foreign digest matches")
	}
	if _, err := toks.Rotate("swarm-ca", r.CertPEM()); !errors.Is(err, ErrInvalidRole) {
		t.Fatalf("rotate bad role: %v", err)
	}
}
