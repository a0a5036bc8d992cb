package scheduler

import "strings"

// Active reports whether the container holds its reservation (CPU,
// memory, a container slot, its host ports): every state but exited and
// dead. A created container counts because it is about to start; counting
// stopped containers forever, as classic Swarm did, left clusters "full"
// of nothing. An unknown state counts, to stay on the safe side.
func (c *Container) Active() bool { return c.State != "exited" && c.State != "dead" }

// CPUReservation is the CPU a container reserves, in NanoCPUs: NanoCPUs
// when set, otherwise CPUShares with 1024 shares = 1 CPU (Docker's default
// weight of one container), otherwise nothing.
func cpuReservation(nano, shares int64) int64 {
	if nano > 0 {
		return nano
	}
	if shares > 0 {
		return shares * 1e9 / 1024
	}
	return 0
}

// memReservation is the memory a container reserves: the larger of its hard
// limit and its soft reservation. A container with neither reserves nothing.
func memReservation(limit, reservation int64) int64 { return max(limit, reservation, 0) }

// Container finds a container on the node by name (with or without the
// leading slash), full ID or ID prefix.
func (n *Node) Container(ref string) *Container {
	ref = strings.TrimPrefix(ref, "/")
	if ref == "" {
		return nil
	}
	for i := range n.Containers {
		c := &n.Containers[i]
		if c.Name == ref || strings.HasPrefix(c.ID, ref) {
			return c
		}
	}
	return nil
}

// exactContainer finds a container by its exact name or full ID.
func (n *Node) exactContainer(ref string) *Container {
	ref = strings.TrimPrefix(ref, "/")
	if ref == "" {
		return nil
	}
	for i := range n.Containers {
		if c := &n.Containers[i]; c.Name == ref || c.ID == ref {
			return c
		}
	}
	return nil
}

// HasImage reports whether the node holds the image ref: a name with tag
// (":latest" when none is given; docker.io/library/ may be left out), a
// name with @digest, a full ID (sha256:...) or an ID prefix.
func (n *Node) HasImage(ref string) bool {
	r := parseImageRef(ref)
	return n.hasImage(&r)
}

// imageRef is an image reference normalized once per request.
type imageRef struct {
	name   string // familiar repo:tag or repo@digest; "" if unusable
	digest bool   // name is repo@digest
	id     string // hex ID prefix without "sha256:"; "" if ref is not one
}

func parseImageRef(ref string) imageRef {
	var r imageRef
	if ref == "" {
		return r
	}
	if h, ok := strings.CutPrefix(ref, "sha256:"); ok {
		if isHex(h) {
			r.id = h
		}
		return r
	}
	if isHex(ref) {
		r.id = ref
	}
	name := familiar(ref)
	if strings.Contains(name, "@") {
		r.name, r.digest = name, true
		return r
	}
	if strings.LastIndexByte(name, ':') <= strings.LastIndexByte(name, '/') { // no tag
		name += ":latest"
	}
	r.name = name
	return r
}

// familiar strips the default registry so that "docker.io/library/redis"
// and "redis" compare equal. It does not allocate.
func familiar(s string) string {
	for _, p := range [...]string{"docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"} {
		if rest, ok := strings.CutPrefix(s, p); ok {
			return rest
		}
	}
	return s
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (n *Node) hasImage(r *imageRef) bool {
	if r.name == "" && r.id == "" {
		return false
	}
	for i := range n.Images {
		img := &n.Images[i]
		if r.id != "" && strings.HasPrefix(strings.TrimPrefix(img.ID, "sha256:"), r.id) {
			return true
		}
		if r.name == "" {
			continue
		}
		names := img.RepoTags
		if r.digest {
			names = img.RepoDigests
		}
		for _, t := range names {
			if familiar(t) == r.name {
				return true
			}
		}
	}
	return false
}
