package engine

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
)

// A refresh on a container's die event, when the engine's list still
// shows it running (dockerd's list view lags its die event; the inspect
// waits for the exit), caches the inspect's state: a job's short task
// otherwise stayed "running" for ever (issue 12).
func TestRefreshTakesInspectState(t *testing.T) {
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1.41/containers/json":
			_, _ = w.Write([]byte(`[{"Id":"c1","Names":["/job.1.x"],"State":"running","Status":"Up 1 second"}]`))
		case "/v1.41/containers/c1/json":
			_, _ = w.Write([]byte(`{"Id":"c1","State":{"Status":"exited","ExitCode":0,"Pid":0,
				"StartedAt":"2026-11-30T06:33:50Z","FinishedAt":"2026-11-30T06:33:51Z"},"Config":{},"HostConfig":{}}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	if err := e.RefreshContainer(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	c := e.Container("c1")
	if c == nil || c.State != "exited" {
		t.Fatalf("cached %+v, want state exited", c)
	}
	var entry struct{ State string }
	if err := json.Unmarshal(c.AppendJSON(nil, "x"), &entry); err != nil || entry.State != "exited" {
		t.Fatalf("list entry state %q (%v), want exited", entry.State, err)
	}
}

// The refresh on a create event waits for an inspect held back by the
// container's start (dockerd holds its lock) only a moment: events after
// it are not held back for the whole Timeout.
func TestCreateEventRefreshDoesNotWaitForStart(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1.41/containers/json":
			_, _ = w.Write([]byte(`[{"Id":"c1","Names":["/web.1.x"],"State":"created"}]`))
		case "/v1.41/containers/c1/json":
			select { // a start under way
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	e.opts.Timeout = 10 * time.Second
	began := time.Now()
	e.apply(context.Background(), events.Message{Type: events.ContainerEventType, Action: "create", Actor: events.Actor{ID: "c1"}})
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("the create event's refresh took %v", took)
	}
}
