package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/store"
)

// The overlay networks' desired state: a node asks a manager for its part
// (GET /overlay) every overlay.Period and converges to it (internal/overlay).

// labelServiceName is swarm mode's task label naming the service.
const labelServiceName = "com.docker.swarm.service.name"

// recordsTTL bounds how often a manager asks the engines who is on a
// network: every node asks every second.
const recordsTTL = time.Second

// overlayCache keeps the names of each network for recordsTTL.
type overlayCache struct {
	mu      sync.Mutex
	at      time.Time
	records map[string]map[string][]string // network ID → names
	svcs    []store.Service                // the services then (the mesh's ports)

	netsMu sync.Mutex
	netsAt time.Time
	nets   []store.Network // the networks then (overlayNetworks)
}

// handleOverlay tells the calling node the networks to plumb.
func (c *Cluster) handleOverlay(w http.ResponseWriter, r *http.Request) {
	n, _, ok := c.peerRecordID(w, r, true)
	if !ok {
		return
	}
	st, err := c.overlayState(r.Context(), n)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSONResp(w, st)
}

// overlayState is node n's part of the cluster networks.
func (c *Cluster) overlayState(ctx context.Context, n Node) (overlay.State, error) {
	nets, err := c.overlayNetworks(ctx)
	if err != nil {
		return overlay.State{}, err
	}
	st := overlay.State{Managers: c.managerAddrs(), Networks: []overlay.Network{}}
	if len(nets) == 0 {
		return st, nil
	}
	peers := c.peerAddrs()
	records, svcs := c.overlayRecords(ctx, nets)
	st.Mesh = meshState(nets, svcs, records)
	for _, nw := range nets {
		on := overlay.Network{ID: nw.ID, Name: nw.Name, VNI: nw.VNI, Bridge: overlay.BridgeName(nw.ID), VXLAN: overlay.VXLANName(nw.ID),
			MTU: overlay.MTU, Local: n.Addr, Peers: peers, Records: records[nw.ID]}
		withVIPs(&on, nw, svcs) // vip.go
		if len(nw.Key) > 0 {
			on.Encrypt(nw.Key)
		}
		if slot, ok := nw.Slots[n.ID]; ok {
			if gw, _, err := overlay.Slot(netip.MustParsePrefix(nw.Subnet), slot); err == nil {
				on.Gateway = gw.String()
			}
		}
		st.Networks = append(st.Networks, on)
	}
	return st, nil
}

// networksTTL bounds how long a manager answers the nodes' overlay calls
// (every node every overlay.Period) from the networks it last read.
const networksTTL = 250 * time.Millisecond

// overlayNetworks are the cluster networks, read at most every networksTTL.
func (c *Cluster) overlayNetworks(ctx context.Context) ([]store.Network, error) {
	oc := &c.overlay
	oc.netsMu.Lock()
	defer oc.netsMu.Unlock()
	if oc.nets != nil && time.Since(oc.netsAt) < networksTTL {
		return oc.nets, nil
	}
	nets, err := store.NewNetworks(c.store).List(ctx)
	if err != nil {
		return nil, err
	}
	if nets == nil {
		nets = []store.Network{}
	}
	oc.nets, oc.netsAt = nets, time.Now()
	return nets, nil
}

// peerAddrs are the underlay addresses of the nodes in the cluster.
func (c *Cluster) peerAddrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peerAddrList != nil {
		return slices.Clone(c.peerAddrList)
	}
	return c.peerAddrsLocked()
}

