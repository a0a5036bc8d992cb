package manager

import (
	"reflect"
	"testing"

	"github.com/shoal-dev/shoal/internal/backend"
)

func TestLabelMatch(t *testing.T) {
	l := map[string]string{"a": "1", "b": ""}
	for expr, want := range map[string]bool{"a": true, "a=1": true, "a=2": false, "b": true, "c": false, "a!=2": true, "a!=1": false, "c!=1": true} {
		if got := labelMatch(l, expr); got != want {
			t.Errorf("labelMatch(%q) = %v", expr, got)
		}
	}
}

func TestImageMatches(t *testing.T) {
	for _, tc := range []struct {
		name, id, ref string
		want          bool
	}{
		{"busybox", "sha256:abcdef123456", "busybox", true},
		{"busybox", "sha256:abcdef123456", "busybox:latest", true},
		{"busybox:latest", "sha256:abcdef123456", "docker.io/library/busybox", true},
		{"busybox", "sha256:abcdef123456", "abcdef", true},
		{"busybox", "sha256:abcdef123456", "redis", false},
		{"busybox", "sha256:abcdef123456", "ab", false},
	} {
		if got := imageMatches(tc.name, tc.id, tc.ref); got != tc.want {
			t.Errorf("imageMatches(%q, %q, %q) = %v", tc.name, tc.id, tc.ref, got)
		}
	}
}

func TestExitCode(t *testing.T) {
	if c := exitCode("Exited (137) 5 seconds ago"); c != "137" {
		t.Errorf("exitCode = %q", c)
	}
}

func TestPlacementRequest(t *testing.T) {
	cfg := backend.ContainerConfig{Image: "busybox", HostConfig: &backend.HostConfig{
		Memory: 64 << 20, Binds: []string{"data:/data", "/host:/h"},
		PortBindings: map[string][]backend.PortBinding{"80/tcp": {{HostPort: "8080"}, {HostPort: ""}}},
	}}
	req := placement("web", &cfg)
	if req.Memory != 64<<20 || len(req.Ports) != 1 || req.Ports[0].HostPort != 8080 || req.Ports[0].Proto != "tcp" {
		t.Errorf("request = %+v", req)
	}
	if !reflect.DeepEqual(req.Volumes, []string{"data"}) {
		t.Errorf("volumes = %v", req.Volumes)
	}
}

func TestSetFieldsKeepsOthers(t *testing.T) {
	out, err := setFields([]byte(`{"Image":"x","Env":["constraint:a==b","A=1"],"Odd":{"k":1}}`), map[string]any{"Env": []string{"A=1"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"Env":["A=1"],"Image":"x","Odd":{"k":1}}` {
		t.Errorf("setFields = %s", out)
	}
}

func TestMergeReport(t *testing.T) {
	merged := map[string]any{}
	mergeReport(merged, map[string]any{"ContainersDeleted": []any{"a"}, "SpaceReclaimed": 10.0, "Kind": "x"})
	mergeReport(merged, map[string]any{"ContainersDeleted": []any{"b"}, "SpaceReclaimed": 5.0, "Kind": "y"})
	if !reflect.DeepEqual(merged["ContainersDeleted"], []any{"a", "b"}) || merged["SpaceReclaimed"] != 15.0 || merged["Kind"] != "x" {
		t.Fatalf("merged %v", merged)
	}
}
