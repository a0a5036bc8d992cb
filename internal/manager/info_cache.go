package manager

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/docker/go-units"
	"github.com/shoal-dev/shoal/internal/engine"
)

// infoCache keeps what info sums over the pool between calls. A call
// reads every engine's generation (a read lock each); only the engines
// whose generation moved are summarized again, and the sums are redone
// over the kept summaries. At 10,000 engines that is a few hundred
// microseconds, where summing, counting images in a map, sorting the
// leaves and joining megabytes of node lines on every call took tens of
// milliseconds and most of the garbage.
type infoCache struct {
	mu     sync.Mutex
	snap   *infoSnap
	images map[string]int // image ID → how many of snap's engines hold it
	gens   []uint64       // scratch: the generations read by the last call

	baseMu  sync.Mutex
	baseRaw json.RawMessage            // the base engine's /info as last decoded
	base    map[string]json.RawMessage // baseRaw decoded; shared, do not modify
	tmpl    *infoTemplate              // the last answer's template
}

// infoSnap is the pool as info shows it at one moment. It is not modified
// once built: calls that see no change share it.
type infoSnap struct {
	engines                              []*engine.Engine // the pool's list, in its order
	sums                                 []*engineInfo    // engines[i]'s summary
	containers, running, paused, stopped int
	images, ncpu                         int
	memTotal                             int64
	warnings                             []string
	free                                 freeSum
	statusLen                            int // bytes of the node lines with a comma each
}

// infoSnapshot returns the pool's snapshot, rebuilt if any engine changed
// (its generation moved) or the pool's engines did since the last one.
func (m *Manager) infoSnapshot() *infoSnap {
	engines := m.pool.Engines()
	c := &m.infoCache
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.snap
	same := old != nil && slices.Equal(old.engines, engines)
	c.gens = c.gens[:0]
	changed := !same
	for i, e := range engines {
		g := e.Gen()
		c.gens = append(c.gens, g)
		if same && old.sums[i].gen != g {
			changed = true
		}
	}
	if !changed {
		return old
	}
	if !same {
		c.images = map[string]int{}
		m.forgetEngines(engines)
	}
	s := &infoSnap{engines: engines, sums: make([]*engineInfo, len(engines)), warnings: []string{}}
	for i, e := range engines {
		var prev *engineInfo
		if same {
			prev = old.sums[i]
		}
		sum := prev
		if prev == nil || prev.gen != c.gens[i] {
			sum = m.engineSummary(e)
		}
		if sum != prev {
			c.countImages(prev, -1)
			c.countImages(sum, 1)
		}
		s.sums[i] = sum
		s.add(sum)
	}
	s.images = len(c.images)
	c.snap = s
	return s
}

// countImages adds (by +1) or removes (by -1) an engine's images from the
// pool's count of distinct images.
func (c *infoCache) countImages(s *engineInfo, by int) {
	if s == nil {
		return
	}
	for _, id := range s.images {
		if n := c.images[id] + by; n > 0 {
			c.images[id] = n
		} else {
			delete(c.images, id)
		}
	}
}

func (s *infoSnap) add(sum *engineInfo) {
	s.containers += sum.containers
	s.running += sum.running
	s.paused += sum.paused
	s.stopped += sum.stopped
	if sum.state == engine.Healthy {
		s.ncpu += sum.ncpu
		s.memTotal += sum.memTotal
	} else {
		s.warnings = append(s.warnings, sum.warning)
	}
	s.free.add(sum.free)
	if len(sum.statusJSON) > 0 {
		s.statusLen += len(sum.statusJSON) + 1
	}
}

// forgetEngines drops the kept summaries of engines no longer in the pool.
func (m *Manager) forgetEngines(engines []*engine.Engine) {
	ids := make(map[string]bool, len(engines))
	for _, e := range engines {
		ids[e.ID] = true
	}
	m.infoMu.Lock()
	defer m.infoMu.Unlock()
	for id := range m.infos {
		if !ids[id] {
			delete(m.infos, id)
		}
	}
}

