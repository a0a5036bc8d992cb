package discovery

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseList checks that a list either expands to at most MaxAddresses
// addresses, none holding a range bracket, or is refused with ErrBadRange or
// ErrTooManyAddresses; the cap must hold before anything is expanded.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{
		"10.0.0.[11:13]:2375", "10.0.0.1:2375,10.0.0.2:2375", "# comment\n10.0.0.1", "[fd00::1]:2375",
		"tcp://[::1]:2375", "h[08:10]:[2375:2376]", "10.[0:65535].[0:65535].1", "[:]", "[]", "]", "[",
		"[1:0]", "[00:99999999999999999999]", "[9223372036854775806:9223372036854775807]",
		"[fd00::[1:2]]:2375", "tcp://[fd00::1]x", "a[0:255]b[0:255]", "[0:65535]", "[0:65536]",
		"[-1:2]", "[+1:2]", "[1:2:3]", "node[1:3]#[bad", "   ,\t,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := ParseList(strings.Split(s, ","))
		if err != nil {
			if !errors.Is(err, ErrBadRange) && !errors.Is(err, ErrTooManyAddresses) {
				t.Fatalf("ParseList(%q): error %v is neither ErrBadRange nor ErrTooManyAddresses", s, err)
			}
			return
		}
		if len(out) > MaxAddresses {
			t.Fatalf("ParseList(%q) gave %d addresses, more than MaxAddresses", s, len(out))
		}
		for _, a := range out {
			if a == "" {
				t.Fatalf("ParseList(%q) gave an empty address", s)
			}
		}
	})
}

// FuzzOpen checks that any discovery URI (without options, which may name
// files) opens or is refused without a panic, and that a nodes:// list
// stays within MaxAddresses.
func FuzzOpen(f *testing.F) {
	for _, s := range []string{
		"nodes://10.0.0.[1:3]:2375", "10.0.0.1:2375,10.0.0.2:2375", "file:///etc/shoal/cluster",
		"file://", "etcd://10.0.0.1,10.0.0.2:2379/shoal", "zk://", "consul://h/", "swarm://unix:///var/run/docker.sock",
		"swarm://host:2375", "swarm://", "swarm://tcp://[::1", "http://x", "://", "nodes://[",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		b, err := Open(uri, nil)
		if err != nil {
			return
		}
		if st, ok := b.(Static); ok && len(st) > MaxAddresses {
			t.Fatalf("Open(%q) gave %d addresses, more than MaxAddresses", uri, len(st))
		}
	})
}

// FuzzParseOptions checks that every accepted option has a non-empty key.
func FuzzParseOptions(f *testing.F) {
	f.Add("kv.cacertfile=/etc/ca.pem", "swarm.port=2375")
	f.Add("=x", "novalue")
	f.Add("a==b", "")
	f.Fuzz(func(t *testing.T, a, b string) {
		m, err := ParseOptions([]string{a, b})
		if err != nil {
			return
		}
		for k := range m {
			if k == "" {
				t.Fatalf("ParseOptions(%q, %q) accepted an empty key", a, b)
			}
		}
	})
}
