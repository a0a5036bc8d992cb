// Package backend holds what passes between the Docker API edge
// (internal/dockerapi) and the cluster manager behind it: the engine a call
// is forwarded to, and the typed requests and replies of the backend
// interfaces. It imports nothing of shoal's, so both sides depend on it and
// neither on the other.
package backend

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sort"
)

// Target is one engine a request can be forwarded to (*engine.Engine).
type Target interface {
	Name() string
	// APIPath prefixes path with the version to use on this engine for a
	// client speaking clientVersion.
	APIPath(clientVersion, path string) string
	Do(req *http.Request) (*http.Response, error)
	Dial(ctx context.Context) (net.Conn, error)
}

// Filters is Docker's filters parameter, parsed: key → values.
type Filters map[string][]string

// Get returns the values of key.
func (f Filters) Get(key string) []string { return f[key] }

// Encode is the filters in Docker's wire form ({"key":{"value":true}}), for
// a call that passes them on to engines; "" when there are none.
func (f Filters) Encode() string {
	if len(f) == 0 {
		return ""
	}
	m := make(map[string]map[string]bool, len(f))
	for k, vals := range f {
		set := make(map[string]bool, len(vals))
		for _, v := range vals {
			set[v] = true
		}
		m[k] = set
	}
	b, _ := json.Marshal(m) // maps of strings and bools always encode
	return string(b)
}

// Keys are the filter keys, sorted.
func (f Filters) Keys() []string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Object is a JSON object as an engine sent it, kept field by field: shoal
// reads or replaces a few fields and passes the rest through as the engine
// worded them at the client's API version. It encodes with its keys sorted.
type Object map[string]json.RawMessage

// String is the string field key ("" if absent or not a string).
func (o Object) String(key string) string {
	var s string
	_ = json.Unmarshal(o[key], &s)
	return s
}

// Set replaces field key with v encoded.
func (o Object) Set(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	o[key] = b
	return nil
}

// Clone is a copy of o whose fields can be replaced without touching o.
func (o Object) Clone() Object {
	cp := make(Object, len(o))
	for k, v := range o {
		cp[k] = v
	}
	return cp
}

// Report is the merge of the engines' disk usage reports: lists joined,
// numbers added up, other fields the first engine's. Its shape is the
// engines' own, which changed much across API versions (1.52 added per-kind
// usage objects, 1.53 dropped the lists), so it stays generic JSON.
type Report map[string]any