func (c *Cluster) peerAddrsLocked() []string {
	var out []string
	for _, n := range c.cache {
		if !n.Left && n.Addr != "" {
			out = append(out, n.Addr)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// overlayRecords are the names of each network, from its engine networks
// on every reachable node, refreshed at most every recordsTTL.
func (c *Cluster) overlayRecords(ctx context.Context, nets []store.Network) (map[string]map[string][]string, []store.Service) {
	oc := &c.overlay
	oc.mu.Lock()
	defer oc.mu.Unlock()
	if time.Since(oc.at) < recordsTTL && oc.records != nil {
		return oc.records, oc.svcs
	}
	out := map[string]map[string][]string{}
	var engines []*engine.Engine
	if c.cfg.Pool != nil {
		engines = c.cfg.Pool.Healthy()
	}
	c.syncVIPs(ctx) // vip.go
	svcs, _, err := store.NewServices(c.store).List(ctx)
	if err != nil {
		c.log.Debug("overlay: services for network aliases", "err", err)
	}
	for _, nw := range nets {
		aliases := serviceAliases(svcs, nw)
		var members []overlay.Member
		for _, e := range engines {
			for _, mb := range engineMembers(ctx, e, nw) {
				mb.Aliases = aliases[mb.Service]
				members = append(members, mb)
			}
		}
		out[nw.ID] = overlay.Records(members)
	}
	oc.at, oc.records, oc.svcs = time.Now(), out, svcs
	return out, svcs
}

// serviceAliases are the aliases each service gives its tasks on nw
// (service create --network name=nw,alias=x), by service name.
func serviceAliases(svcs []store.Service, nw store.Network) map[string][]string {
	out := map[string][]string{}
	for _, s := range svcs {
		for _, a := range s.Spec.TaskTemplate.Networks {
			if a.Target == nw.ID || a.Target == nw.Name {
				out[s.Spec.Name] = append(out[s.Spec.Name], a.Aliases...)
			}
		}
	}
	return out
}

// engineMembers are the containers on network nw's engine network of e.
func engineMembers(ctx context.Context, e *engine.Engine, nw store.Network) []overlay.Member {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	obj, err := e.InspectNetwork(ctx, nw.Name)
	if err != nil {
		return nil
	}
	en, err := overlay.DecodeEngineNetwork(obj.Raw)
	if err != nil || !en.Backs(nw.ID) {
		return nil
	}
	return en.Members(func(id string) (string, bool) {
		if ct := e.Container(id); ct != nil {
			return ct.Labels[labelServiceName], ready(ct.HealthStatus)
		}
		return "", true
	})
}

// ready says whether a container of health status h takes connections:
// not while its health check is starting or failing.
func ready(h string) bool { return h != "starting" && h != "unhealthy" }

// runOverlay keeps this node's overlay networks as the managers want
// them, until ctx ends; a node that left takes them away.
func (c *Cluster) runOverlay(ctx context.Context, managers []string, tr http.RoundTripper) error {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	f := &overlayFetcher{hc: hc, managers: managers, w: c.wake}
	node := overlay.NewNode(overlay.NodeConfig{Fetch: f.fetch, Logger: c.log, StateFile: filepath.Join(c.cfg.DataDir, "overlay.json"),
		Prune: c.overlayPruner()})
	err := node.Run(ctx)
	select {
	case <-c.left:
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Remove(rctx); err != nil {
			c.log.Warn("overlay: remove the networks of a node that left", "err", err)
		}
	default:
	}
	return err
}

// overlayFetcher asks the managers in turn, following their list. The
// overlay loop converges every overlay.Period; when the managers wake
// this node (wake.go), the state they last gave is used again until a
// wake or pollPeriod.
type overlayFetcher struct {
	hc       *http.Client
	managers []string
	next     int
	w        *wakes
	last     *overlay.State // the last answer
	due      time.Time      // when to ask again without a wake
	calls    int            // calls made (tests)
}

func (f *overlayFetcher) fetch(ctx context.Context) (overlay.State, error) {
	if f.last != nil && time.Now().Before(f.due) && f.w.managerWakes.Load() {
		select {
		case <-f.w.overlay:
		default:
			return *f.last, nil
		}
	}
	if len(f.managers) == 0 {
		return overlay.State{}, fmt.Errorf("overlay: no manager known")
	}
	addr := f.managers[f.next%len(f.managers)]
	f.calls++
	st, err := fetchOverlay(ctx, f.hc, addr)
	if err != nil {
		f.next++
		f.last = nil
		return st, err
	}
	if len(st.Managers) > 0 {
		f.managers, f.next = st.Managers, 0
	}
	f.last, f.due = &st, time.Now().Add(f.w.nextPoll(overlay.Period, true))
	return st, nil
}

func fetchOverlay(ctx context.Context, hc *http.Client, addr string) (overlay.State, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/overlay", nil)
	if err != nil {
		return overlay.State{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return overlay.State{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return overlay.State{}, fmt.Errorf("overlay: manager %s answered %s", addr, resp.Status)
	}
	var st overlay.State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return overlay.State{}, fmt.Errorf("overlay: manager %s: %w", addr, err)
	}
	return st, nil
}

// prunePeriod is how often a node looks for engine networks left behind.
const prunePeriod = 10 * time.Second

// overlayPruner removes, from this node's engine, the networks behind
// cluster networks removed while the node was away (overlay.Stale); the
// engine refuses one that containers still use.
func (c *Cluster) overlayPruner() func(ctx context.Context, want []overlay.Network) {
	dial := c.engineDialer()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
	}}
	var last time.Time
	return func(ctx context.Context, want []overlay.Network) {
		if time.Since(last) < prunePeriod {
			return
		}
		last = time.Now()
		list, err := engineOverlayNetworks(ctx, hc)
		if err != nil {
			c.log.Debug("overlay: list the engine's networks", "err", err)
			return
		}
		for _, en := range overlay.Stale(list, want, time.Now()) {
			if err := engineCall(ctx, hc, http.MethodDelete, "/networks/"+en.ID, nil); err != nil {
				c.log.Debug("overlay: remove a network left behind", "network", en.Name, "err", err)
				continue
			}
			c.log.Info("overlay: removed an engine network whose cluster network is gone", "network", en.Name, "id", en.ID)
		}
	}
}

// engineOverlayNetworks lists the local engine's networks behind cluster networks.
func engineOverlayNetworks(ctx context.Context, hc *http.Client) ([]overlay.EngineNetwork, error) {
	var list []overlay.EngineNetwork
	q := url.Values{"filters": {`{"label":{"` + overlay.LabelNetwork + `":true}}`}}
	return list, engineCall(ctx, hc, http.MethodGet, "/networks?"+q.Encode(), &list)
}

// engineCall calls the local engine and decodes a 2xx answer into out.
func engineCall(ctx context.Context, hc *http.Client, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://engine"+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("overlay: engine %s %s: %s: %s", method, path, resp.Status, b)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// shutdown stops the cluster port's HTTP server and waits (a little) for
// the calls in flight: they read the store, which is closed once Run
// returns, and etcd does not take a read racing its close well (every
// node asks for its overlay networks every second).
func shutdown(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if srv.Shutdown(ctx) != nil {
		srv.Close()
	}
}
