package cluster

import (
	"reflect"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/store"
)

// TestWithVIPs: a service with a VIP on the network is told to the node
// with its tasks as backends, and its name and alias answer the VIP;
// tasks.<service> and a dnsrr service's name keep the tasks' addresses;
// the cached records are not changed.
func TestWithVIPs(t *testing.T) {
	nw := store.Network{ID: "appnetid0000000000000000a", Name: "appnet", VIPs: map[string]string{"webid": "10.0.1.240", "goneid": "10.0.1.241"}}
	svc := func(id, name string, aliases ...string) store.Service {
		var s store.Service
		s.ID, s.Spec.Name = id, name
		s.Spec.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: "appnet", Aliases: aliases}}
		return s
	}
	cached := map[string][]string{
		"web": {"10.0.1.2", "10.0.1.18"}, "tasks.web": {"10.0.1.2", "10.0.1.18"}, "front": {"10.0.1.2", "10.0.1.18"},
		"rr": {"10.0.1.3"}, "tasks.rr": {"10.0.1.3"},
	}
	on := overlay.Network{Records: cached}
	withVIPs(&on, nw, []store.Service{svc("webid", "Web", "Front"), svc("rrid", "rr")})
	if want := []overlay.VIP{{Service: "Web", Addr: "10.0.1.240", Backends: []string{"10.0.1.2", "10.0.1.18"}}}; !reflect.DeepEqual(on.VIPs, want) {
		t.Errorf("VIPs %+v, want %+v", on.VIPs, want)
	}
	for name, want := range map[string][]string{
		"web": {"10.0.1.240"}, "front": {"10.0.1.240"}, "tasks.web": {"10.0.1.2", "10.0.1.18"}, "rr": {"10.0.1.3"},
	} {
		if got := on.Records[name]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s answers %v, want %v", name, got, want)
		}
	}
	if len(cached["web"]) != 2 {
		t.Errorf("the cached records were changed: %v", cached)
	}
}
