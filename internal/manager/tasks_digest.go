package manager

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"

	"github.com/moby/moby/api/types/system"
	"github.com/shoal-dev/shoal/internal/engine"
)

// nodeDigester hashes what the orchestrator decides on in the node list
// (all but reservations: those change with containers, which have
// events), once a second. Under `shoal manage` the nodes are the pool's
// engines, and what comes from an engine's /info (labels, platform,
// resources) is hashed again only when its /info was reloaded: at 10,000
// engines, building and encoding every node record each second was a
// tenth of a core while the pool sat idle.
type nodeDigester struct {
	r     taskRuntime
	cache map[*engine.Engine]infoDigest
}

type infoDigest struct {
	info   *system.Info
	member *engine.MemberView
	sum    uint64
}

func newNodeDigester(r taskRuntime) *nodeDigester {
	return &nodeDigester{r: r, cache: map[*engine.Engine]infoDigest{}}
}

// nodesVersioned is a built-in cluster that fingerprints its node
// records as its sync loop last read them (and as this manager last wrote
// them): the fingerprint changes whenever a record is created, changed or
// removed.
type nodesVersioned interface{ NodesVersion() uint64 }

func (d *nodeDigester) digest(ctx context.Context) uint64 {
	var version uint64
	if cl := d.r.m.cfg.Cluster; cl != nil {
		nv, ok := cl.(nodesVersioned)
		if !ok {
			return d.records(ctx)
		}
		// The records' fingerprint and the engines behind them, hashed
		// as under manage: reading, decoding and converting every node
		// record each second was a tenth of the idle manager's CPU at
		// 1,000 nodes. What the orchestrator takes from a record (role,
		// availability, labels, hostname) changes only with the record.
		version = nv.NodesVersion()
	}
	d.r.m.awaitContact(ctx)
	h := fnv.New64a()
	var num [8]byte
	word := func(v uint64) {
		binary.LittleEndian.PutUint64(num[:], v)
		h.Write(num[:])
	}
	word(version)
	engines := d.r.m.pool.Engines()
	seen := make(map[*engine.Engine]bool, len(engines))
	for _, e := range engines {
		seen[e] = true
		h.Write([]byte(e.ID))
		h.Write([]byte(e.Name()))
		h.Write([]byte(e.Availability()))
		if e.Healthy() {
			word(1)
		} else {
			word(uint64(e.DownSince().UnixNano()))
		}
		word(d.infoSum(e))
	}
	for e := range d.cache {
		if !seen[e] {
			delete(d.cache, e) // the engine left the pool
		}
	}
	return h.Sum64()
}

// infoSum hashes the node fields that come from an engine's /info and,
// for a member shoal, its own labels; cached until either is reloaded.
func (d *nodeDigester) infoSum(e *engine.Engine) uint64 {
	info, member := e.Info(), e.Member()
	if c, ok := d.cache[e]; ok && c.info == info && c.member == member {
		return c.sum
	}
	var fields any
	if info != nil {
		fields = struct {
			Labels                       map[string]string
			OS, Arch, Name               string
			NCPU                         int
			MemTotal                     int64
			GenericResources, MemberTags any
		}{engineLabels(info.Labels), info.OSType, info.Architecture, info.Name, info.NCPU, info.MemTotal,
			info.GenericResources, memberNodeLabels(e, nil)}
	}
	b, _ := json.Marshal(fields) // maps marshal with sorted keys: stable
	h := fnv.New64a()
	h.Write(b)
	sum := h.Sum64()
	d.cache[e] = infoDigest{info: info, member: member, sum: sum}
	return sum
}

// records hashes the built-in cluster's node list as the orchestrator
// sees it (node records from the store, engines behind them), for a
// cluster that does not fingerprint its records.
func (d *nodeDigester) records(ctx context.Context) uint64 {
	nodes, err := d.r.nodes(ctx, false)
	if err != nil {
		return 0
	}
	h := fnv.New64a()
	for _, n := range nodes {
		b, _ := json.Marshal(n) // maps marshal with sorted keys: stable
		h.Write(b)
	}
	return h.Sum64()
}
