package shoaltest

import (
	"sort"
	"strings"
)

// KeyPaths lists the key paths of a decoded JSON value v down to depth
// levels, sorted and joined by spaces: the shape of an answer without its
// values, for comparing shoal's answers with an engine's. Arrays contribute
// their first item; objects whose path skip accepts (maps keyed by data,
// such as labels) are left out below their own key.
func KeyPaths(v any, depth int, skip func(path string) bool) string {
	var keys []string
	var walk func(prefix string, v any, d int)
	walk = func(prefix string, v any, d int) {
		switch x := v.(type) {
		case map[string]any:
			if skip(prefix) {
				return
			}
			for k, c := range x {
				p := prefix + "." + k
				keys = append(keys, p)
				if d > 1 {
					walk(p, c, d-1)
				}
			}
		case []any:
			if len(x) > 0 {
				walk(prefix+"[]", x[0], d)
			}
		}
	}
	walk("", v, depth)
	sort.Strings(keys)
	return strings.Join(keys, " ")
}