// baseInfo is the first healthy engine's /info, as sent and decoded (nil
// if none): decoded again only when that engine's /info was reloaded or
// another engine is first.
func (m *Manager) baseInfo() (json.RawMessage, map[string]json.RawMessage) {
	c := &m.infoCache
	for _, e := range m.pool.Engines() {
		if !e.Healthy() {
			continue
		}
		raw := e.RawInfo()
		if len(raw) == 0 {
			continue
		}
		c.baseMu.Lock()
		if sameBytes(c.baseRaw, raw) {
			base := c.base
			c.baseMu.Unlock()
			return raw, base
		}
		c.baseMu.Unlock()
		var base map[string]json.RawMessage
		if json.Unmarshal(raw, &base) != nil || base == nil {
			continue
		}
		c.baseMu.Lock()
		c.baseRaw, c.base = raw, base
		c.baseMu.Unlock()
		return raw, base
	}
	return nil, nil
}

// sameBytes says whether a and b are the same bytes in memory (a cached
// /info is replaced, never modified, when it is reloaded).
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// infoTemplate is info's answer but for the node lines and SystemTime:
// parts with holes between them, kept while info's own fields encode the
// same and the base engine's /info is the same.
type infoTemplate struct {
	ours    []byte          // info's own fields as encoded, SystemTime empty
	head    []byte          // the pool's DriverStatus lines, encoded, without brackets
	baseRaw json.RawMessage // the base engine's /info it was built from
	parts   [][]byte
	holes   []byte // holes[i] follows parts[i]: holeNodes or holeTime
}

const (
	holeNodes = 'n' // every node's DriverStatus lines
	holeTime  = 't' // SystemTime's value
)

// infoTemplate returns the template for info's own fields ours and the
// pool's lines head, built again if either or the base engine's /info
// changed since the last one.
func (m *Manager) infoTemplate(ours, head []byte) (*infoTemplate, error) {
	baseRaw, base := m.baseInfo()
	c := &m.infoCache
	c.baseMu.Lock()
	t := c.tmpl
	c.baseMu.Unlock()
	if t != nil && bytes.Equal(t.ours, ours) && bytes.Equal(t.head, head) && sameBytes(t.baseRaw, baseRaw) {
		return t, nil
	}
	var own map[string]json.RawMessage
	if err := json.Unmarshal(ours, &own); err != nil {
		return nil, err
	}
	fields := own
	if base != nil {
		fields = make(map[string]json.RawMessage, len(base)+len(infoOwnKeys))
		for k, v := range base {
			fields[k] = v
		}
		for _, k := range infoOwnKeys {
			if v, ok := own[k]; ok {
				fields[k] = v
			}
		}
	}
	t = buildInfoTemplate(fields, head)
	t.ours, t.head, t.baseRaw = ours, head, baseRaw
	c.baseMu.Lock()
	c.tmpl = t
	c.baseMu.Unlock()
	return t, nil
}

// buildInfoTemplate writes the JSON object of fields from their encoded
// values, in key order, without the re-validation encoding/json would
// do, leaving holes for DriverStatus's node lines and SystemTime.
func buildInfoTemplate(fields map[string]json.RawMessage, head []byte) *infoTemplate {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	t := &infoTemplate{}
	buf := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendKey(buf, k)
		buf = append(buf, ':')
		switch k {
		case "DriverStatus":
			buf = append(buf, '[')
			buf = append(buf, head...)
			t.parts, t.holes = append(t.parts, buf), append(t.holes, holeNodes)
			buf = []byte{']'}
		case "SystemTime":
			t.parts, t.holes = append(t.parts, buf), append(t.holes, holeTime)
			buf = nil
		default:
			buf = append(buf, fields[k]...)
		}
	}
	t.parts = append(t.parts, append(buf, '}'))
	return t
}

// appendKey writes an object key as encoding/json would.
func appendKey(out []byte, k string) []byte {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(k)
			return append(out, b...)
		}
	}
	out = append(out, '"')
	out = append(out, k...)
	return append(out, '"')
}

