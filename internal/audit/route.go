package audit

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// call is what the audit log knows of a request from its method and path.
type call struct {
	path      string // without the version prefix
	action    string
	target    string
	sensitive bool // a read audited always
	stream    bool // long-lived: logged when served and when it ends
	creates   bool // the answer names the object made
}

// mutates reports whether the call can change something: every method
// but GET and HEAD, as dockerd's authorization plugins see it.
func mutates(method string) bool {
	return method != http.MethodGet && method != http.MethodHead
}

// rule is one route of the Docker API as the audit log names it.
type rule struct {
	method string
	segs   []string
	action string
	// sensitive marks a read that is audited all the same: it reaches
	// into a container (attach), copies its data out (archive, export,
	// image save) or shows secrets (join tokens, the unlock key).
	sensitive bool
	creates   bool
	// live reports whether the call is long-lived; nil is never.
	live func(url.Values) bool
	// target names the object from the path's reference and the query;
	// nil is the reference.
	target func(ref string, q url.Values) string
}

func on(method, pattern, action string) rule {
	return rule{method: method, segs: split(pattern), action: action}
}

func (r rule) sens() rule                                        { r.sensitive = true; return r }
func (r rule) made() rule                                        { r.creates = true; return r }
func (r rule) long(f func(url.Values) bool) rule                 { r.live = f; return r }
func (r rule) from(f func(ref string, q url.Values) string) rule { r.target = f; return r }

func always(url.Values) bool { return true }

// Query readers for targets: only names, never other values (build
// arguments and filters can hold secrets).
func query(key string) func(string, url.Values) string {
	return func(_ string, q url.Values) string { return q.Get(key) }
}

func imageRef(_ string, q url.Values) string {
	if img := q.Get("fromImage"); img != "" {
		if tag := q.Get("tag"); tag != "" && !strings.ContainsAny(tag, ":@") {
			return img + ":" + tag
		}
		return img
	}
	return q.Get("repo") // an import (fromSrc) names its repository
}

func imageNames(_ string, q url.Values) string { return strings.Join(q["names"], ",") }

func follow(q url.Values) bool { return truthy(q.Get("follow")) }

// statsStream is dockerd's default: stats stream unless told not to.
func statsStream(q url.Values) bool {
	v := q.Get("stream")
	return (v == "" || truthy(v)) && !truthy(q.Get("one-shot"))
}

func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

// rules name the routes shoal serves and those of swarm mode it may come
// to serve; the first match wins.
var rules = buildRules()

