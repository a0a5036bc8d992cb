package dockerapi

import (
	"context"
	"net/http"

	"github.com/shoal-dev/shoal/internal/backend"
)

// ClusterNetworks is what a Networks backend with cluster-wide networks
// (the built-in cluster's overlay networks) adds: inspect and remove of a
// network that no one engine owns. found is false for any other network,
// which its engine then answers.
type ClusterNetworks interface {
	InspectClusterNetwork(ctx context.Context, ref string) (obj backend.Object, found bool, err error)
	RemoveClusterNetwork(ctx context.Context, ref string) (found bool, err error)
}

// clusterNetwork serves inspect and remove of a cluster network; done is
// false when ref is not one.
func (s *Server) clusterNetwork(w http.ResponseWriter, r *http.Request, ref string) (done bool, err error) {
	cn, ok := s.b.Networks.(ClusterNetworks)
	if !ok {
		return false, nil
	}
	if r.Method == http.MethodDelete {
		found, err := cn.RemoveClusterNetwork(r.Context(), ref)
		if !found || err != nil {
			return found || err != nil, err
		}
		w.WriteHeader(http.StatusNoContent)
		return true, nil
	}
	obj, found, err := cn.InspectClusterNetwork(r.Context(), ref)
	if !found || err != nil {
		return found || err != nil, err
	}
	return true, writeJSON(w, http.StatusOK, obj)
}