// infoAnswer is one info answer: a template filled with a snapshot's node
// lines and the time of the call.
type infoAnswer struct {
	t    *infoTemplate
	s    *infoSnap
	time []byte // SystemTime, encoded
	size int    // at least its length in bytes
}

func newInfoAnswer(t *infoTemplate, s *infoSnap, time []byte) *infoAnswer {
	a := &infoAnswer{t: t, s: s, time: time, size: len(time) + s.statusLen}
	for _, p := range t.parts {
		a.size += len(p)
	}
	return a
}

var comma = []byte{','}

// each gives the answer's bytes in order, in pieces that emit must not
// modify or keep.
func (a *infoAnswer) each(emit func([]byte)) {
	for i, p := range a.t.parts {
		emit(p)
		if i >= len(a.t.holes) {
			continue
		}
		switch a.t.holes[i] {
		case holeTime:
			emit(a.time)
		case holeNodes:
			first := len(a.t.head) == 0
			for _, sum := range a.s.sums {
				if len(sum.statusJSON) == 0 {
					continue
				}
				if !first {
					emit(comma)
				}
				first = false
				emit(sum.statusJSON)
			}
		}
	}
}

func (a *infoAnswer) appendTo(out []byte) []byte {
	a.each(func(p []byte) { out = append(out, p...) })
	return out
}

// infoWriters buffer an answer's many small pieces on their way out.
var infoWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// WriteTo writes the answer to w.
func (a *infoAnswer) WriteTo(w io.Writer) (int64, error) {
	bw := infoWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil)
		infoWriters.Put(bw)
	}()
	var n int64
	var err error
	a.each(func(p []byte) {
		if err == nil {
			var k int
			k, err = bw.Write(p)
			n += int64(k)
		}
	})
	if err == nil {
		err = bw.Flush()
	}
	return n, err
}

// freeSum is what healthy leaves can still take: their capacity, its free
// share, and the largest single placement (as freeOf finds it).
type freeSum struct {
	ncpu             int
	mem              int64
	freeCPU, freeMem int64
	largest          engine.Placement
}

func (f *freeSum) add(o freeSum) {
	f.ncpu += o.ncpu
	f.mem += o.mem
	f.freeCPU += o.freeCPU
	f.freeMem += o.freeMem
	if o.largest.Memory > f.largest.Memory || (o.largest.Memory == f.largest.Memory && o.largest.NanoCPUs > f.largest.NanoCPUs) {
		f.largest = o.largest
	}
}

// lines are info's lines on what the pool can still take.
func (f freeSum) lines() [][2]string {
	return [][2]string{
		{"Reserved CPUs", fmt.Sprintf("%g / %d", float64(int64(f.ncpu)*1e9-f.freeCPU)/1e9, f.ncpu)},
		{"Reserved Memory", fmt.Sprintf("%s / %s", units.BytesSize(float64(f.mem-f.freeMem)), units.BytesSize(float64(f.mem)))},
		{"Largest free placement", fmt.Sprintf("%g CPUs, %s", float64(f.largest.NanoCPUs)/1e9, units.BytesSize(float64(f.largest.Memory)))},
	}
}

// freeOfEngine is one engine's share of freeSum: the engine as one leaf,
// or a member's leaves, as leafNodes lists them (federation.go).
func freeOfEngine(e *engine.Engine, s *engineInfo) freeSum {
	st := leafState(e)
	var nodes []engine.MemberNode
	if mv := e.Member(); mv != nil && len(mv.Nodes) > 0 {
		nodes = make([]engine.MemberNode, 0, len(mv.Nodes))
		for _, l := range mv.Nodes {
			if st != "healthy" {
				l.State = st
			}
			nodes = append(nodes, l)
		}
	} else {
		nodes = []engine.MemberNode{{State: st, NCPU: s.ncpu, MemTotal: s.memTotal,
			Reserved: engine.Placement{NanoCPUs: s.reservedCPU, Memory: s.reservedMem}}}
	}
	var f freeSum
	f.ncpu, f.mem, f.freeCPU, f.freeMem, f.largest = freeOf(nodes)
	return f
}
