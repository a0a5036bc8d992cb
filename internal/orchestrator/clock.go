package orchestrator

import "time"

// Clock is the orchestrator's time: restart delays, update delays and
// monitors, orphan grace. Tests pass a fake one to drive them.
type Clock interface {
	Now() time.Time
	// After delivers the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

// realClock is the system's time.
type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
