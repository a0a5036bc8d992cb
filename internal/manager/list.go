package manager

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
)

type listed struct {
	e       *engine.Engine
	c       *engine.Container
	created int64 // unix nanoseconds when known, for dockerd's newest-first order
	up      bool  // the engine was healthy when listed
}

// ListContainers merges every engine's containers, as `docker ps` expects,
// with names shown as /<node>/<name>; the cached entries are kept as the
// engines sent them.
func (m *Manager) ListContainers(ctx context.Context, opts backend.ContainerListOptions) (backend.ContainerList, error) {
	sel, err := m.selectContainers(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer sel.release()
	return renderList(sel.out, time.Now()), nil
}

// ListContainersTo is ListContainers for dockerapi's handler: the
// containers are chosen (and any error of the options returned) at once,
// and write, called once, writes the JSON array straight to w, each
// entry worded as it is written, with buffers reused from one `ps` to
// the next: a `ps -a` of 30,000 containers builds no list of them and
// makes almost no garbage (issue 16). If write is not called the
// buffers are left to the collector. A write error (the client went
// away) ends the answer where it stood; the entries are the cache's own,
// so an engine removed meanwhile is still written as it was when chosen.
func (m *Manager) ListContainersTo(ctx context.Context, opts backend.ContainerListOptions) (write func(w io.Writer) error, err error) {
	sel, err := m.selectContainers(ctx, opts)
	if err != nil {
		return nil, err
	}
	return func(w io.Writer) error {
		defer sel.release()
		return sel.writeTo(w, time.Now())
	}, nil
}

// selection is the containers a list shows, in order (out), with the
// buffers that made it, kept in listPool between lists.
type selection struct {
	items, tmp []listed
	out        []listed
	cs         []*engine.Container
	buf        []byte
}

var listPool = sync.Pool{New: func() any { return new(selection) }}

// release clears the references to containers (a pooled list must not
// keep removed ones alive) and gives the buffers back.
func (s *selection) release() {
	clear(s.items[:cap(s.items)])
	clear(s.tmp[:cap(s.tmp)])
	clear(s.cs[:cap(s.cs)])
	s.items, s.tmp, s.out, s.cs = s.items[:0], s.tmp[:0], nil, s.cs[:0]
	listPool.Put(s)
}

// listFlushAt is how much of the answer is gathered before each write.
const listFlushAt = 128 << 10

// writeTo writes the selection as one JSON array, statuses as of now.
func (s *selection) writeTo(w io.Writer, now time.Time) error {
	if cap(s.buf) < listFlushAt+8<<10 {
		s.buf = make([]byte, 0, listFlushAt+16<<10)
	}
	buf := append(s.buf[:0], '[')
	statuses := engine.NewStatuses(now)
	for i, it := range s.out {
		if i > 0 {
			buf = append(buf, ',')
		}
		status := "Host Down" // as classic Swarm said of a node it cannot reach
		if it.up {
			status = statuses.Of(it.c)
		}
		buf = it.c.AppendJSON(buf, status)
		if len(buf) >= listFlushAt {
			if _, err := w.Write(buf); err != nil {
				s.buf = buf[:0]
				return err
			}
			buf = buf[:0]
		}
	}
	buf = append(buf, ']', '\n')
	_, err := w.Write(buf)
	s.buf = buf[:0]
	return err
}

// selectContainers chooses and orders the containers a list shows.
func (m *Manager) selectContainers(ctx context.Context, opts backend.ContainerListOptions) (*selection, error) {
	// The legacy before and since parameters are filters too (added to a
	// copy: the options are the caller's).
	f := make(backend.Filters, len(opts.Filters)+2)
	for k, v := range opts.Filters {
		f[k] = slices.Clone(v)
	}
	all, limit := opts.All, opts.Limit
	if opts.Before != "" {
		f["before"] = append(f["before"], opts.Before)
	}
	if opts.Since != "" {
		f["since"] = append(f["since"], opts.Since)
	}
	if limit > 0 || len(f["before"]) > 0 || len(f["since"]) > 0 {
		all = true
	}

	m.awaitContact(ctx)
	match, err := m.containerMatcher(ctx, f)
	if err != nil {
		return nil, err
	}
	sel := listPool.Get().(*selection)
	if opts.Size {
		items, err := m.listLive(ctx)
		if err != nil {
			sel.release()
			return nil, err
		}
		sel.items = append(sel.items[:0], items...)
	} else {
		m.listCached(sel)
	}
	// Filtered first (in place: the list is ours), so that a filtered
	// `ps` sorts only what it shows; the limit counts from the newest.
	filtered := len(f) > 0
	out := sel.items[:0]
	for _, it := range sel.items {
		if !all && len(f["status"]) == 0 {
			if st := it.c.State; st != "running" && st != "paused" && st != "restarting" {
				continue
			}
		}
		if filtered && !match(it) {
			continue
		}
		out = append(out, it)
	}
	if cap(sel.tmp) < len(out) {
		sel.tmp = make([]listed, len(out), cap(sel.items))
	}
	out = sortNewestFirst(out, sel.tmp[:len(out)])
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	sel.out = out
	return sel, nil
}

// listCached puts every cached container in sel.items, one slice sized
// for them all (`docker ps` over 30,000 containers: issue 16).
func (m *Manager) listCached(sel *selection) {
	engines := m.pool.Engines()
	n := 0
	for _, e := range engines {
		n += e.NumContainers()
	}
	if cap(sel.items) < n {
		sel.items = make([]listed, 0, n+n/8) // room for a few created meanwhile
	}
	items, cs := sel.items[:0], sel.cs
	for _, e := range engines {
		up := e.Healthy()
		cs = e.AppendContainers(cs[:0])
		for _, c := range cs {
			items = append(items, listed{e, c, c.CreatedNanos(), up})
		}
	}
	sel.items, sel.cs = items, cs
}

// newestFirst is dockerd's order: newest first, then by ID.
func newestFirst(a, b listed) int {
	if a.created != b.created {
		return cmp.Compare(b.created, a.created)
	}
	return strings.Compare(a.c.ID, b.c.ID)
}

// sortNewestFirst sorts items as newestFirst, using tmp (as long as
// items) for room, and returns the sorted slice, items or tmp. Many
// items are sorted by creation time with a radix sort (8 passes at
// most, those where every key has the same byte skipped), then equal
// times by ID: a third of the time of a comparison sort at 30,000.
func sortNewestFirst(items, tmp []listed) []listed {
	if len(items) < 512 {
		slices.SortFunc(items, newestFirst)
		return items
	}
	// key orders newest first: the signed time flipped.
	key := func(it listed) uint64 { return ^(uint64(it.created) ^ 1<<63) }
	var counts [8][256]int
	for _, it := range items {
		k := key(it)
		for b := range 8 {
			counts[b][byte(k>>(8*b))]++
		}
	}
	src, dst := items, tmp
	for b := range 8 {
		c := &counts[b]
		if c[byte(key(src[0])>>(8*b))] == len(src) {
			continue // one bucket: the order stands
		}
		sum := 0
		for i := range c {
			c[i], sum = sum, sum+c[i]
		}
		shift := 8 * b
		for _, it := range src {
			d := byte(key(it) >> shift)
			dst[c[d]] = it
			c[d]++
		}
		src, dst = dst, src
	}
	for i := 0; i < len(src); {
		j := i + 1
		for j < len(src) && src[j].created == src[i].created {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(src[i:j], newestFirst)
		}
		i = j
	}
	return src
}

// renderList gives each listed container its status as of now.
func renderList(out []listed, now time.Time) backend.ContainerList {
	list := make(backend.ContainerList, len(out))
	statuses := engine.NewStatuses(now)
	for i, it := range out {
		status := "Host Down" // as classic Swarm said of a node it cannot reach
		if it.up {
			status = statuses.Of(it.c)
		}
		list[i] = backend.ListedContainer{Status: status, Entry: it.c}
	}
	return list
}

func boolParam(v string) bool {
	switch strings.ToLower(v) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

// listLive asks every healthy engine (for size=1, which the cache lacks).
func (m *Manager) listLive(ctx context.Context) ([]listed, error) {
	var mu sync.Mutex
	var out []listed
	var wg sync.WaitGroup
	for _, e := range m.pool.Healthy() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var list []*engine.Container
			err := m.ask(ctx, e, readPatience, func(ctx context.Context) (err error) {
				list, err = e.List(ctx, engine.ListOptions{All: true, Size: true})
				return err
			})
			if err != nil {
				m.log.Warn("list containers", "node", e.Name(), "error", err)
				return
			}
			mu.Lock()
			for _, c := range list {
				if prev := e.Container(c.ID); prev != nil {
					c.CopyInspect(prev)
				}
				out = append(out, listed{e, c, c.CreatedNanos(), true})
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out, nil
}

// containerMatcher compiles the filters into one predicate.
func (m *Manager) containerMatcher(ctx context.Context, f backend.Filters) (func(listed) bool, error) {
	var preds []func(listed) bool
	for _, k := range listFilterKeys {
		if v := f[k]; len(v) > 0 {
			p, err := listFilters[k](v)
			if err != nil {
				return nil, err
			}
			preds = append(preds, p)
		}
	}
	order, err := m.orderFilters(ctx, f)
	if err != nil {
		return nil, err
	}
	preds = append(preds, order...)
	return func(it listed) bool {
		for _, p := range preds {
			if !p(it) {
				return false
			}
		}
		return true
	}, nil
}

// listFilters build, for each filter key that needs only the listed
// container, its predicate from the key's values; listFilterKeys is the
// order they are checked in (the first bad value is the one reported).
var (
	listFilters = map[string]func(v []string) (func(listed) bool, error){
		"id": idFilter, "name": nameFilter, "label": labelFilter, "status": statusFilter,
		"ancestor": ancestorFilter, "node": nodeFilter, "exited": exitedFilter, "health": healthFilter,
		"network": networkFilter, "volume": volumeFilter, "is-task": isTaskFilter,
		"publish": portFilter(true), "expose": portFilter(false),
	}
	listFilterKeys = []string{"id", "name", "label", "status", "ancestor", "node", "exited", "health", "network", "volume", "is-task", "publish", "expose"}
)

func idFilter(v []string) (func(listed) bool, error) {
	return func(it listed) bool {
		return anyOf(v, func(x string) bool { return strings.HasPrefix(it.c.ID, x) })
	}, nil
}

func nameFilter(v []string) (func(listed) bool, error) {
	res := make([]*regexp.Regexp, 0, len(v))
	for _, x := range v {
		re, err := regexp.Compile(x)
		if err != nil {
			return nil, errdefs.ErrInvalidArgument.WithMessage("invalid filter 'name=" + x + "': " + err.Error())
		}
		res = append(res, re)
	}
	return func(it listed) bool {
		for _, n := range it.c.Names {
			full := "/" + it.e.Name() + n
			for _, re := range res {
				if re.MatchString(n) || re.MatchString(full) {
					return true
				}
			}
		}
		return false
	}, nil
}

func labelFilter(v []string) (func(listed) bool, error) {
	return func(it listed) bool { return allOf(v, func(x string) bool { return labelMatch(it.c.Labels, x) }) }, nil
}

func statusFilter(v []string) (func(listed) bool, error) {
	return func(it listed) bool {
		return anyOf(v, func(x string) bool { return it.c.State == x })
	}, nil
}

func ancestorFilter(v []string) (func(listed) bool, error) {
	return func(it listed) bool {
		return anyOf(v, func(x string) bool { return imageMatches(it.c.Image, it.c.ImageID, x) })
	}, nil
}

func nodeFilter(v []string) (func(listed) bool, error) {
	return func(it listed) bool {
		return anyOf(v, func(x string) bool {
			if it.e.ID == x || strings.HasPrefix(it.e.ID, x) || it.e.Addr == x {
				return true
			}
			ok, _ := path.Match(x, it.e.Name())
			return ok
		})
	}, nil
}

func exitedFilter(v []string) (func(listed) bool, error) {
	return func(it listed) bool {
		if it.c.State != "exited" {
			return false
		}
		code := exitCode(it.c.Status)
		return anyOf(v, func(x string) bool { return x == code })
	}, nil
}

func healthFilter(v []string) (func(listed) bool, error) {
	return func(it listed) bool {
		h := "none"
		if it.c.HealthStatus != "" {
			h = it.c.HealthStatus
		} else if i := strings.LastIndex(it.c.Status, "("); i >= 0 && strings.HasSuffix(it.c.Status, ")") {
			h = strings.TrimPrefix(it.c.Status[i+1:len(it.c.Status)-1], "health: ")
		}
		return anyOf(v, func(x string) bool { return x == h })
	}, nil
}

func networkFilter(v []string) (func(listed) bool, error) {
	return func(it listed) bool {
		return anyOf(v, func(x string) bool {
			for name, id := range it.c.Networks {
				if name == x || (id != "" && strings.HasPrefix(id, x)) {
					return true
				}
			}
			return false
		})
	}, nil
}

func volumeFilter(v []string) (func(listed) bool, error) {
	return func(it listed) bool {
		return anyOf(v, func(x string) bool {
			for _, mp := range it.c.Mounts {
				if mp.Name == x || mp.Destination == x || mp.Source == x {
					return true
				}
			}
			return false
		})
	}, nil
}

func isTaskFilter(v []string) (func(listed) bool, error) {
	want := boolParam(v[0])
	return func(it listed) bool {
		_, ok := it.c.Labels["com.docker.swarm.task"]
		return ok == want
	}, nil
}

// portFilter matches published (host) or exposed (container) ports.
func portFilter(published bool) func(v []string) (func(listed) bool, error) {
	return func(v []string) (func(listed) bool, error) {
		return func(it listed) bool {
			return anyOf(v, func(x string) bool {
				port, proto, _ := strings.Cut(x, "/")
				if proto == "" {
					proto = "tcp"
				}
				for _, p := range it.c.Ports {
					n := p.PrivatePort
					if published {
						n = p.PublicPort
					}
					if strconv.Itoa(int(n)) == port && p.Type == proto {
						return true
					}
				}
				return false
			})
		}, nil
	}
}

// orderFilters are before= and since=: they name containers, looked up
// in the cluster.
func (m *Manager) orderFilters(ctx context.Context, f backend.Filters) ([]func(listed) bool, error) {
	var preds []func(listed) bool
	for _, k := range []string{"before", "since"} {
		for _, ref := range f[k] {
			_, c, err := m.findContainer(ctx, ref)
			if err != nil {
				return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid filter '%s=%s': %v", k, ref, err))
			}
			// Nanoseconds, as dockerd compares: containers made within
			// one second are still ordered.
			created, before := c.CreatedNanos(), k == "before"
			preds = append(preds, func(it listed) bool {
				if before {
					return it.created < created
				}
				return it.created > created
			})
		}
	}
	return preds, nil
}

func anyOf(vals []string, f func(string) bool) bool {
	for _, v := range vals {
		if f(v) {
			return true
		}
	}
	return false
}

func allOf(vals []string, f func(string) bool) bool {
	for _, v := range vals {
		if !f(v) {
			return false
		}
	}
	return true
}

// labelMatch implements label=key, label=key=value and label=key!=value.
func labelMatch(labels map[string]string, expr string) bool {
	if k, v, ok := strings.Cut(expr, "!="); ok {
		got, has := labels[k]
		return !has || got != v
	}
	k, v, hasVal := strings.Cut(expr, "=")
	got, has := labels[k]
	if !has {
		return false
	}
	return !hasVal || got == v
}

// imageMatches says whether a container's image (as named, and its ID) is ref.
func imageMatches(name, id, ref string) bool {
	if ref == "" {
		return false
	}
	if name == ref || strings.HasPrefix(strings.TrimPrefix(id, "sha256:"), strings.TrimPrefix(ref, "sha256:")) && len(strings.TrimPrefix(ref, "sha256:")) >= 4 {
		return true
	}
	return normalizeRef(name) == normalizeRef(ref)
}

// normalizeRef adds the implicit :latest tag.
func normalizeRef(ref string) string {
	ref = strings.TrimPrefix(ref, "docker.io/")
	ref = strings.TrimPrefix(ref, "library/")
	if strings.Contains(ref, "@") {
		return ref
	}
	if i := strings.LastIndex(ref, ":"); i < 0 || strings.Contains(ref[i:], "/") {
		return ref + ":latest"
	}
	return ref
}

func exitCode(status string) string {
	// "Exited (137) 5 seconds ago"
	i := strings.Index(status, "(")
	j := strings.Index(status, ")")
	if i < 0 || j < i {
		return ""
	}
	return status[i+1 : j]
}
