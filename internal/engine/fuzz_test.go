package engine

import (
	"net"
	"strings"
	"testing"
)

// FuzzParseNamePath checks that a parsed path has no empty segment nor a
// slash inside one, and round-trips through String.
func FuzzParseNamePath(f *testing.F) {
	for _, s := range []string{"web", "/web", "/node1/web", "member/node1/web", "//a//b//", "/", "", "a/\x00/b", "/é/ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := ParseNamePath(s)
		for _, seg := range p {
			if seg == "" || strings.Contains(seg, "/") {
				t.Fatalf("ParseNamePath(%q) = %q: empty segment or slash in a segment", s, p)
			}
		}
		if q := ParseNamePath(p.String()); !q.Equal(p) {
			t.Fatalf("ParseNamePath(%q) = %q, but its String %q parses to %q", s, p, p.String(), q)
		}
		if len(p) > 0 && (!p.HasSuffix(NamePath{p.Base()}) || !p.Under("n").HasSuffix(p)) {
			t.Fatalf("ParseNamePath(%q) = %q: Base/Under/HasSuffix disagree", s, p)
		}
	})
}

// FuzzParseAddr checks that an accepted address is a unix socket path or a
// host:port, and that the normalised form is accepted again as tcp. (Only
// one trailing slash is trimmed, so "h:1//" gives "h:1/": a fixed point is
// not promised.)
func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{
		"10.0.0.1:2375", "tcp://10.0.0.1:2375", "unix:///var/run/docker.sock", "http://h:2375/", "https://h:2376",
		"[::1]:2375", "tcp://[fd00::1]:2375", "unix://", "ftp://h:1", "h", " tcp://h:1 ", "h:1//", "tcp://unix://x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		network, address, err := ParseAddr(s)
		if err != nil {
			return
		}
		switch network {
		case "unix":
			if address == "" {
				t.Fatalf("ParseAddr(%q): empty socket path", s)
			}
			return
		case "tcp":
			if _, _, err := net.SplitHostPort(address); err != nil {
				t.Fatalf("ParseAddr(%q) = %q, not host:port: %v", s, address, err)
			}
		default:
			t.Fatalf("ParseAddr(%q): network %q", s, network)
		}
		if n2, _, err := ParseAddr("tcp://" + address); err != nil || n2 != network {
			t.Fatalf("ParseAddr(%q) = %s %q, but tcp://%s gives %s, %v", s, network, address, address, n2, err)
		}
	})
}
