package run

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

func TestCheckExposure(t *testing.T) {
	verify := TLSFiles{Verify: true}
	tlsOnly := TLSFiles{On: true, Cert: "c", Key: "k"}
	for _, tc := range []struct {
		name     string
		hosts    []string
		tls      TLSFiles
		insecure bool
		err      error
		exposed  []string
	}{
		{"loopback v4", []string{"tcp://127.0.0.1:2375", "127.0.0.2:1"}, TLSFiles{}, false, nil, nil},
		{"loopback v6 and name", []string{"tcp://[::1]:2375", "tcp://localhost:2375", "tcp://LOCALHOST:1"}, TLSFiles{}, false, nil, nil},
		{"unix socket", []string{"unix:///run/shoal.sock"}, TLSFiles{}, false, nil, nil},
		{"all interfaces", []string{"tcp://0.0.0.0:2375"}, TLSFiles{}, false, ErrInsecureAPI, nil},
		{"all interfaces v6", []string{"tcp://[::]:2375"}, TLSFiles{}, false, ErrInsecureAPI, nil},
		{"empty host", []string{"tcp://:2375"}, TLSFiles{}, false, ErrInsecureAPI, nil},
		{"an address", []string{"tcp://10.0.0.1:2375"}, TLSFiles{}, false, ErrInsecureAPI, nil},
		{"a name", []string{"tcp://manager.example:2375"}, TLSFiles{}, false, ErrInsecureAPI, nil},
		{"one of several", []string{"unix:///s", "tcp://127.0.0.1:1", "tcp://0.0.0.0:2"}, TLSFiles{}, false, ErrInsecureAPI, nil},
		{"tls without verify", []string{"tcp://0.0.0.0:2376"}, tlsOnly, false, ErrInsecureAPI, nil},
		{"tls without verify on loopback", []string{"tcp://127.0.0.1:2376"}, tlsOnly, false, nil, nil},
		{"tlsverify", []string{"tcp://0.0.0.0:2376", "tcp://10.0.0.1:2376"}, verify, false, nil, nil},
		{"opt-out", []string{"tcp://0.0.0.0:2375", "tcp://127.0.0.1:1", "unix:///s"}, TLSFiles{}, true, nil, []string{"tcp://0.0.0.0:2375"}},
		{"opt-out with tls", []string{"tcp://10.0.0.1:2376"}, tlsOnly, true, nil, []string{"tcp://10.0.0.1:2376"}},
		{"files without tls", []string{"unix:///s"}, TLSFiles{CA: "ca.pem"}, false, ErrTLSFlags, nil},
		{"cert without tls", []string{"tcp://127.0.0.1:1"}, TLSFiles{Cert: "c", Key: "k"}, true, ErrTLSFlags, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exposed, err := checkExposure(tc.hosts, tc.tls, tc.insecure)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if !slices.Equal(exposed, tc.exposed) {
				t.Fatalf("exposed %v, want %v", exposed, tc.exposed)
			}
		})
	}
}

// The refusal names the address and every way out.
func TestRefusalMessage(t *testing.T) {
	_, err := checkExposure([]string{"tcp://0.0.0.0:2375"}, TLSFiles{}, false)
	for _, want := range []string{"tcp://0.0.0.0:2375", "--tlsverify", "shoal cert create", "127.0.0.1", "unix socket", InsecureFlag} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
	_, err = checkExposure([]string{"tcp://0.0.0.0:2376"}, TLSFiles{On: true}, false)
	if !strings.Contains(err.Error(), "authenticates no one") {
		t.Errorf("--tls without verify: %v", err)
	}
}

// The opt-out warns, naming each exposed address, every time it starts.
func TestInsecureWarns(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	err := checkAPISecurity([]string{"tcp://0.0.0.0:2375", "tcp://10.0.0.1:2375", "tcp://127.0.0.1:1"}, TLSFiles{}, true, log)
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Count(out, "level=WARN") != 2 || !strings.Contains(out, "tcp://0.0.0.0:2375") || !strings.Contains(out, "tcp://10.0.0.1:2375") ||
		strings.Contains(out, "127.0.0.1") {
		t.Fatalf("warnings:\n%s", out)
	}
}

// Manage and the built-in cluster refuse before opening anything.
func TestStartRefusesInsecure(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	err := Manage(context.Background(), ManageConfig{Discovery: "nodes://127.0.0.1:1", Hosts: []string{"tcp://0.0.0.0:0"}, Strategy: "spread", Log: log})
	if !errors.Is(err, ErrInsecureAPI) {
		t.Fatalf("manage: %v", err)
	}
	dir := t.TempDir()
	err = ClusterNode(context.Background(), ClusterConfig{Hosts: []string{"tcp://0.0.0.0:0"}, Strategy: "spread", Log: log})
	if !errors.Is(err, ErrInsecureAPI) {
		t.Fatalf("cluster: %v", err)
	}
	err = ClusterNode(context.Background(), ClusterConfig{Hosts: []string{"unix://" + dir + "/s"}, TLS: TLSFiles{Key: "k"}, Strategy: "spread", Log: log})
	if !errors.Is(err, ErrTLSFlags) {
		t.Fatalf("cluster, files without TLS: %v", err)
	}
}
