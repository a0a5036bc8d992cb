package cluster

// TunnelsUp is how many nodes' agent tunnels are connected to this manager
// now (0 on a worker): the metrics' tunnels up.
func (c *Cluster) TunnelsUp() int {
	if c.tunnels == nil {
		return 0
	}
	return len(c.tunnels.Connected())
}
