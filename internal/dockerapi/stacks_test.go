package dockerapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
)

// stackObjects holds one stack's objects, as `docker stack deploy` made
// them, and records what is removed.
type stackObjects struct {
	Networks
	services []swarm.Service
	removed  []string
}

// stackServices, stackSecrets and stackConfigs are stackObjects' services,
// secrets and configs.
type (
	servicesAPI   = Services // embedded under another name: a field may not share its method's
	secretsAPI    = Secrets
	configsAPI    = Configs
	stackServices struct {
		servicesAPI
		*stackObjects
	}
	stackSecrets struct {
		secretsAPI
		*stackObjects
	}
	stackConfigs struct {
		configsAPI
		*stackObjects
	}
)

func (f stackServices) Services(context.Context, backend.Filters, bool) ([]swarm.Service, error) {
	return f.services, nil
}

func (f stackServices) CreateService(context.Context, swarm.ServiceSpec, string) (swarm.ServiceCreateResponse, error) {
	return swarm.ServiceCreateResponse{}, errdefs.ErrInvalidArgument.WithMessage("EndpointSpec: port published with ingress mode can't be used with dnsrr mode")
}

func (f *stackObjects) ListNetworks(_ context.Context, o backend.ListOptions) ([]backend.Object, error) {
	if !slices.Equal(o.Filters["label"], []string{"com.docker.stack.namespace=app"}) {
		return nil, nil
	}
	return []backend.Object{{"Id": json.RawMessage(`"net1"`), "Scope": json.RawMessage(`"swarm"`)},
		{"Id": json.RawMessage(`"local1"`), "Scope": json.RawMessage(`"local"`)}}, nil
}

func (f *stackObjects) InspectClusterNetwork(context.Context, string) (backend.Object, bool, error) {
	return nil, false, nil
}

func (f *stackObjects) RemoveClusterNetwork(_ context.Context, ref string) (bool, error) {
	f.removed = append(f.removed, "network "+ref)
	return true, nil
}

func (f stackSecrets) Secrets(_ context.Context, fl backend.Filters) ([]swarm.Secret, error) {
	return []swarm.Secret{{ID: "sec1"}}, nil
}

func (f stackSecrets) RemoveSecret(_ context.Context, ref string) error {
	f.removed = append(f.removed, "secret "+ref)
	return nil
}

func (f stackConfigs) Configs(context.Context, backend.Filters) ([]swarm.Config, error) {
	return []swarm.Config{{ID: "conf1"}}, nil
}

func (f stackConfigs) RemoveConfig(_ context.Context, ref string) error {
	f.removed = append(f.removed, "config "+ref)
	return nil
}

// A stack's first deploy whose service is refused leaves nothing: the
// networks, secrets and configs the CLI made before are removed. A
// refusal outside a stack, an error that is not bad input, or a stack
// that already has services removes nothing.
func TestUndoRefusedStack(t *testing.T) {
	f := &stackObjects{}
	s := NewServer(Backends{Networks: f}, "test", nil)
	s.Services, s.Secrets, s.Configs = stackServices{stackObjects: f}, stackSecrets{stackObjects: f}, stackConfigs{stackObjects: f}
	body := `{"Name":"app_web","Labels":{"com.docker.stack.namespace":"app"},"TaskTemplate":{"ContainerSpec":{"Image":"busybox"}}}`
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1.41/services/create", strings.NewReader(body)))
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "dnsrr") {
		t.Fatalf("refused create: %d %s", w.Code, w.Body)
	}
	if want := []string{"network net1", "secret sec1", "config conf1"}; !slices.Equal(f.removed, want) {
		t.Errorf("removed %v, want %v", f.removed, want)
	}

	stack := map[string]string{labelStackNamespace: "app"}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		err    error
		svcs   []swarm.Service
	}{
		{"not a stack's", map[string]string{"x": "y"}, errdefs.ErrInvalidArgument, nil},
		{"not bad input", stack, errdefs.ErrUnavailable, nil},
		{"the stack has services", stack, errdefs.ErrInvalidArgument, []swarm.Service{{ID: "s1"}}},
	} {
		f.removed, f.services = nil, tc.svcs
		s.undoRefusedStack(t.Context(), tc.labels, tc.err)
		if len(f.removed) > 0 {
			t.Errorf("%s: removed %v", tc.name, f.removed)
		}
	}
}
