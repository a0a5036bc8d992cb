package manager

import (
	"cmp"
	"context"
	"net/url"
	"slices"
	"sync"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
)

// ListPlugins is docker plugin ls over the pool: each healthy engine's
// plugins, as it listed them (its filters applied there), with the node
// it is on in an added "Node" field, sorted by node and name. An engine
// that does not answer is left out; a filter every engine refuses is
// their answer.
func (m *Manager) ListPlugins(ctx context.Context, version string, query url.Values) ([]map[string]any, error) {
	m.awaitContact(ctx)
	cq := engine.ClientQuery{Version: version, Query: query}
	var mu sync.Mutex
	out := []map[string]any{}
	engines := m.pool.Healthy()
	errs := m.fanOut(ctx, engines, m.live(readPatience, func(ctx context.Context, e *engine.Engine) error {
		list, err := e.ListPlugins(ctx, cq)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, p := range list {
			p["Node"] = m.InspectNode(e)
			out = append(out, p)
		}
		return nil
	}))
	if err := refusedByAll(errs, len(engines)); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b map[string]any) int {
		return cmp.Or(cmp.Compare(nodeName(a), nodeName(b)), cmp.Compare(str(a["Name"]), str(b["Name"])))
	})
	return out, nil
}

func nodeName(p map[string]any) string {
	if n, ok := p["Node"].(*backend.NodeSummary); ok && n != nil {
		return n.Name
	}
	return ""
}

func str(v any) string { s, _ := v.(string); return s }
