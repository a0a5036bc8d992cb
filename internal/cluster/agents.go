package cluster

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/agent"
)

// runAgents keeps one tunnel to each manager, learning the manager list
// from the managers themselves.
func (c *Cluster) runAgents(ctx context.Context) error {
	running := map[string]context.CancelFunc{}
	defer func() {
		for _, cancel := range running {
			cancel()
		}
	}()
	tlsConf := c.root.ClientTLSConfig(c.kp)
	tlsConf.NextProtos = []string{protoTunnel}
	apply := func(managers []string) {
		for _, addr := range managers {
			if running[addr] != nil {
				continue
			}
			n, err := agent.NewNode(agent.NodeConfig{
				Managers: []string{addr}, TLS: tlsConf, DialEngine: c.engineDialer(),
				Timing: c.cfg.Timing, MaxBackoff: 2 * time.Second, Logger: c.log,
			})
			if err != nil {
				c.log.Error("cluster: agent", "manager", addr, "err", err)
				continue
			}
			actx, cancel := context.WithCancel(ctx)
			running[addr] = cancel
			go n.Run(actx)
		}
		for addr, cancel := range running {
			if !slices.Contains(managers, addr) {
				cancel()
				delete(running, addr)
			}
		}
	}
	apply(c.st.Managers)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c.httpTLS()}}
	defer hc.CloseIdleConnections()
	t := time.NewTicker(selfPeriod)
	defer t.Stop()
	renewT := time.NewTimer(c.renewIn())
	defer renewT.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-renewT.C:
			next := 2 * time.Second // retry soon after a failure
			if err := c.renew(ctx, hc); err != nil {
				c.log.Warn("cluster: certificate renewal", "err", err)
			} else {
				next = c.renewIn()
			}
			renewT.Reset(next)
			continue
		case <-t.C:
		}
		self, err := c.fetchSelf(ctx, hc)
		if err != nil {
			c.log.Debug("cluster: own record", "err", err)
			continue
		}
		if self.Role != c.st.Role && (self.Role == RoleManager || self.Role == RoleWorker) {
			c.log.Info("cluster: role change", "from", c.st.Role, "to", self.Role)
			if err := c.changeRole(ctx, hc, self.Role); err != nil {
				c.log.Warn("cluster: role change", "to", self.Role, "err", err)
				continue
			}
			return ErrRoleChanged
		}
		managers := self.Managers
		if len(managers) == 0 {
			continue
		}
		if !slices.Equal(managers, c.st.Managers) {
			c.log.Info("cluster: managers changed", "managers", managers)
			c.st.Managers = managers
			_ = c.saveState()
		}
		apply(managers)
	}
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
