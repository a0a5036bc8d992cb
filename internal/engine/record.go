package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unique"
	"weak"

	"github.com/moby/moby/api/types/image"
)

// The kept list entry of a container is most of the cache's memory (about
// 800 bytes of JSON each as dockerd words it), yet most of it is the same
// from one container to the next: the keys, the image and its ID, the
// command, the host config, the network's ID, empty fields. A record keeps
// it as a skeleton, interned and so shared by every container that has
// the same one, with holes where the container's own values go (its ID,
// names, creation time, endpoint and addresses), and those values apart.
// Serving it back is copying bytes, as before; only the memory shrinks
// (issue 16: 30,000 containers on one manager).

// hole marks, in a skeleton and after each value of a record, where a
// container's own value goes. It never occurs in JSON (control characters
// are escaped in strings).
const hole = 0

// holeKeys are the keys whose values differ from one container to the
// next; every other value stays in the skeleton. Any value may be a hole
// (a key here that some other object also has costs nothing but sharing),
// so the list only decides how well skeletons are shared, not what is
// served.
var holeKeys = map[string]bool{
	"Id": true, "Names": true, "Created": true, "SizeRw": true, "SizeRootFs": true,
	"EndpointID": true, "IPAddress": true, "MacAddress": true, "GlobalIPv6Address": true,
	"Aliases": true, "DNSNames": true, "PublicPort": true, "Source": true, "Name": true,
	"com.docker.compose.container-number": true, "com.docker.swarm.task.id": true,
	"com.docker.swarm.task.name": true,
}

// entryJSON is a container's kept list entry: an interned skeleton and the
// container's own values, each followed by a hole byte. A zero skel means
// vals is the whole entry (JSON that could not be split).
type entryJSON struct {
	skel unique.Handle[string]
	vals string
}

// newEntryJSON splits a compact JSON object into skeleton and values.
func newEntryJSON(b []byte) entryJSON {
	var s splitter
	skel, ok := s.split(b)
	if !ok {
		return entryJSON{vals: string(b)}
	}
	return entryJSON{skel: skel, vals: string(s.vals)}
}

// split appends b's own values to s.vals and returns its interned
// skeleton; ok is false (and s.vals as it was) if b cannot be split.
func (s *splitter) split(b []byte) (skel unique.Handle[string], ok bool) {
	if len(b) == 0 || bytes.IndexByte(b, hole) >= 0 {
		return skel, false
	}
	n := len(s.vals)
	s.b, s.i, s.skel = b, 0, s.skel[:0]
	if !s.value(false) || s.i != len(b) {
		s.vals = s.vals[:n]
		return skel, false
	}
	return unique.Make(string(s.skel)), true
}

// empty says whether there is no entry.
func (r entryJSON) empty() bool { return r == entryJSON{} }

// appendTo appends the entry's JSON to buf.
func (r entryJSON) appendTo(buf []byte) []byte {
	if r.skel == (unique.Handle[string]{}) {
		return append(buf, r.vals...)
	}
	skel, vals := r.skel.Value(), r.vals
	for {
		i := indexHole(skel)
		if i < 0 {
			return append(buf, skel...)
		}
		buf = append(buf, skel[:i]...)
		skel = skel[i+1:]
		j := indexHole(vals)
		if j < 0 { // cannot happen: built with as many values as holes
			j = len(vals) - 1
		}
		buf = append(buf, vals[:j]...)
		vals = vals[j+1:]
	}
}

func indexHole(s string) int { return strings.IndexByte(s, hole) }

// bytes returns the whole entry.
func (r entryJSON) bytes() []byte { return r.appendTo(nil) }

// splitter walks compact JSON (as encoding/json writes it), copying it to
// skel except the values of holeKeys, which go to vals.
type splitter struct {
	b          []byte
	i          int
	skel, vals []byte
}

// value copies the value at s.i; with isHole, into vals.
func (s *splitter) value(isHole bool) bool {
	if s.i >= len(s.b) {
		return false
	}
	if isHole {
		start := s.i
		if !s.skip() {
			return false
		}
		s.vals = append(s.vals, s.b[start:s.i]...)
		s.vals = append(s.vals, hole)
		s.skel = append(s.skel, hole)
		return true
	}
	switch s.b[s.i] {
	case '{':
		return s.object()
	case '[':
		return s.array()
	}
	start := s.i
	if !s.skip() {
		return false
	}
	s.skel = append(s.skel, s.b[start:s.i]...)
	return true
}

func (s *splitter) object() bool {
	s.skel = append(s.skel, '{')
	s.i++
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.skel = append(s.skel, '}')
		s.i++
		return true
	}
	for s.i < len(s.b) {
		start := s.i
		if s.b[s.i] != '"' || !s.skip() || s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		key := s.b[start+1 : s.i-1]
		s.i++
		s.skel = append(s.skel, s.b[start:s.i]...)
		if !s.value(holeKeys[string(key)]) || s.i >= len(s.b) {
			return false
		}
		c := s.b[s.i]
		s.skel = append(s.skel, c)
		s.i++
		if c == '}' {
			return true
		}
		if c != ',' {
			return false
		}
	}
	return false
}

