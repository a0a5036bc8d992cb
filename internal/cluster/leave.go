package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/shoal-dev/shoal/internal/cluster/nodeapi"
	"github.com/shoal-dev/shoal/internal/store"
)

// Leaving and being removed end a node's run; test with errors.Is.
var (
	// ErrLeft is returned by Run once this node has left the cluster (swarm
	// leave): the caller clears its membership (ClearMembership) and stops.
	ErrLeft = errors.New("cluster: this node left the cluster")
	// ErrRemoved is returned by Run when the managers refuse this node
	// because it was removed (docker node rm): its certificate is revoked
	// for good, so trying again cannot help.
	ErrRemoved = errors.New("cluster: this node was removed from the cluster")
)

// LeaveSwarm is `docker swarm leave` on this manager's API: a manager
// leaves only with force (swarm mode's 503 otherwise). It marks the record
// Left (Down until docker node rm), takes this manager's member out of the
// store while others remain, and makes Run return ErrLeft.
func (c *Cluster) LeaveSwarm(ctx context.Context, force bool) error {
	recs, err := c.records(ctx)
	if err != nil {
		return err
	}
	if err := nodeapi.CanLeave(recs, c.members(ctx), c.st.NodeID, force); err != nil {
		return err
	}
	if err := c.markLeft(ctx, c.st.NodeID); err != nil {
		// Forced, as swarm mode does, even without a quorum to record it:
		// the others then show this manager Down and unreachable.
		c.log.Warn("leave: record that this manager left", "err", err)
	}
	if err := c.store.RemoveMember(ctx, c.st.NodeID); err != nil && !errors.Is(err, store.ErrLastVoter) && !errors.Is(err, store.ErrNoMember) {
		c.log.Warn("leave: remove own store member", "err", err)
	}
	c.log.Info("this manager left the cluster", "node", c.st.NodeID, "forced", force)
	c.leaveOnce.Do(func() { close(c.left) })
	return nil
}

// markLeft records that a node left: Down until docker node rm.
func (c *Cluster) markLeft(ctx context.Context, id string) error {
	err := c.write(ctx, func(ctx context.Context) error {
		return c.nodes.Modify(ctx, id, func(cur Node, exists bool) (Node, error) {
			if !exists {
				return cur, store.ErrNotFound
			}
			cur.Left, cur.UpdatedAt = true, time.Now().UTC()
			return cur, nil
		})
	})
	if err == nil {
		// The cache first: the node, its tunnel cut, asks about itself
		// at once, and must be told it left (else it asks again only
		// after pollPeriod).
		c.syncOnce(ctx)
		c.tunnels.Disconnect(id)
	}
	return err
}

// handleLeave is a worker leaving (shoal leave): its record is marked Left
// and its agent, told so by /self, stops.
func (c *Cluster) handleLeave(w http.ResponseWriter, r *http.Request) {
	n, ok := c.peerRecord(w, r)
	if !ok {
		return
	}
	if n.Role == RoleManager {
		httpError(w, http.StatusServiceUnavailable, "node "+n.ID+" is a manager: run docker swarm leave --force against its Docker API")
		return
	}
	if err := c.markLeft(r.Context(), n.ID); err != nil {
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	c.log.Info("node left the cluster", "node", n.ID, "hostname", n.Hostname)
	writeJSONResp(w, struct{}{})
}

// Leave makes the worker whose membership DataDir holds leave the cluster,
// as `docker swarm leave` on a swarm mode worker: the managers mark it
// Left, its running agent stops, and its membership is cleared.
func Leave(ctx context.Context, cfg Config) error {
	c, err := New(cfg)
	if err != nil {
		return err
	}
	if !HasMembership(cfg.DataDir) {
		return fmt.Errorf("%w: %s", ErrNoCluster, cfg.DataDir)
	}
	if err := c.loadIdentity(); err != nil {
		return err
	}
	if c.IsManager() {
		return fmt.Errorf("%w: run docker swarm leave --force against this manager's Docker API", ErrManagerLeave)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c.httpTLS()}}
	defer hc.CloseIdleConnections()
	if err := c.askManagers(ctx, hc, "/leave"); err != nil {
		return err
	}
	return ClearMembership(cfg.DataDir)
}

// ErrManagerLeave is shoal leave run on a manager's data directory.
var ErrManagerLeave = errors.New("cluster: this node is a manager")

// askManagers posts to path on the managers in turn until one answers.
func (c *Cluster) askManagers(ctx context.Context, hc *http.Client, path string) error {
	var last error = errors.New("cluster: no manager known")
	for _, addr := range c.askOrder() {
		var out struct{}
		if err := postJSON(ctx, hc, "https://"+addr+path, struct{}{}, &out); err != nil {
			last = err
			continue
		}
		return nil
	}
	return last
}

// HasMembership says whether dir holds a node's cluster membership, which
// shoal init and shoal join resume.
func HasMembership(dir string) bool {
	_, err := os.Stat((&Cluster{cfg: Config{DataDir: dir}}).stateFile())
	return err == nil
}

// ClearMembership removes a node's membership from dir (its state,
// certificates and store data), as swarm mode clears a node that left.
func ClearMembership(dir string) error {
	c := &Cluster{cfg: Config{DataDir: dir}}
	for _, p := range []string{c.stateFile(), c.certDir(), c.storeDir()} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("cluster: clear membership: %w", err)
		}
	}
	return nil
}
