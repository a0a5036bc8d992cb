package cluster

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"time"
)

// engineHostnameWait bounds how long a starting node asks its engine for
// its hostname before it falls back to its own.
const engineHostnameWait = 3 * time.Second

// nodeHostname is the name a node registers under when none was given:
// its engine's (what /info says as Name, the host the containers run on,
// as swarm mode registers a node) or, when the engine does not answer in
// time, this process's. They are the same on a host where shoal runs next
// to its engine; they differ when shoal runs in another UTS namespace or
// manages an engine elsewhere, and then the node's name in `docker node
// ls` is the one `constraint:node==` and the engine's own `info` use.
func (c *Cluster) nodeHostname(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, engineHostnameWait)
	defer cancel()
	dial := c.engineDialer()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
	}}
	defer client.CloseIdleConnections()
	if req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://engine/info", nil); err == nil {
		if resp, err := client.Do(req); err == nil {
			var info struct{ Name string }
			err := json.NewDecoder(resp.Body).Decode(&info)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK && info.Name != "" {
				return info.Name
			}
		}
	}
	name, _ := os.Hostname()
	return name
}

// localNames are the names this node's own certificate carries: its node
// name and this host's, when they differ.
func (c *Cluster) localNames() []string {
	own, _ := os.Hostname()
	return []string{c.cfg.Hostname, own}
}