func (s *splitter) array() bool {
	s.skel = append(s.skel, '[')
	s.i++
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.skel = append(s.skel, ']')
		s.i++
		return true
	}
	for s.i < len(s.b) {
		if !s.value(false) || s.i >= len(s.b) {
			return false
		}
		c := s.b[s.i]
		s.skel = append(s.skel, c)
		s.i++
		if c == ']' {
			return true
		}
		if c != ',' {
			return false
		}
	}
	return false
}

// skip moves s.i past the value there (string, object, array or literal).
func (s *splitter) skip() bool {
	b := s.b
	if s.i >= len(b) {
		return false
	}
	switch b[s.i] {
	case '"':
		for j := s.i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				s.i = j + 1
				return true
			}
		}
		return false
	case '{', '[':
		depth := 0
		for s.i < len(b) {
			switch b[s.i] {
			case '"':
				if !s.skip() {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.i++
			if depth == 0 {
				return true
			}
		}
		return false
	}
	j := s.i
	for j < len(b) && !endsLiteral(b[j]) {
		j++
	}
	if j == s.i {
		return false
	}
	s.i = j
	return true
}

func endsLiteral(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// intern returns s backed by one shared copy per distinct value, for the
// strings that repeat across containers (images, states, label keys and
// values, network names). The copies are dropped by the GC once no
// container holds them.
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// sharer gives the containers of one list the same map or slice where
// their contents are equal (most containers of an engine have the same
// labels, or none, and the same networks). Records are read-only, so
// sharing is safe.
type sharer struct {
	maps map[string]map[string]string
}

// labels returns m, or an equal map already given out, with its strings interned.
func (sh *sharer) labels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	key := mapKey(m)
	if got, ok := sh.maps[key]; ok {
		return got
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[intern(k)] = intern(v)
	}
	if sh.maps == nil {
		sh.maps = map[string]map[string]string{}
	}
	sh.maps[key] = out
	return out
}

// mapKey is a canonical form of m: its pairs, sorted, each as
// len:key len:value.
func mapKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b []byte
	for _, k := range keys {
		b = strconv.AppendInt(b, int64(len(k)), 10)
		b = append(b, ':')
		b = append(b, k...)
		b = strconv.AppendInt(b, int64(len(m[k])), 10)
		b = append(b, ':')
		b = append(b, m[k]...)
	}
	return string(b)
}

// ports and mounts intern the strings of each element (empty lists need
// no memory of their own).
func (sh *sharer) ports(ps []Port) []Port {
	for i := range ps {
		ps[i].IP, ps[i].Type = intern(ps[i].IP), intern(ps[i].Type)
	}
	return ps
}

func (sh *sharer) mounts(ms []Mount) []Mount {
	for i := range ms {
		ms[i].Name, ms[i].Source, ms[i].Destination = intern(ms[i].Name), intern(ms[i].Source), intern(ms[i].Destination)
	}
	return ms
}

// imageList is an engine's image list, decoded; shared by every engine
// whose /images/json answer was the same, byte for byte: hosts of a fleet
// mostly hold the same images, and an image's fields in that answer (its
// ID, tags, digests, build time, size; Containers and SharedSize -1) do
// not depend on the host. Read-only.
type imageList struct{ imgs []image.Summary }

// imageLists holds one imageList per distinct answer (by its SHA-256),
// weakly: an entry goes once no engine holds its list.
var imageLists weakSet[[sha256.Size]byte, imageList]

// sharedImageList decodes raw, an /images/json answer, or returns the
// list of an equal answer already decoded. raw is not kept.
func sharedImageList(raw []byte) (*imageList, error) {
	key := sha256.Sum256(raw)
	if p := imageLists.get(key); p != nil {
		return p, nil
	}
	var imgs []image.Summary
	if err := json.Unmarshal(raw, &imgs); err != nil {
		return nil, err
	}
	shareImages(imgs)
	// One decoded meanwhile for another engine wins.
	return imageLists.put(key, &imageList{imgs: slices.Clip(imgs)}), nil
}

// shareImages interns the strings of an engine's image list and shares its
// equal label maps: the same images are on many engines (ten images on
// each of ten thousand engines were 55 MiB, most of it the same IDs, tags
// and digests).
func shareImages(imgs []image.Summary) {
	var sh sharer
	for i := range imgs {
		im := &imgs[i]
		im.ID, im.ParentID, im.Labels = intern(im.ID), intern(im.ParentID), sh.labels(im.Labels)
		for j, s := range im.RepoTags {
			im.RepoTags[j] = intern(s)
		}
		for j, s := range im.RepoDigests {
			im.RepoDigests[j] = intern(s)
		}
	}
}

// AppendContainers appends the cached containers to dst, for a list of
// every engine's without a slice per engine. The records are shared: do
// not modify.
func (e *Engine) AppendContainers(dst []*Container) []*Container {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return append(dst, e.containers.byID...)
}

