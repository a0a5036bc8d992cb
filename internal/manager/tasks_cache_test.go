package manager_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// A started task's container shows in Containers soon even when the
// engine's events lag (here: never come): a busy node's events fell
// behind by more than the orchestrator's MissingGrace, and running tasks
// were failed as gone.
func TestTaskContainerSeenWhileEventsLag(t *testing.T) {
	env := newTaskEnvWrapped(t, 1, func(s *enginesim.Engine) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/events") {
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				<-r.Context().Done() // a stream that says nothing
				return
			}
			s.ServeHTTP(w, r)
		})
	})
	svc := webService("busybox")
	task := webTask(svc, "task00000000000000000000c", env.node(0), 1)
	if _, err := env.rt.Start(context.Background(), svc, task); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		if o, ok := env.observedTask(t, task.ID); ok && o.State == "running" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the started task's container is not seen 3 s after its start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
