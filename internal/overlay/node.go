package overlay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// Period is how often a node asks for its networks and converges.
const Period = time.Second

// NodeConfig configures a node's side of the overlay networks.
type NodeConfig struct {
	// Fetch asks a manager for this node's networks.
	Fetch  func(ctx context.Context) (State, error)
	Logger *slog.Logger
	// Run runs one command (default: exec); tests replace it.
	Run func(ctx context.Context, argv []string) ([]byte, error)
	// Prune, if set, is called after each pass with the networks wanted,
	// to remove what backs networks no longer wanted (see Stale).
	Prune func(ctx context.Context, want []Network)
	// StateFile keeps the names of the devices this node made, so that
	// only those are ever removed (another agent's in the same network
	// namespace are not), across restarts ("": kept in memory only).
	StateFile string
}

// Node converges a node's kernel to the networks the managers want there
// and serves their names.
type Node struct {
	cfg   NodeConfig
	log   *slog.Logger
	dns   *DNS
	owned map[string]bool // devices this node made (StateFile)
	mesh  meshState       // the routing mesh last programmed
	vip   vipState        // the service VIPs last programmed (vip.go)
	crypt *cryptSwitch    // the encrypted networks' tunnels
}

// NewNode returns a node side over cfg.
func NewNode(cfg NodeConfig) *Node {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Run == nil {
		cfg.Run = runCommand
	}
	n := &Node{cfg: cfg, log: cfg.Logger, dns: NewDNS(cfg.Logger), owned: map[string]bool{}, crypt: newCryptSwitch(cfg.Logger)}
	n.loadOwned()
	return n
}

func (n *Node) loadOwned() {
	if n.cfg.StateFile == "" {
		return
	}
	b, err := os.ReadFile(n.cfg.StateFile)
	if err != nil {
		return
	}
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		n.log.Warn("overlay: unreadable state file", "path", n.cfg.StateFile, "err", err)
		return
	}
	for _, name := range names {
		n.owned[name] = true
	}
}

// setOwned records the devices this node made now.
func (n *Node) setOwned(owned map[string]bool) {
	if maps.Equal(owned, n.owned) {
		return
	}
	n.owned = owned
	if n.cfg.StateFile == "" {
		return
	}
	names := slices.Sorted(maps.Keys(owned))
	b, _ := json.Marshal(names)
	if err := os.WriteFile(n.cfg.StateFile, b, 0o600); err != nil {
		n.log.Warn("overlay: state file", "path", n.cfg.StateFile, "err", err)
	}
}

