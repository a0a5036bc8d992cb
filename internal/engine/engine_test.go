package engine

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"
)

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct{ in, network, address string }{
		{"10.0.0.1:2375", "tcp", "10.0.0.1:2375"},
		{"tcp://10.0.0.1:2375", "tcp", "10.0.0.1:2375"},
		{"https://h:2376/", "tcp", "h:2376"},
		{"unix:///run/docker.sock", "unix", "/run/docker.sock"},
	} {
		n, a, err := ParseAddr(tc.in)
		if err != nil || n != tc.network || a != tc.address {
			t.Errorf("ParseAddr(%q) = %q %q %v", tc.in, n, a, err)
		}
	}
	for _, bad := range []string{"10.0.0.1", "ftp://x:1", "unix://", "tcp://nohost"} {
		if _, _, err := ParseAddr(bad); err == nil {
			t.Errorf("ParseAddr(%q): want error", bad)
		}
	}
}

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		less bool
	}{
		{"1.41", "1.50", true}, {"1.9", "1.10", true}, {"1.50", "1.41", false}, {"1.41", "1.41", false},
	} {
		if got := VersionLess(tc.a, tc.b); got != tc.less {
			t.Errorf("VersionLess(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

func TestNodeIDStableAndDistinct(t *testing.T) {
	a, b := NodeID("tcp://10.0.0.1:2375"), NodeID("tcp://10.0.0.2:2375")
	if a == b || len(a) != 25 || a != NodeID("tcp://10.0.0.1:2375") {
		t.Fatalf("NodeID: %q %q", a, b)
	}
}

func TestAPIPath(t *testing.T) {
	e := &Engine{apiVersion: "1.41"}
	for _, tc := range []struct{ client, want string }{
		{"", "/v1.41/x"}, {"1.50", "/v1.41/x"}, {"1.40", "/v1.40/x"},
	} {
		if got := e.APIPath(tc.client, "/x"); got != tc.want {
			t.Errorf("APIPath(%q) = %q, want %q", tc.client, got, tc.want)
		}
	}
}

func TestStatusText(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	mk := func(state string, started, finished time.Duration, code int, health string) *Container {
		c := &Container{ExitCode: code, HealthStatus: health}
		c.SetTimes(now.Add(-started), now.Add(-finished), time.Time{})
		c.State = state
		return c
	}
	for _, tc := range []struct {
		c    *Container
		want string
	}{
		{mk("running", 10*time.Minute, 0, 0, ""), "Up 10 minutes"},
		{mk("running", 2*time.Hour, 0, 0, "healthy"), "Up 2 hours (healthy)"},
		{mk("running", 5*time.Second, 0, 0, "starting"), "Up 5 seconds (health: starting)"},
		{mk("paused", 3*time.Minute, 0, 0, ""), "Up 3 minutes (Paused)"},
		{mk("exited", time.Hour, 30*time.Minute, 137, ""), "Exited (137) 30 minutes ago"},
		{mk("created", 0, 0, 0, ""), "Created"},
	} {
		if got := tc.c.StatusText(now); got != tc.want {
			t.Errorf("StatusText(%s) = %q, want %q", tc.c.State, got, tc.want)
		}
	}
}

func TestDecodeContainersKeepsEngineJSON(t *testing.T) {
	raw := []byte(`[{"Id":"abc","Names":["/web","/app/alias"],"Image":"busybox","ImageID":"sha256:1","Command":"sh","Created":5,
		"Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"}],"Labels":{"a":"b"},"State":"running","Status":"Up 1 second",
		"HostConfig":{"NetworkMode":"default"},"NetworkSettings":{"Networks":{"bridge":{"NetworkID":"n1"}}},"Mounts":[{"Name":"data","Destination":"/d"}],"Extra":{"k":[1,2]}}]`)
	list, err := DecodeContainers(raw, "node1")
	if err != nil || len(list) != 1 {
		t.Fatal(list, err)
	}
	c := list[0]
	if c.Name() != "web" || c.State != "running" || c.Labels["a"] != "b" || c.Ports[0].PublicPort != 8080 || c.Networks["bridge"] != "n1" || c.Mounts[0].Name != "data" {
		t.Fatalf("decoded %+v", c)
	}
	var out map[string]any
	if err := json.Unmarshal(c.AppendJSON(nil, c.StatusText(time.Now())), &out); err != nil {
		t.Fatal(err)
	}
	names := out["Names"].([]any)
	if names[0] != "/node1/web" || names[1] != "/node1/app/alias" || out["Status"] != "Up 1 second" || out["Extra"] == nil || out["Command"] != "sh" {
		t.Fatalf("served %v", out)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"Up 5 minutes", `a "quoted" \ thing`, "tab\there", "ünï"} {
		var back string
		if err := json.Unmarshal(appendJSONString(nil, s), &back); err != nil || back != s {
			t.Errorf("%q → %s → %q %v", s, appendJSONString(nil, s), back, err)
		}
	}
}

func TestRegisteredSchemeDials(t *testing.T) {
	p := NewPool(Options{}, nil)
	var got string
	p.RegisterScheme("tunnel", func(ctx context.Context, address string) (net.Conn, error) {
		got = address
		return nil, errors.New("no tunnel")
	})
	c, err := p.newClient("tunnel://node-abc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Dial(context.Background()); err == nil || got != "node-abc" {
		t.Fatalf("dial went to %q, err %v", got, err)
	}
	if _, err := p.newClient("bogus://x"); err == nil {
		t.Fatal("unregistered scheme accepted")
	}
}
