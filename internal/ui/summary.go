package ui

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/shoal-dev/shoal/internal/authz"
)

// Map is GET /ui/api/map: the whole cluster in one compact answer, for
// the console's first paint; the browser keeps it current from /events.
// At 1,000 nodes and 30,000 containers /containers/json is ~25 MB, this
// ~2 MB (a few hundred KB gzipped): containers are rows of
// [ID (12), name under its node, node index, state, image index, service].
type Map struct {
	Role       string   `json:"role"` // the caller's: the console hides what it may not do
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Totals     Totals   `json:"totals"`
	Nodes      []Node   `json:"nodes"`
	Images     []string `json:"images"`
	Containers [][]any  `json:"containers"`
	Warnings   []string `json:"warnings"`
}

// Totals are the cluster's sums, as /info counts them.
type Totals struct {
	Nodes, Healthy                       int
	Containers, Running, Paused, Stopped int
	Images, CPUs                         int
	Memory                               int64
}

// Node is one node of the cluster as /info lists it (classic Swarm's
// lines). Member says it is a shoal itself (federation): its containers'
// names then start with its own nodes' names.
type Node struct {
	Name       string   `json:"name"`
	Addr       string   `json:"addr"`
	ID         string   `json:"id"`
	Status     string   `json:"status"`
	Containers string   `json:"containers"`
	CPUs       string   `json:"cpus"`   // reserved / total
	Memory     string   `json:"memory"` // reserved / total
	Labels     []string `json:"labels"`
	Error      string   `json:"error"`
	Version    string   `json:"version"`
	Member     bool     `json:"member"`
	Kind       string   `json:"kind,omitempty"` // a member's: "shoal member: 3 nodes (3 healthy)"
}

func (h *Handler) serveMap(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	m, err := h.buildMap(r)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			writeError(w, ae.Status, ae.Message)
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		_ = jsonEncode(w, m)
		return
	}
	w.Header().Set("Content-Encoding", "gzip")
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	_ = jsonEncode(zw, m)
	_ = zw.Close()
}

// buildMap asks the API for /info and every container, as the caller.
func (h *Handler) buildMap(r *http.Request) (*Map, error) {
	infoJSON, err := h.call(r, http.MethodGet, "/info", nil)
	if err != nil {
		return nil, err
	}
	var info struct {
		Name, ServerVersion                                                string
		Containers, ContainersRunning, ContainersPaused, ContainersStopped int
		Images, NCPU                                                       int
		MemTotal                                                           int64
		DriverStatus                                                       [][2]string
		Warnings                                                           []string
	}
	if err := json.Unmarshal(infoJSON, &info); err != nil {
		return nil, err
	}
	// The list is decoded as the API writes it, entry by entry: at 30,000
	// containers it is ~25 MB that need never be held whole.
	var cs []listed
	err = h.stream(r, "/containers/json?all=1", func(dec *json.Decoder) error {
		if _, err := dec.Token(); err != nil { // [
			return err
		}
		for dec.More() {
			var c listed
			if err := dec.Decode(&c); err != nil {
				return err
			}
			cs = append(cs, c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	id, _ := authz.From(r.Context())
	m := &Map{Role: id.Role.String(), Name: info.Name, Version: info.ServerVersion, Warnings: info.Warnings,
		Nodes: parseNodes(info.DriverStatus), Images: []string{}}
	if m.Warnings == nil {
		m.Warnings = []string{}
	}
	m.Totals = Totals{Nodes: len(m.Nodes), Containers: info.Containers, Running: info.ContainersRunning,
		Paused: info.ContainersPaused, Stopped: info.ContainersStopped, Images: info.Images, CPUs: info.NCPU, Memory: info.MemTotal}
	for _, n := range m.Nodes {
		if n.Status == "Healthy" {
			m.Totals.Healthy++
		}
	}
	m.Containers = rows(cs, m.Nodes, &m.Images)
	return m, nil
}

// listed is what the map needs of a /containers/json entry (the one
// label it shows is a field: the others are skipped, not decoded).
type listed struct {
	ID     string `json:"Id"`
	Names  []string
	Image  string
	State  string
	Labels struct {
		Service string `json:"com.docker.swarm.service.name"`
	}
}

// rows turns the container list into the map's rows, interning images.
func rows(cs []listed, nodes []Node, images *[]string) [][]any {
	nodeIdx := make(map[string]int, len(nodes))
	for i, n := range nodes {
		nodeIdx[n.Name] = i
	}
	imageIdx := map[string]int{}
	out := make([][]any, 0, len(cs))
	for _, c := range cs {
		node, name := -1, strings.TrimPrefix(first(c.Names), "/")
		if nn, rest, ok := strings.Cut(name, "/"); ok {
			if i, found := nodeIdx[nn]; found {
				node, name = i, rest
			}
		}
		img, ok := imageIdx[c.Image]
		if !ok {
			img = len(*images)
			imageIdx[c.Image] = img
			*images = append(*images, c.Image)
		}
		id := c.ID
		if len(id) > 12 {
			id = id[:12]
		}
		out = append(out, []any{id, name, node, c.State, img, c.Labels.Service})
	}
	return out
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// parseNodes reads the nodes from /info's DriverStatus, where each node is
// a line [" name", "addr"] followed by ["  └ Field", "value"] lines.
func parseNodes(status [][2]string) []Node {
	nodes := []Node{}
	var cur *Node
	for _, kv := range status {
		k, v := kv[0], kv[1]
		if field, ok := strings.CutPrefix(k, "  └ "); ok {
			if cur != nil {
				cur.set(field, v)
			}
			continue
		}
		if strings.HasPrefix(k, " ") {
			nodes = append(nodes, Node{Name: strings.TrimSpace(k), Addr: v, Labels: []string{}})
			cur = &nodes[len(nodes)-1]
			continue
		}
		cur = nil // Strategy, Nodes...
	}
	return nodes
}

func (n *Node) set(field, v string) {
	switch field {
	case "ID":
		n.ID = v
	case "Status":
		n.Status = v
	case "Containers":
		n.Containers = v
	case "Reserved CPUs":
		n.CPUs = v
	case "Reserved Memory":
		n.Memory = v
	case "Labels":
		if v != "" {
			n.Labels = strings.Split(v, ", ")
		}
	case "Error":
		if v != "(none)" {
			n.Error = v
		}
	case "Kind":
		n.Kind = v
	case "ServerVersion":
		n.Version = v
		n.Member = strings.HasPrefix(v, "shoal/")
	}
}