// NumContainers is how many containers are cached.
func (e *Engine) NumContainers() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.containers.len()
}

// inspected holds one Inspected per distinct content, weakly: an entry
// goes once no container holds its Inspected.
var inspected weakSet[string, Inspected]

// internInspected returns in, or an equal Inspected already given out.
func internInspected(in Inspected) *Inspected {
	if in.NanoCPUs == 0 && in.CPUShares == 0 && in.Memory == 0 && in.MemoryReservation == 0 &&
		in.Env == nil && in.Error == "" && in.Spec == nil {
		return notInspected
	}
	key := in.key()
	if p := inspected.get(key); p != nil {
		return p
	}
	p := &in
	p.Env = slices.Clip(p.Env)
	return inspected.put(key, p)
}

// weakSet holds values by key, weakly: an entry goes once nothing else
// holds its value. The zero value is ready to use.
type weakSet[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]weak.Pointer[V]
}

// get is the value held under key, or nil.
func (s *weakSet[K, V]) get(key K) *V {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key].Value()
}

// put holds v under key and returns it, unless a live value is held
// there already: that one is returned instead.
func (s *weakSet[K, V]) put(key K, v *V) *V {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.m[key].Value(); p != nil {
		return p
	}
	if s.m == nil {
		s.m = map[K]weak.Pointer[V]{}
	}
	s.m[key] = weak.Make(v)
	runtime.AddCleanup(v, func(key K) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.m[key].Value() == nil { // not replaced by a live one
			delete(s.m, key)
		}
	}, key)
	return v
}

// held says whether an entry is kept under key (live or not yet cleaned up).
func (s *weakSet[K, V]) held(key K) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[key]
	return ok
}

// key is in's content as a string (each part with its length, so no two
// contents have the same key).
func (in *Inspected) key() string {
	b := make([]byte, 0, 64)
	for _, n := range []int64{in.NanoCPUs, in.CPUShares, in.Memory, in.MemoryReservation, int64(len(in.Env))} {
		b = strconv.AppendInt(b, n, 10)
		b = append(b, ',')
	}
	if in.Env == nil {
		b = append(b, '-') // nil and empty are told apart, as the record did
	}
	part := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	for _, s := range in.Env {
		part(s)
	}
	part(in.Error)
	part(string(in.Spec))
	if in.Spec == nil {
		b = append(b, '-')
	}
	return string(b)
}

// containerSet is an engine's cached containers, sorted by ID and by name:
// two slices of pointers (16 bytes a container) where two maps took
// 100–140 (Go's maps round up to whole groups of eight slots), ~40 MB at
// 300,000 containers. Lookups are binary searches over one engine's few
// dozen containers.
type containerSet struct {
	byID   []*Container // sorted by ID
	byName []*Container // sorted by Name, then ID
}

// newContainerSet holds m's containers.
func newContainerSet(m map[string]*Container) containerSet {
	s := containerSet{byID: make([]*Container, 0, len(m)), byName: make([]*Container, 0, len(m))}
	for _, c := range m {
		s.byID = append(s.byID, c)
		s.byName = append(s.byName, c)
	}
	slices.SortFunc(s.byID, func(a, b *Container) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(s.byName, compareNames)
	return s
}

func compareNames(a, b *Container) int {
	if c := strings.Compare(a.Name(), b.Name()); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func (s *containerSet) len() int { return len(s.byID) }

// get is the container with this ID, or nil.
func (s *containerSet) get(id string) *Container {
	i, ok := slices.BinarySearchFunc(s.byID, id, func(c *Container, id string) int { return strings.Compare(c.ID, id) })
	if !ok {
		return nil
	}
	return s.byID[i]
}

// named is a container with this name (Container.Name), or nil.
func (s *containerSet) named(name string) *Container {
	i, ok := slices.BinarySearchFunc(s.byName, name, func(c *Container, name string) int { return strings.Compare(c.Name(), name) })
	if !ok {
		return nil
	}
	return s.byName[i]
}

// put holds c, in place of the container with its ID if there is one.
func (s *containerSet) put(c *Container) {
	s.remove(c.ID)
	i, _ := slices.BinarySearchFunc(s.byID, c.ID, func(c *Container, id string) int { return strings.Compare(c.ID, id) })
	s.byID = slices.Insert(s.byID, i, c)
	j, _ := slices.BinarySearchFunc(s.byName, c, compareNames)
	s.byName = slices.Insert(s.byName, j, c)
}

// remove drops the container with this ID, if there is one.
func (s *containerSet) remove(id string) {
	c := s.get(id)
	if c == nil {
		return
	}
	i, _ := slices.BinarySearchFunc(s.byID, id, func(c *Container, id string) int { return strings.Compare(c.ID, id) })
	s.byID = slices.Delete(s.byID, i, i+1)
	if j, ok := slices.BinarySearchFunc(s.byName, c, compareNames); ok {
		s.byName = slices.Delete(s.byName, j, j+1)
	}
}
