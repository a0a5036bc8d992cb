package enginesim_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// Churn makes its changes at the rate asked, every step through the
// engine's API surface, so each engine's event stream and event log show
// them, in order.
func TestChurnEmitsWhatItLogs(t *testing.T) {
	f, err := enginesim.StartFleet(3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	resp, err := http.Get("http://" + f.Engines[0].Addr() + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for _, e := range f.Engines {
		e.RecordEvents(true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	ops := map[string]int{}
	n, err := f.Churn(ctx, 500, 2, 0, func(op enginesim.ChurnOp) { ops[op.Action]++ })
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 || ops["create"] == 0 || ops["start"] == 0 || ops["stop"] == 0 || ops["remove"] == 0 {
		t.Fatalf("%d events, ops %v", n, ops)
	}
	logged := 0
	for _, e := range f.Engines {
		logged += len(e.EventLog())
	}
	if logged != n {
		t.Fatalf("the engines logged %d events, churn reports %d", logged, n)
	}
	want := f.Engines[0].EventLog()
	sc := bufio.NewScanner(resp.Body)
	for i, w := range want {
		if !sc.Scan() {
			t.Fatalf("stream ended after %d of %d events: %v", i, len(want), sc.Err())
		}
		var m struct {
			Action string
			Actor  struct{ ID string }
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m.Action != w.Action || m.Actor.ID != w.ID {
			t.Fatalf("event %d: %s, want %s %s", i, sc.Bytes(), w.Action, w.ID)
		}
	}
	f.Engines[0].RecordEvents(false)
	if l := f.Engines[0].EventLog(); len(l) != 0 {
		t.Fatalf("log kept after RecordEvents(false): %d", len(l))
	}
}

// Churn holds each slot's container at least hold before its next step.
func TestChurnHolds(t *testing.T) {
	f, err := enginesim.StartFleet(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	n, err := f.Churn(ctx, 1000, 1, time.Second, nil)
	if err != nil || n != 1 {
		t.Fatalf("one slot held 1s: %d events in 300ms (%v), want only its create", n, err)
	}
}

// Logs come in dockerd's multiplexed format; Reserved adds up reservations.
func TestLogsAndReserved(t *testing.T) {
	e, _ := mustStart(t, enginesim.Options{})
	id, err := e.Create(enginesim.CreateSpec{Name: "web", Image: "busybox", Resources: container.Resources{MemoryReservation: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Create(enginesim.CreateSpec{Image: "busybox", Resources: container.Resources{Memory: 3 << 20, MemoryReservation: 2 << 20}}); err != nil {
		t.Fatal(err)
	}
	if res, total := e.Reserved(); res != 4<<20 || total != 8<<30 {
		t.Fatalf("reserved %d of %d, want 4 MiB of 8 GiB", res, total)
	}
	resp, err := http.Get("http://" + e.Addr() + "/v1.52/containers/" + id + "/logs?stdout=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || b[0] != 1 || !strings.Contains(string(b), "web: line 3\n") {
		t.Fatalf("logs: %d %q", resp.StatusCode, b)
	}
	resp, err = http.Get("http://" + e.Addr() + "/v1.52/containers/nope/logs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("logs of a missing container: %d", resp.StatusCode)
	}
}
