package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/store"
)

func (c *Cluster) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req joinRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "bad join request: "+err.Error())
		return
	}
	resp, err := c.admit(r.Context(), req, r.RemoteAddr)
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, ca.ErrInvalidToken):
			status = http.StatusForbidden
		case errors.Is(err, ca.ErrInvalidCSR):
			status = http.StatusBadRequest
		case errors.Is(err, store.ErrNoQuorum):
			status = http.StatusServiceUnavailable
		}
		c.log.Warn("join refused", "remote", r.RemoteAddr, "hostname", req.Hostname, "err", err)
		httpError(w, status, err.Error())
		return
	}
	writeJSONResp(w, resp)
}

// admit checks a join token, issues the node's certificate and records it.
func (c *Cluster) admit(ctx context.Context, req joinRequest, remote string) (*joinResponse, error) {
	tr, err := c.tokens(ctx)
	if err != nil {
		return nil, err
	}
	role, err := tr.Tokens.Admit(req.Token)
	if err != nil {
		return nil, err
	}
	addr := req.Addr
	if addr == "" {
		addr, _, _ = net.SplitHostPort(remote)
	}
	id := newID()
	certPEM, err := c.sign(ctx, req.CSR, id, role, addr)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	n := Node{ID: id, Hostname: req.Hostname, Role: apiRole(role), Availability: "active", Addr: addr, Version: 1, CreatedAt: now, UpdatedAt: now}
	if role == ca.RoleManager {
		n.ClusterAddr = req.ClusterAddr
	}
	if err := c.write(ctx, func(ctx context.Context) error { _, err := c.nodes.Create(ctx, id, n); return err }); err != nil {
		return nil, err
	}
	c.log.Info("node joined", "node", id, "hostname", req.Hostname, "role", n.Role, "addr", addr)
	resp := &joinResponse{NodeID: id, ClusterID: c.st.ClusterID, Role: n.Role, Cert: certPEM, Managers: c.managerAddrs()}
	if role == ca.RoleManager {
		members, err := c.store.Members(ctx)
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			if !m.Learner {
				resp.StoreURLs = append(resp.StoreURLs, m.ClientURLs...)
			}
		}
		if n.ClusterAddr != "" && !slices.Contains(resp.Managers, n.ClusterAddr) {
			resp.Managers = append(resp.Managers, n.ClusterAddr)
		}
	}
	return resp, nil
}

// sign issues a node certificate for a CSR with the identity given here.
func (c *Cluster) sign(ctx context.Context, csr []byte, id string, role ca.Role, addr string) ([]byte, error) {
	return c.root.SignCSR(csr, ca.NodeRequest{NodeID: id, Role: role, Hosts: certHosts(role, addr),
		Lifetime: c.certLifetime(ctx), AllowShort: true})
}

func certHosts(role ca.Role, addr string) []string {
	hosts := []string{addr}
	if role == ca.RoleManager {
		hosts = append(hosts, "127.0.0.1", "localhost")
	}
	return hosts
}
