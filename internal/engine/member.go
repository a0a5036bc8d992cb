package engine

import (
	"context"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// MemberPath is where a shoal says which nodes it holds: its leaves, the
// engines that run containers, however deep it is itself federated.
// dockerd answers it 404, so an engine is never taken for a member.
const MemberPath = "/_shoal/nodes"

// MemberView is a shoal's answer at MemberPath: its name, its own labels
// and its leaf nodes. A shoal that is a node of another (a member) is
// placed into by its leaves, so the upper shoal never sends it a
// container that no single inner node can take.
type MemberView struct {
	Name   string
	Labels map[string]string `json:",omitempty"`
	// The sums over its healthy leaves: capacity, and what active
	// containers leave free of it; Largest is the most a single new
	// container can reserve on one leaf (a container that fits no leaf is
	// not sent there, whatever the sums).
	NCPU         int
	MemTotal     int64
	FreeNanoCPUs int64
	FreeMemory   int64
	Largest      Placement
	Nodes        []MemberNode
}

// Placement is what one container reserves: CPUs × 1e9 and bytes.
type Placement struct {
	NanoCPUs int64
	Memory   int64
}

// MemberNode is one leaf of a member shoal.
type MemberNode struct {
	// Name is the leaf's path under the member: "e1" for one of its
	// engines, "siteA/e1" for an engine of a member of its own. It is what
	// the member lists containers under ("/e1/web") and what its
	// constraint node==... matches.
	Name string
	ID   string
	Addr string
	// State is "healthy", "unhealthy" or "pending", the leaf's health as the
	// member sees it (an unhealthy member makes every leaf unhealthy above).
	State    string
	NCPU     int
	MemTotal int64
	// Labels are the leaf engine's labels, with the labels of every shoal
	// between it and this member (a shoal's own labels hold for all its
	// nodes; the nearer one wins a key).
	Labels map[string]string `json:",omitempty"`
	// Containers is how many containers the leaf holds; Reserved what its
	// active ones reserve.
	Containers int
	Reserved   Placement
	// Images are the IDs of the images the leaf holds: the shoal above
	// prefers the leaf that has a create's image, as for an engine of its
	// own (the leaf next to it in the member may not have it).
	Images []string `json:",omitempty"`
}

// IsShoal says whether the engine is itself a shoal (its server version
// is "shoal/..."): a member of a federation.
func (e *Engine) IsShoal() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return strings.HasPrefix(e.version, "shoal/")
}

// Member is the member's view of its leaves, nil for an engine (or a
// shoal too old to say). Do not modify.
func (e *Engine) Member() *MemberView {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.member
}

// RefreshMember reloads a member's leaves; for an engine it does nothing.
func (e *Engine) RefreshMember(ctx context.Context) error {
	if !e.IsShoal() {
		return nil
	}
	var v MemberView
	err := e.client.JSON(ctx, "GET", MemberPath, nil, nil, &v)
	if errdefs.IsNotFound(err) {
		return nil // an older shoal: one node, as before
	}
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.member = &v
	e.gen++
	e.mu.Unlock()
	return nil
}

// memberEventWait bounds the reload of a member's leaves on one of its
// node events, which the engine loop applies in line.
const memberEventWait = 2 * time.Second

// applyMemberEvent reloads a member's leaves when it reports a node event
// (engine_connect, engine_disconnect...): an inner node came or went.
func (e *Engine) applyMemberEvent(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, min(e.opts.Timeout, memberEventWait))
	defer cancel()
	if err := e.RefreshMember(rctx); err != nil {
		e.opts.Logger.Debug("refresh member nodes", "engine", e.Addr, "error", err)
	}
}