func buildRules() []rule {
	rs := []rule{
		on("GET", "/_ping", "system.ping"), on("HEAD", "/_ping", "system.ping"),
		on("GET", "/version", "system.version"), on("GET", "/info", "system.info"),
		on("GET", "/system/df", "system.df"), on("GET", "/events", "system.events").long(always),
		on("POST", "/auth", "system.auth"),

		on("GET", "/containers/json", "container.list"),
		on("POST", "/containers/create", "container.create").made().from(query("name")),
		on("POST", "/containers/prune", "container.prune"),
		on("GET", "/containers/{id*}/json", "container.inspect"),
		on("GET", "/containers/{id*}/top", "container.top"),
		on("GET", "/containers/{id*}/changes", "container.changes"),
		on("GET", "/containers/{id*}/logs", "container.logs").long(follow),
		on("GET", "/containers/{id*}/stats", "container.stats").long(statsStream),
		on("GET", "/containers/{id*}/export", "container.export").sens().long(always),
		on("GET", "/containers/{id*}/archive", "container.archive.get").sens().long(always),
		on("HEAD", "/containers/{id*}/archive", "container.archive.stat"),
		on("PUT", "/containers/{id*}/archive", "container.archive.put").long(always),
		on("POST", "/containers/{id*}/attach", "container.attach").long(always),
		on("GET", "/containers/{id*}/attach/ws", "container.attach.ws").sens().long(always),
		on("POST", "/containers/{id*}/wait", "container.wait").long(always),
		on("POST", "/containers/{id*}/exec", "container.exec.create").made(),
		on("POST", "/containers/{id*}/rename", "container.rename"),
		on("DELETE", "/containers/{id*}", "container.remove"),
		on("POST", "/exec/{id}/start", "container.exec.start").long(always),
		on("POST", "/exec/{id}/resize", "container.exec.resize"),
		on("GET", "/exec/{id}/json", "container.exec.inspect"),
		on("POST", "/commit", "container.commit").from(query("container")),

		on("GET", "/images/json", "image.list"),
		on("GET", "/images/search", "image.search").from(query("term")),
		on("GET", "/images/get", "image.save").sens().long(always).from(imageNames),
		on("POST", "/images/load", "image.load").long(always),
		on("POST", "/images/create", "image.create").long(always).from(imageRef),
		on("POST", "/images/prune", "image.prune"),
		on("GET", "/images/{name*}/json", "image.inspect"),
		on("GET", "/images/{name*}/history", "image.history"),
		on("GET", "/images/{name*}/get", "image.save").sens().long(always),
		on("POST", "/images/{name*}/push", "image.push").long(always),
		on("POST", "/images/{name*}/tag", "image.tag"),
		on("DELETE", "/images/{name*}", "image.remove"),
		on("GET", "/distribution/{name*}/json", "image.distribution"),
		on("POST", "/build", "image.build").long(always).from(query("t")),
		on("POST", "/build/prune", "build.prune"),

		on("GET", "/swarm", "swarm.inspect").sens(), // join tokens
		on("GET", "/swarm/unlockkey", "swarm.unlockkey").sens(),
		on("POST", "/swarm/init", "swarm.init"), on("POST", "/swarm/join", "swarm.join"),
		on("POST", "/swarm/leave", "swarm.leave"), on("POST", "/swarm/update", "swarm.update"),
		on("POST", "/swarm/unlock", "swarm.unlock"),
		on("GET", "/nodes", "node.list"), on("GET", "/nodes/{id}", "node.inspect"),
		on("POST", "/nodes/{id}/update", "node.update"), on("DELETE", "/nodes/{id}", "node.remove"),
	}
	for _, a := range []string{"start", "stop", "restart", "kill", "pause", "unpause", "update", "resize"} {
		rs = append(rs, on("POST", "/containers/{id*}/"+a, "container."+a))
	}
	for _, n := range [][2]string{{"networks", "network"}, {"volumes", "volume"}} {
		rs = append(rs, on("GET", "/"+n[0], n[1]+".list"), on("POST", "/"+n[0]+"/create", n[1]+".create").made(),
			on("POST", "/"+n[0]+"/prune", n[1]+".prune"))
	}
	rs = append(rs,
		on("POST", "/networks/{id*}/connect", "network.connect"), on("POST", "/networks/{id*}/disconnect", "network.disconnect"),
		on("GET", "/networks/{id*}", "network.inspect"), on("DELETE", "/networks/{id*}", "network.remove"),
		on("GET", "/volumes/{name*}", "volume.inspect"), on("DELETE", "/volumes/{name*}", "volume.remove"))
	for _, n := range [][2]string{{"services", "service"}, {"secrets", "secret"}, {"configs", "config"}} {
		rs = append(rs, on("GET", "/"+n[0], n[1]+".list"), on("POST", "/"+n[0]+"/create", n[1]+".create").made(),
			on("GET", "/"+n[0]+"/{id}", n[1]+".inspect"), on("POST", "/"+n[0]+"/{id}/update", n[1]+".update"),
			on("DELETE", "/"+n[0]+"/{id}", n[1]+".remove"))
	}
	return append(rs,
		on("GET", "/services/{id}/logs", "service.logs").long(follow),
		on("GET", "/tasks", "task.list"), on("GET", "/tasks/{id}", "task.inspect"),
		on("GET", "/tasks/{id}/logs", "task.logs").long(follow))
}

var versionRe = regexp.MustCompile(`^/v[0-9]+\.[0-9]+(/.*)?$`)

// stripVersion removes an optional /vX.Y prefix.
func stripVersion(path string) string {
	m := versionRe.FindStringSubmatch(path)
	if m == nil {
		return path
	}
	if m[1] == "" {
		return "/"
	}
	return m[1]
}

// classify names the call method makes on u.
func classify(method string, u *url.URL) call {
	path := stripVersion(u.Path)
	segs := split(path)
	for _, r := range rules {
		if r.method != method {
			continue
		}
		ref, ok := match(r.segs, segs)
		if !ok {
			continue
		}
		q := u.Query()
		c := call{path: path, action: r.action, target: ref, sensitive: r.sensitive, creates: r.creates}
		if r.target != nil {
			c.target = r.target(ref, q)
		}
		c.stream = r.live != nil && r.live(q)
		return c
	}
	return call{path: path, action: "other"}
}

func split(p string) []string { return strings.Split(strings.Trim(p, "/"), "/") }

// match matches segs against a pattern of literal segments, at most one
// "{x}" (one segment) and at most one "{x*}" (one or more: container
// references such as node1/web and image names such as
// registry:5000/team/app hold slashes); it returns what the placeholder
// matched.
func match(pat, segs []string) (string, bool) {
	star := -1
	for i, p := range pat {
		if strings.HasSuffix(p, "*}") {
			star = i
		}
	}
	if star < 0 {
		if len(pat) != len(segs) {
			return "", false
		}
		return matchFixed(pat, segs)
	}
	tail := len(pat) - star - 1
	if len(segs) < len(pat) {
		return "", false
	}
	if _, ok := matchFixed(pat[:star], segs[:star]); !ok {
		return "", false
	}
	if _, ok := matchFixed(pat[star+1:], segs[len(segs)-tail:]); !ok {
		return "", false
	}
	mid := segs[star : len(segs)-tail]
	for _, s := range mid {
		if s == "" {
			return "", false
		}
	}
	return strings.Join(mid, "/"), true
}

// matchFixed matches segment by segment; a "{x}" takes any non-empty one.
func matchFixed(pat, segs []string) (string, bool) {
	ref := ""
	for i, p := range pat {
		if strings.HasPrefix(p, "{") {
			if segs[i] == "" {
				return "", false
			}
			ref = segs[i]
			continue
		}
		if p != segs[i] {
			return "", false
		}
	}
	return ref, true
}
