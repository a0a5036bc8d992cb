package manager

import (
	"reflect"
	"testing"
)

func TestParseFilters(t *testing.T) {
	for _, raw := range []string{`{"name":{"web":true},"label":{"a=b":true}}`, `{"name":["web"],"label":["a=b"]}`} {
		f, err := parseFilters(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(f["name"], []string{"web"}) || !reflect.DeepEqual(f["label"], []string{"a=b"}) {
			t.Errorf("%s → %v", raw, f)
		}
	}
	if _, err := parseFilters(`{bad`); err == nil {
		t.Error("want error for malformed filters")
	}
}

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

func TestCreateBodyRequest(t *testing.T) {
	var cb createBody
	cb.Image = "busybox"
	cb.HostConfig = &struct {
		NanoCpus          int64
		CpuShares         int64
		Memory            int64
		MemoryReservation int64
		NetworkMode       string
		VolumesFrom       []string
		Links             []string
		Binds             []string
		PortBindings      map[string][]struct {
			HostIp   string
			HostPort string
		}
		Mounts []struct {
			Type   string
			Source string
		}
	}{Memory: 64 << 20, Binds: []string{"data:/data", "/host:/h"}}
	cb.HostConfig.PortBindings = map[string][]struct {
		HostIp   string
		HostPort string
	}{"80/tcp": {{HostPort: "8080"}, {HostPort: ""}}}
	req := cb.request("web")
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
