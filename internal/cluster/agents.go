package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/agent"
)

// renewRetry is how soon a failed certificate renewal is tried again.
const renewRetry = 2 * time.Second

// runAgents keeps one tunnel to each manager, learning the manager list
// and this node's role from the managers themselves, and renews this
// node's certificate when due. It returns ErrRoleChanged once the node has
// taken a new role.
func (c *Cluster) runAgents(ctx context.Context, tr http.RoundTripper) error {
	as := c.newAgents(ctx)
	c.agentsNow.Store(as)
	defer c.agentsNow.CompareAndSwap(as, nil)
	defer as.stop()
	go as.files.Run(ctx)
	as.apply(c.st.Managers)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	// The first call after selfPeriod, as before; then every selfPeriod,
	// or every pollPeriod and when a manager wakes us (wake.go).
	t := time.NewTimer(selfPeriod)
	defer t.Stop()
	renewT := time.NewTimer(c.renewIn())
	defer renewT.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-renewT.C:
			renewT.Reset(c.renewOnce(ctx, hc))
			continue
		case <-t.C:
		case <-c.wake.self:
		}
		ok, err := c.followSelf(ctx, hc, as)
		if err != nil {
			return err
		}
		t.Stop()
		t.Reset(c.wake.nextPoll(selfPeriod, ok))
		renewT.Reset(c.renewIn()) // what the managers said may bring it forward
	}
}

// renewOnce renews the certificate and says when to renew next. A node
// renewed asks about itself again soon (a rotation may want another).
func (c *Cluster) renewOnce(ctx context.Context, hc *http.Client) time.Duration {
	if err := c.renew(ctx, hc); err != nil {
		c.log.Warn("cluster: certificate renewal", "err", err)
		return renewRetry
	}
	c.wake.woken(wakeSelf)
	return c.renewIn()
}

// followSelf asks the managers about this node and acts on what changed:
// its role (ErrRoleChanged once acted on) or the list of managers. ok
// says a manager answered.
func (c *Cluster) followSelf(ctx context.Context, hc *http.Client, as *agents) (ok bool, err error) {
	self, err := c.fetchSelf(ctx, hc)
	if errors.Is(err, ErrRemoved) {
		return false, fmt.Errorf("%w; to join again, empty --data-dir %s and run shoal join --token", err, c.cfg.DataDir)
	}
	if err != nil {
		c.log.Debug("cluster: own record", "err", err)
		return false, nil
	}
	if self.Left {
		return true, ErrLeft
	}
	c.wake.managerWakes.Store(self.Wakes)
	c.followCA(self)
	if want, ok := roleChange(c.st.Role, self.Role); ok {
		c.log.Info("cluster: role change", "from", c.st.Role, "to", want)
		if err := c.changeRole(ctx, hc, want); err != nil {
			c.log.Warn("cluster: role change", "to", want, "err", err)
			return false, nil // asked again soon
		}
		return true, ErrRoleChanged
	}
	if len(self.Managers) == 0 {
		return true, nil
	}
	if !slices.Equal(self.Managers, c.st.Managers) {
		c.log.Info("cluster: managers changed", "managers", self.Managers)
		c.st.Managers = self.Managers
		_ = c.saveState()
	}
	as.apply(self.Managers)
	return true, nil
}

// agents runs one agent (tunnel) per manager.
type agents struct {
	ctx     context.Context
	newNode func(addr string) (*agent.Node, error)
	log     *slog.Logger
	files   *agent.TaskFiles // the node's secrets and configs for tasks, in a tmpfs

	mu      sync.Mutex // running: apply changes it, the node's calls read it (tunnelTo)
	running map[string]runningAgent
}

// runningAgent is the agent of one manager (by its address) and what stops it.
type runningAgent struct {
	node *agent.Node
	stop context.CancelFunc
}

// taskFilesDir is where, in the data directory, the agent mounts the
// tmpfs holding task files.
const taskFilesDir = "task-files"

func (c *Cluster) newAgents(ctx context.Context) *agents {
	tlsConf := c.root.ClientTLSConfig(c.kp)
	tlsConf.NextProtos = []string{protoTunnel}
	// One node-local endpoint serves the tunnels to every manager.
	files := agent.NewTaskFiles(agent.TaskFilesConfig{Dir: filepath.Join(c.cfg.DataDir, taskFilesDir), DialEngine: c.engineDialer(), Logger: c.log})
	newNode := func(addr string) (*agent.Node, error) {
		return agent.NewNode(agent.NodeConfig{
			Managers: []string{addr}, TLS: tlsConf, DialEngine: c.engineDialer(),
			Timing: c.cfg.Timing, MaxBackoff: 2 * time.Second, Logger: c.log, Local: nodeLocal{files: files, w: c.wake},
			Down: func() {
				c.wake.woken(wakeSelf | wakeOverlay) // removed, left, a manager gone, a partition: ask (wake.go)
				if calls := c.calls.Load(); calls != nil {
					calls.note(addr, 0, false) // the manager may come back as another release: over TLS until it says
				}
			},
		})
	}
	return &agents{ctx: ctx, newNode: newNode, running: map[string]runningAgent{}, log: c.log, files: files}
}

// apply starts an agent for each new manager and stops those of managers
// no longer listed.
func (a *agents) apply(managers []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, addr := range managers {
		if _, ok := a.running[addr]; ok {
			continue
		}
		n, err := a.newNode(addr)
		if err != nil {
			a.log.Error("cluster: agent", "manager", addr, "err", err)
			continue
		}
		actx, cancel := context.WithCancel(a.ctx)
		a.running[addr] = runningAgent{node: n, stop: cancel}
		go n.Run(actx)
	}
	for addr, r := range a.running {
		if !slices.Contains(managers, addr) {
			r.stop()
			delete(a.running, addr)
		}
	}
}

func (a *agents) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.running {
		r.stop()
	}
}

// node is the agent for the manager at addr, nil if none runs.
func (a *agents) node(addr string) *agent.Node {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.running[addr].node
}

// nodeTransport carries this node's calls to the managers' cluster ports
// (its record every selfPeriod, its overlay networks every overlay.Period,
// renewals) over one TLS connection per manager: every manager keeps a
// connection open for each node's, a TLS connection's buffers and a
// goroutine each (the tunnel is a third).
func (c *Cluster) nodeTransport() *http.Transport {
	return &http.Transport{TLSClientConfig: c.httpTLS(), MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
}

// httpTLS is the client side of the cluster port's HTTP calls with this
// node's certificate.
func (c *Cluster) httpTLS() *tls.Config {
	conf := c.root.ClientTLSConfig(c.kp)
	conf.NextProtos = []string{"http/1.1"}
	return conf
}

// engineDialer reaches the local engine: a unix socket or tcp address.
func (c *Cluster) engineDialer() func(ctx context.Context) (net.Conn, error) {
	network, address := "unix", strings.TrimPrefix(c.cfg.Engine, "unix://")
	if strings.HasPrefix(c.cfg.Engine, "tcp://") || !strings.Contains(c.cfg.Engine, "://") && !strings.HasPrefix(c.cfg.Engine, "/") {
		network, address = "tcp", strings.TrimPrefix(c.cfg.Engine, "tcp://")
	}
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
}
