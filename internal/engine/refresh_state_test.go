package engine

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
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