// Run converges every Period until ctx ends. It keeps the devices when it
// stops: the containers on them keep talking while shoal restarts (Remove
// takes them away when the node leaves).
func (n *Node) Run(ctx context.Context) error {
	defer n.dns.Close()
	defer n.crypt.close() // the TAP devices go; the bridges and containers stay
	t := time.NewTicker(Period)
	defer t.Stop()
	for {
		st, err := n.cfg.Fetch(ctx)
		if err != nil {
			n.log.Debug("overlay: desired state", "err", err)
		} else {
			if err := n.Converge(ctx, st.Networks); err != nil {
				n.log.Warn("overlay: converge", "err", err)
			}
			if err := n.convergeVIP(ctx, st.Networks); err != nil {
				n.log.Warn("overlay: service VIPs", "err", err)
			}
			if err := n.convergeMesh(ctx, st.Mesh); err != nil {
				n.log.Warn("overlay: routing mesh", "err", err)
			}
			if n.cfg.Prune != nil {
				n.cfg.Prune(ctx, st.Networks)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Converge makes the node's devices and DNS servers what want says. Only
// devices this node made are removed; a node that never made any and is
// asked for none does not look at the kernel at all.
func (n *Node) Converge(ctx context.Context, want []Network) error {
	n.dns.Serve(want)
	cryptErr := n.crypt.sync(want) // first: the plan puts the TAP devices it opens on their bridges
	if len(want) == 0 && len(n.owned) == 0 {
		return cryptErr
	}
	obs, err := n.Observe(ctx)
	if err != nil {
		return err
	}
	owned := map[string]bool{}
	vnis := map[uint32]bool{}
	for _, nw := range want {
		for _, dev := range []string{nw.Bridge, nw.VXLAN, nw.Tap} {
			if dev != "" { // an encrypted network has no VXLAN device, a plain one no TAP
				owned[dev] = true
			}
		}
		vnis[nw.VNI] = true
	}
	for name, l := range obs.Links {
		// A VXLAN device of shoal's that holds a VNI wanted under
		// another name is a stale one (of a cluster this node was in
		// before, stopped without leaving): the kernel takes a VNI once
		// per namespace, so it goes.
		stale := l.Kind == "vxlan" && strings.HasPrefix(name, vxlanPrefix) && vnis[l.VNI]
		if !owned[name] && !n.owned[name] && !stale {
			delete(obs.Links, name) // not ours to remove
		}
	}
	errs := []error{cryptErr}
	for _, argv := range Plan(want, obs) {
		n.log.Info("overlay: plumbing", "cmd", strings.Join(argv, " "))
		if out, err := n.cfg.Run(ctx, argv); err != nil {
			errs = append(errs, fmt.Errorf("overlay: %s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out)))
			if len(argv) == 4 && argv[1] == "link" && argv[2] == "del" {
				owned[argv[3]] = true // still there: removed on the next pass
			}
		}
	}
	n.dns.Serve(want) // again: a gateway the engine has just set up
	n.setOwned(owned)
	return errors.Join(errs...)
}

// Remove takes away every device and rule the agent made (the node left).
func (n *Node) Remove(ctx context.Context) error {
	n.dns.Close()
	var merr error
	if n.mesh.script != "" { // this run programmed one (a pass with none removes any left before)
		merr = n.removeMesh(ctx, true, n.mesh.bridge)
		n.mesh = meshState{}
	}
	return errors.Join(merr, n.removeVIP(ctx), n.Converge(ctx, nil))
}

// Observe reads the devices and flood entries the agent manages.
func (n *Node) Observe(ctx context.Context) (Observed, error) {
	out, err := n.cfg.Run(ctx, []string{"ip", "-d", "-j", "link", "show"})
	if err != nil {
		return Observed{}, fmt.Errorf("overlay: ip link show: %w", err)
	}
	links, err := parseLinks(out)
	if err != nil {
		return Observed{}, err
	}
	obs := Observed{Links: links, Flood: map[string][]string{}}
	if !slices.ContainsFunc(mapKeys(links), func(s string) bool { return strings.HasPrefix(s, vxlanPrefix) }) {
		return obs, nil
	}
	out, err = n.cfg.Run(ctx, []string{"bridge", "-j", "fdb", "show"})
	if err != nil {
		return Observed{}, fmt.Errorf("overlay: bridge fdb show: %w", err)
	}
	obs.Flood, err = parseFlood(out)
	return obs, err
}

func mapKeys(m map[string]Link) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// parseLinks reads `ip -d -j link show`, keeping the agent's devices.
func parseLinks(out []byte) (map[string]Link, error) {
	var raw []struct {
		Ifname   string   `json:"ifname"`
		Flags    []string `json:"flags"`
		Master   string   `json:"master"`
		Linkinfo struct {
			Kind string `json:"info_kind"`
			Data struct {
				ID uint32 `json:"id"`
			} `json:"info_data"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("overlay: ip link show: %w", err)
	}
	links := map[string]Link{}
	for _, r := range raw {
		if !isOurs(r.Ifname) {
			continue
		}
		l := Link{Name: r.Ifname, Kind: r.Linkinfo.Kind, Master: r.Master, Up: slices.Contains(r.Flags, "UP")}
		if l.Kind == "vxlan" {
			l.VNI = r.Linkinfo.Data.ID
		}
		links[r.Ifname] = l
	}
	return links, nil
}

// parseFlood reads `bridge -j fdb show`: the all-zeros entries of the
// agent's VXLAN devices.
func parseFlood(out []byte) (map[string][]string, error) {
	var raw []struct {
		Mac    string `json:"mac"`
		Ifname string `json:"ifname"`
		Dst    string `json:"dst"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("overlay: bridge fdb show: %w", err)
	}
	flood := map[string][]string{}
	for _, r := range raw {
		if r.Mac == zeroMAC && r.Dst != "" && strings.HasPrefix(r.Ifname, vxlanPrefix) {
			flood[r.Ifname] = append(flood[r.Ifname], r.Dst)
		}
	}
	return flood, nil
}

func runCommand(ctx context.Context, argv []string) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, argv[0], argv[1:]...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		out = ee.Stderr
	}
	return out, err
}
