package dockerapi

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// invalidArgument fails t unless err is nil or an errdefs invalid
// argument, which the API answers with 400.
func invalidArgument(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && !errdefs.IsInvalidArgument(err) {
		t.Fatalf("%s: error %v is not an invalid argument (would not be a 400)", what, err)
	}
}

// FuzzParseFilters checks that filters either decode, and then survive
// being written back in the list form, or are refused as invalid argument.
func FuzzParseFilters(f *testing.F) {
	for _, s := range []string{
		`{"label":{"a=b":true}}`, `{"status":["running","exited"]}`, `{"name":{"web":false}}`, `{}`, `null`,
		`{"a":null}`, `{"a":[1]}`, `{"a":"x"}`, `[]`, `{"a":{"x":true},"a":["y"]}`, `{"\u00e9":["\ud800"]}`, `{`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := parseFilters(raw)
		invalidArgument(t, "parseFilters", err)
		if err != nil {
			return
		}
		b, err := json.Marshal(map[string][]string(got))
		if err != nil {
			t.Fatalf("filters %v do not encode: %v", got, err)
		}
		back, err := parseFilters(string(b))
		if err != nil {
			t.Fatalf("filters %s (from %q) do not parse again: %v", b, raw, err)
		}
		for k, v := range got {
			w := back[k]
			slices.Sort(v)
			slices.Sort(w)
			if !slices.Equal(v, w) {
				t.Fatalf("filter %q: %q became %q", k, v, w)
			}
		}
	})
}

// FuzzQueryOptions runs every query-parameter reader over one raw query:
// each either succeeds or refuses with an invalid argument.
func FuzzQueryOptions(f *testing.F) {
	for _, s := range []string{
		"all=1&size=true&limit=5&filters=%7B%22status%22%3A%5B%22running%22%5D%7D",
		"filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D", "since=1700000000.5&until=-1", "since=abc",
		"buildargs=%7B%22A%22%3A%22b%22%2C%22C%22%3Anull%7D", "buildargs=%5B%5D", "cachefrom=%5B%22redis%22%5D",
		"name=/web", "name=-bad", "name=", "limit=99999999999999999999", "filters=%", "a=%zz&;;&=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw)
		r := httptest.NewRequest("GET", "/containers/json", nil)
		r.URL.RawQuery = q.Encode()
		_, err := containerListOptions(q)
		invalidArgument(t, "containerListOptions", err)
		_, err = eventsOptions(r)
		invalidArgument(t, "eventsOptions", err)
		_, err = buildArgs(q)
		invalidArgument(t, "buildArgs", err)
		_, err = pruneOptions(r)
		invalidArgument(t, "pruneOptions", err)
		_, err = imageListOptions(r)
		invalidArgument(t, "imageListOptions", err)
		_, err = listOptions(r)
		invalidArgument(t, "listOptions", err)
		_ = cacheFrom(q)
		name, err := renameTarget(q)
		invalidArgument(t, "renameTarget", err)
		if err == nil && (name == "" || strings.HasPrefix(name, "/")) {
			t.Fatalf("renameTarget(%q) = %q", raw, name)
		}
	})
}

// FuzzCreateBodies decodes create bodies (container, network, volume):
// each is accepted or refused with an invalid argument, and an accepted
// container has an image and a valid name.
func FuzzCreateBodies(f *testing.F) {
	f.Add("web", `{"Image":"redis","Env":["constraint:zone==eu"]}`)
	f.Add("/web", `{"Name":"net1","Driver":"overlay"}`)
	f.Add("-x", `{"Image":""}`)
	f.Add("", ` `)
	f.Add("a", `null`)
	f.Add("ab", `{"Image":1}`)
	f.Add("ab", `[]`)
	f.Fuzz(func(t *testing.T, name, body string) {
		r := httptest.NewRequest("POST", "/containers/create?"+url.Values{"name": {name}}.Encode(), nil)
		req, err := containerCreateRequest(r, []byte(body))
		invalidArgument(t, "containerCreateRequest", err)
		if err == nil && (req.Config.Image == "" || strings.HasPrefix(req.Name, "/")) {
			t.Fatalf("containerCreateRequest(%q, %q) accepted image %q name %q", name, body, req.Config.Image, req.Name)
		}
		for _, named := range []bool{true, false} {
			o, err := objectCreateRequest(r, []byte(body), named)
			invalidArgument(t, "objectCreateRequest", err)
			if err == nil && (o.Body == nil || named && o.Name == "") {
				t.Fatalf("objectCreateRequest(%q, %v) accepted %+v", body, named, o)
			}
		}
	})
}

// FuzzVersion checks the /vX.Y prefix split and that versionLess is a
// strict order (irreflexive, asymmetric, transitive).
func FuzzVersion(f *testing.F) {
	f.Add("/v1.43/containers/json", "1.24", "1.9")
	f.Add("/v1.99999999999999999999/_ping", "1.010", "1.10")
	f.Add("/v1/x", "", "1.")
	f.Add("/v1.2", "1.2.3", "01.2")
	f.Fuzz(func(t *testing.T, path, a, b string) {
		v, rest := splitVersion(path)
		if v == "" && rest != path || v != "" && !strings.HasPrefix(rest, "/") {
			t.Fatalf("splitVersion(%q) = %q, %q", path, v, rest)
		}
		if versionLess(a, a) {
			t.Fatalf("versionLess(%q, %q) is true", a, a)
		}
		if versionLess(a, b) && versionLess(b, a) {
			t.Fatalf("versionLess is true both ways for %q and %q", a, b)
		}
		if versionLess(a, b) && versionLess(b, v) && !versionLess(a, v) {
			t.Fatalf("versionLess is not transitive over %q < %q < %q", a, b, v)
		}
	})
}
