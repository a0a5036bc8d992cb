package engine

import "testing"

func TestParseNamePath(t *testing.T) {
	for _, tc := range []struct {
		in, str, base string
		n             int
	}{
		{"web", "/web", "web", 1},
		{"/web", "/web", "web", 1},
		{"node1/web", "/node1/web", "web", 2},
		{"/member/node1/web", "/member/node1/web", "web", 3},
		{"//a///b/", "/a/b", "b", 2},
	} {
		p := ParseNamePath(tc.in)
		if p.String() != tc.str || p.Base() != tc.base || len(p) != tc.n {
			t.Errorf("ParseNamePath(%q) = %q (%d segments, base %q); want %q (%d, %q)", tc.in, p, len(p), p.Base(), tc.str, tc.n, tc.base)
		}
	}
	if p := ParseNamePath(""); len(p) != 0 || p.Base() != "" {
		t.Errorf("empty path: %v", p)
	}
}

func TestNamePathSuffixAndUnder(t *testing.T) {
	full := ParseNamePath("web").Under("node1").Under("member")
	if full.String() != "/member/node1/web" {
		t.Fatalf("Under: %s", full)
	}
	for ref, want := range map[string]bool{"web": true, "/web": true, "node1/web": true, "member/node1/web": true,
		"node2/web": false, "other/member/node1/web": false, "eb": false, "": false} {
		if got := full.HasSuffix(ParseNamePath(ref)); got != want {
			t.Errorf("HasSuffix(%q) = %v, want %v", ref, got, want)
		}
	}
}

// A container's own name is its shortest: dockerd also lists a linked
// container as /<linker>/<alias>, and a member shoal lists all names
// under their node.
func TestContainerPath(t *testing.T) {
	for _, tc := range []struct {
		names      []string
		path, name string
	}{
		{[]string{"/web"}, "/web", "web"},
		{[]string{"/app/db-alias", "/db"}, "/db", "db"},
		{[]string{"/node1/web"}, "/node1/web", "web"},
		{[]string{"/node1/app/db-alias", "/node1/db"}, "/node1/db", "db"},
	} {
		c := &Container{Names: tc.names}
		if c.Path().String() != tc.path || c.Name() != tc.name {
			t.Errorf("names %v: Path %s Name %q; want %s %q", tc.names, c.Path(), c.Name(), tc.path, tc.name)
		}
	}
	if (&Container{}).Name() != "" {
		t.Error("no names: want empty name")
	}
}

func TestDecodeContainersPutsNamesUnderNode(t *testing.T) {
	list, err := DecodeContainers([]byte(`[{"Id":"a","Names":["/node1/web"],"Status":"Up"}]`), "member")
	if err != nil || len(list) != 1 {
		t.Fatal(list, err)
	}
	if got := string(list[0].AppendJSON(nil, "Up 1 second")); got != `{"Status":"Up 1 second","Id":"a","Names":["/member/node1/web"]}` {
		t.Errorf("entry %s", got)
	}
}
