package dockerapi

import (
	"context"
	"net/http"
	"regexp"
	"strings"
)

// handlerFunc serves one route; a returned error is written as Docker JSON
// unless the handler already started its answer.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p params) error

type params map[string]string

type route struct {
	method string
	key    string // "METHOD pattern" as registered: it names the route's authorization class
	segs   []string
	h      handlerFunc
	stream bool // the body is a stream (an upload or a hijack): not capped
}

// router matches Docker API paths. Unlike net/http's mux it lets a wildcard
// span several segments ("{name*}"), because container references like
// node1/web and image names like registry:5000/team/app contain slashes.
type router struct {
	routes []route
}

func (rt *router) handle(method, pattern string, h handlerFunc) {
	rt.routes = append(rt.routes, route{method: method, key: method + " " + pattern, segs: split(pattern), h: h})
}

// handleStream is handle for a route whose body is a stream.
func (rt *router) handleStream(method, pattern string, h handlerFunc) {
	rt.routes = append(rt.routes, route{method: method, key: method + " " + pattern, segs: split(pattern), h: h, stream: true})
}

// limitBodies wraps the handler of every route but the streamed ones.
func (rt *router) limitBodies(wrap func(handlerFunc) handlerFunc) {
	for i := range rt.routes {
		if !rt.routes[i].stream {
			rt.routes[i].h = wrap(rt.routes[i].h)
		}
	}
}

// wrap replaces every route's handler by f(key, handler), key being
// "METHOD pattern" as registered.
func (rt *router) wrap(f func(key string, h handlerFunc) handlerFunc) {
	for i := range rt.routes {
		rt.routes[i].h = f(rt.routes[i].key, rt.routes[i].h)
	}
}

func split(p string) []string { return strings.Split(strings.Trim(p, "/"), "/") }

// match returns the route for method and path; found reports whether any
// route has that path (for 405 versus 404).
func (rt *router) match(method, path string) (h handlerFunc, p params, pathFound bool) {
	r, p, pathFound := rt.find(method, path)
	if r == nil {
		return nil, nil, pathFound
	}
	return r.h, p, true
}

// lookup is the route serving method and path (HEAD falls back to GET, as
// in ServeHTTP), or nil.
func (rt *router) lookup(method, path string) (*route, params) {
	r, p, _ := rt.find(method, path)
	if r == nil && method == http.MethodHead {
		r, p, _ = rt.find(http.MethodGet, path)
	}
	return r, p
}

func (rt *router) find(method, path string) (*route, params, bool) {
	segs := split(path)
	pathFound := false
	for i := range rt.routes {
		r := &rt.routes[i]
		pp := params{}
		if !matchSegs(r.segs, segs, pp) {
			continue
		}
		pathFound = true
		if r.method == method {
			return r, pp, true
		}
	}
	return nil, nil, pathFound
}

func matchSegs(pat, segs []string, p params) bool {
	if len(pat) == 0 {
		return len(segs) == 0
	}
	s := pat[0]
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "*}") {
		name := s[1 : len(s)-2]
		// greedy, backtracking: take as many segments as still lets the rest match
		for n := len(segs) - len(pat) + 1; n >= 1; n-- {
			if matchSegs(pat[1:], segs[n:], p) {
				p[name] = strings.Join(segs[:n], "/")
				return true
			}
		}
		return false
	}
	if len(segs) == 0 {
		return false
	}
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		if segs[0] == "" {
			return false
		}
		p[s[1:len(s)-1]] = segs[0]
		return matchSegs(pat[1:], segs[1:], p)
	}
	return s == segs[0] && matchSegs(pat[1:], segs[1:], p)
}

var versionRe = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)(/.*)?$`)

type ctxKey int

const versionKey ctxKey = 0

// splitVersion strips an optional /vX.Y prefix.
func splitVersion(path string) (version, rest string) {
	m := versionRe.FindStringSubmatch(path)
	if m == nil {
		return "", path
	}
	if m[2] == "" {
		return m[1], "/"
	}
	return m[1], m[2]
}

// apiVersion is the API version the client asked for ("" when it gave none).
func apiVersion(r *http.Request) string {
	v, _ := r.Context().Value(versionKey).(string)
	return v
}

func withVersion(r *http.Request, v string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), versionKey, v))
}
