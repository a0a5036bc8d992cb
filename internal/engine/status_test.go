package engine

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/docker/go-units"
)

// The wording of a span depends only on its key: what lets Statuses share it.
func TestSpanKeyKeepsWording(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		d := time.Duration(r.Int64N(int64(3 * 365 * 24 * time.Hour)))
		if r.IntN(4) == 0 {
			d = time.Duration(r.Int64N(int64(3 * time.Hour)))
		}
		if got, want := units.HumanDuration(spanKey(d)), units.HumanDuration(d); got != want {
			t.Fatalf("%v words as %q, its key %v as %q", d, want, spanKey(d), got)
		}
	}
}

func TestStatusesMatchStatusText(t *testing.T) {
	now := time.Now()
	at := func(ago time.Duration) time.Time { return now.Add(-ago) }
	var cs []*Container
	for i, ago := range []time.Duration{0, 500 * time.Millisecond, 2 * time.Second, 59 * time.Second, 61 * time.Second, 90 * time.Minute, 3 * time.Hour, 50 * time.Hour, 400 * 24 * time.Hour} {
		for _, st := range []string{"running", "paused", "restarting", "exited", "created", "dead", "removing"} {
			c := &Container{State: st, Status: "engine words", ExitCode: i}
			c.SetTimes(at(ago+time.Hour), at(ago), time.Time{})
			cs = append(cs, c)
			h := *c
			h.HealthStatus = []string{"healthy", "starting", "none"}[i%3]
			cs = append(cs, &h)
		}
		exited := &Container{State: "exited", Status: "Exited (2) 1 day ago"}
		exited.SetTimes(at(ago), time.Time{}, time.Time{})
		cs = append(cs, &Container{State: "running", Status: "Up 3 days"}, exited)
	}
	s := NewStatuses(now)
	for range 2 {
		for _, c := range cs {
			if got, want := s.Of(c), c.StatusText(now); got != want {
				t.Errorf("%s %v: Statuses gives %q, StatusText %q", c.State, now.Sub(c.FinishedAt()), got, want)
			}
		}
	}
}
