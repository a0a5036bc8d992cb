package dockerapi

import (
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestSwarmSpec(t *testing.T) {
	if spec, err := swarmSpec(strings.NewReader("")); spec != nil || err != nil {
		t.Fatalf("empty body: %+v, %v", spec, err)
	}
	spec, err := swarmSpec(strings.NewReader(`{"Name":"default","CAConfig":{"NodeCertExpiry":7200000000000,"ForceRotate":3}}`))
	if err != nil || spec == nil || spec.CAConfig.NodeCertExpiry != 2*time.Hour || spec.CAConfig.ForceRotate != 3 {
		t.Fatalf("spec: %+v, %v", spec, err)
	}
	if _, err := swarmSpec(strings.NewReader(`{"CAConfig":`)); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad JSON: %v", err)
	}
}
