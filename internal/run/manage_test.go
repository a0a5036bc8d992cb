package run

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/cluster"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/testport"
)

// freeAddr is a loopback address no other test process is handed.
func freeAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(testport.Get(t, 1))
}

func manageConfig(hosts []string, uri string) ManageConfig {
	return ManageConfig{
		Discovery: uri, Hosts: hosts, Strategy: "spread", Overcommit: 0.05,
		Refresh: 100 * time.Millisecond, Timeout: time.Second, FailureRetry: 3,
		Version: "test", Log: slog.New(slog.DiscardHandler),
	}
}

// TestManageServesAndStops starts shoal manage in process over two
// simulated engines, lists their containers through the API, and stops it.
func TestManageServesAndStops(t *testing.T) {
	fleet, err := enginesim.StartFleet(2, func(int) enginesim.Options { return enginesim.Options{Containers: 2} })
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := manageConfig([]string{"tcp://" + addr}, fleet.NodesURI())
	var log syncBuffer
	cfg.Log = slog.New(slog.NewTextHandler(&log, nil))
	go func() { done <- Manage(ctx, cfg) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		body, err := get("http://" + addr + "/containers/json")
		if err == nil && strings.Count(body, `"Id"`) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ps through shoal: %q %v; want the 4 containers", body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Once the engines loaded, the memory the load left free is given
	// back (loadmem.go).
	for !strings.Contains(log.String(), "memory the load left free returned") {
		if time.Now().After(deadline) {
			t.Fatalf("log %q: want the load's memory returned once the engines loaded", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Manage after its context ended = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Manage did not return after its context ended")
	}
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestManageListenError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h := "tcp://" + l.Addr().String()
	err = Manage(context.Background(), manageConfig([]string{h}, "nodes://127.0.0.1:1"))
	if err == nil || !strings.HasPrefix(err.Error(), `-H "`+h+`": `) {
		t.Fatalf("Manage on a taken port = %v, want the -H error", err)
	}
}

func TestOutcome(t *testing.T) {
	listenerErr := errors.New("accept: too many open files")
	for _, tc := range []struct {
		name     string
		err      error
		want     error
		wantRole bool
	}{
		{"stopped", nil, nil, false},
		{"api failed", &Failure{Component: "api", Err: listenerErr}, listenerErr, false},
		{"api closed", &Failure{Component: "api", Err: errAPIClosed}, nil, false},
		{"component failed", &Failure{Component: "discovery", Err: listenerErr}, nil, false},
		{"role changed", &Failure{Component: "cluster", Err: cluster.ErrRoleChanged}, cluster.ErrRoleChanged, true},
	} {
		if got := clusterOutcome(tc.err); !errors.Is(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("%s: clusterOutcome = %v, want %v", tc.name, got, tc.want)
		}
		got := outcome(tc.err)
		if tc.wantRole {
			if got != nil {
				t.Errorf("%s: outcome = %v, want nil outside the cluster", tc.name, got)
			}
			continue
		}
		if !errors.Is(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("%s: outcome = %v, want %v", tc.name, got, tc.want)
		}
	}
}
