package dockerapi

import (
	"context"
	"net/http"
	"time"

	"github.com/shoal-dev/shoal/internal/backend"
)

// labelStackNamespace is the label `docker stack deploy` gives every
// network, secret, config and service of a stack.
const labelStackNamespace = "com.docker.stack.namespace"

// undoRefusedStack runs after shoal refused, as bad input (4xx), one of
// a stack's objects (labels are the refused object's). The CLI makes a
// stack's networks, then its secrets and configs, then its services, one
// call each, and undoes none of them when one is refused: a first deploy
// with a bad option left networks and secrets that `docker stack ls`
// does not even list. So when the stack has no service yet, shoal removes
// what the deploy made of it. A stack that has services (a deploy that
// updates it) is left as it is.
func (s *Server) undoRefusedStack(ctx context.Context, labels map[string]string, refused error) {
	ns := labels[labelStackNamespace]
	if ns == "" || refused == nil || statusOf(refused)/100 != 4 && statusOf(refused) != http.StatusNotImplemented {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	f := backend.Filters{"label": {labelStackNamespace + "=" + ns}}
	if sv, err := s.services(); err == nil {
		if list, err := sv.Services(ctx, f, false); err != nil || len(list) > 0 {
			return
		}
	}
	undo := func(kind, id string, err error) {
		if err != nil {
			s.log.Warn("stack: undo a refused deploy", "stack", ns, "kind", kind, "id", id, "err", err)
			return
		}
		s.log.Info("stack: removed what a refused deploy made", "stack", ns, "kind", kind, "id", id)
	}
	if cn, ok := s.b.Networks.(ClusterNetworks); ok {
		nets, _ := s.b.Networks.ListNetworks(ctx, backend.ListOptions{Filters: f})
		for _, n := range nets {
			if id := n.String("Id"); n.String("Scope") == "swarm" {
				_, err := cn.RemoveClusterNetwork(ctx, id)
				undo("network", id, err)
			}
		}
	}
	if sb, err := s.secrets(); err == nil {
		list, _ := sb.Secrets(ctx, f)
		for _, x := range list {
			undo("secret", x.ID, sb.RemoveSecret(ctx, x.ID))
		}
	}
	if cb, err := s.configs(); err == nil {
		list, _ := cb.Configs(ctx, f)
		for _, x := range list {
			undo("config", x.ID, cb.RemoveConfig(ctx, x.ID))
		}
	}
}
