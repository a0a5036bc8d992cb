package engine

import "time"

// Statuses words the statuses of many containers at one instant, as a
// `docker ps` of tens of thousands needs: containers whose status reads the
// same share one string, worded once (issue 16).
type Statuses struct {
	now  time.Time
	memo map[statusKey]string
}

// statusKey is everything a status depends on: the state, the health, the
// exit code and how long ago the state began, in the unit the wording
// shows (seconds under a minute, then minutes: go-units words every
// longer span, hours and days included, from the whole minutes alone).
type statusKey struct {
	state, health string
	code          int
	since         time.Duration
}

// NewStatuses words statuses as of now.
func NewStatuses(now time.Time) *Statuses {
	return &Statuses{now: now, memo: map[statusKey]string{}}
}

// Of is c.StatusText(now).
func (s *Statuses) Of(c *Container) string {
	var from int64
	switch {
	case c.started == 0 && c.State != "created":
		return c.Status
	case c.State == "running" || c.State == "paused":
		from = c.started
	case c.State == "restarting" || !statusFixed(c.State) && c.finished != 0:
		from = c.finished
	default: // worded without a time: nothing to share
		return c.StatusText(s.now)
	}
	key := statusKey{state: c.State, health: c.HealthStatus, code: c.ExitCode, since: spanKey(s.now.Sub(fromUnixNano(from)))}
	if v, ok := s.memo[key]; ok {
		return v
	}
	v := c.StatusText(s.now)
	s.memo[key] = v
	return v
}

// statusFixed says whether StatusText words state without a time.
func statusFixed(state string) bool {
	switch state {
	case "removing", "dead", "created":
		return true
	}
	return false
}

// spanKey is d in the unit that decides its wording.
func spanKey(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Truncate(time.Second)
	}
	return d.Truncate(time.Minute)
}
