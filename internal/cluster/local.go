package cluster

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/store"
)

// A node's data directory holds its certificates, its state (who it is,
// where the managers are) and, on a manager, the store member's data.

func (c *Cluster) certDir() string { return filepath.Join(c.cfg.DataDir, "certificates") }

func (c *Cluster) stateFile() string { return filepath.Join(c.cfg.DataDir, "state.json") }

func (c *Cluster) storeDir() string { return filepath.Join(c.cfg.DataDir, "raft") }

func (c *Cluster) saveState() error { return c.saveStateOf(c.st) }

func (c *Cluster) saveStateOf(st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(c.stateFile(), b, 0o600)
}

func (c *Cluster) loadState() error {
	b, err := os.ReadFile(c.stateFile())
	if err != nil {
		return err
	}
	return json.Unmarshal(b, &c.st)
}

// listenPort is the cluster port number.
func (c *Cluster) listenPort() int {
	_, p, err := net.SplitHostPort(c.cfg.ListenAddr)
	if err != nil {
		return 2377
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return 2377
	}
	return n
}

func (c *Cluster) listenHost() string {
	h, _, _ := net.SplitHostPort(c.cfg.ListenAddr)
	return h
}

// myClusterAddr is the cluster port this node serves when a manager.
func (c *Cluster) myClusterAddr() string {
	return net.JoinHostPort(c.st.Addr, strconv.Itoa(c.listenPort()))
}

// storeConfig is this manager's store member.
func (c *Cluster) storeConfig(join []string) store.Config {
	port := c.listenPort()
	host := c.listenHost()
	if host == "" {
		host = "0.0.0.0"
	}
	dir := c.certDir()
	return store.Config{
		Name:             c.st.NodeID,
		Dir:              c.storeDir(),
		ClientURL:        fmt.Sprintf("https://%s", net.JoinHostPort(c.st.Addr, strconv.Itoa(port+1))),
		PeerURL:          fmt.Sprintf("https://%s", net.JoinHostPort(c.st.Addr, strconv.Itoa(port+2))),
		ListenClientURL:  fmt.Sprintf("https://%s", net.JoinHostPort(host, strconv.Itoa(port+1))),
		ListenPeerURL:    fmt.Sprintf("https://%s", net.JoinHostPort(host, strconv.Itoa(port+2))),
		TLS:              store.TLSFiles{CAFile: filepath.Join(dir, ca.RootCertFile), CertFile: filepath.Join(dir, ca.NodeCertFile), KeyFile: c.nodeKeyPath(filepath.Join(dir, ca.NodeKeyFile))},
		Cipher:           c.storeCipher(),
		AllowedHostnames: []string{string(ca.RoleManager)},
		Join:             join,
		ClusterToken:     c.st.ClusterID,
		WriteTimeout:     c.cfg.StoreWriteTimeout,
		Logger:           c.log,
	}
}

// advertise picks this node's address: the flag, the listen host, or
// the first non-loopback IPv4 address.
func (c *Cluster) advertise(fallback string) (string, error) {
	if c.cfg.AdvertiseAddr != "" {
		return c.cfg.AdvertiseAddr, nil
	}
	if h := c.listenHost(); h != "" && h != "0.0.0.0" && h != "::" {
		return h, nil
	}
	if fallback != "" {
		return fallback, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "", errors.New("cluster: no address to advertise; use --advertise-addr")
}

// newID returns a swarm-style ID: 25 base36 characters.
func newID() string {
	n, _ := rand.Int(rand.Reader, new(big.Int).Exp(big.NewInt(36), big.NewInt(25), nil))
	s := n.Text(36)
	for len(s) < 25 {
		s = "0" + s
	}
	return s
}
