package enginesim

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"
)

// Churn support: changes made on the engines behind the manager's back
// (creates, starts, dies, removes at a steady rate), a log of every
// container event an engine emitted so a test can check what reached its
// clients, and container logs.

// LoggedEvent is one container event an engine emitted, in its order.
type LoggedEvent struct {
	ID, Action string
	TimeNano   int64
}

// RecordEvents starts (or, with false, stops and clears) the engine's log
// of the container events it emits.
func (e *Engine) RecordEvents(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.logging, e.eventLog = on, nil
}

// EventLog is a copy of the container events emitted since RecordEvents(true).
func (e *Engine) EventLog() []LoggedEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]LoggedEvent(nil), e.eventLog...)
}

// logEvent keeps one emitted event while recording; e.mu must be held.
func (e *Engine) logEvent(id, action string, timeNano int64) {
	if e.logging {
		e.eventLog = append(e.eventLog, LoggedEvent{ID: id, Action: action, TimeNano: timeNano})
	}
}

// ChurnLabel is set on every container Churn creates.
const ChurnLabel = "enginesim.churn"

// ChurnOp is one change the churn made on an engine.
type ChurnOp struct {
	Engine int    // index in the fleet
	ID     string // the container
	Action string // "create", "start", "stop" (die, stop) or "remove" (destroy)
	Events int    // events the engine emitted for it
	At     time.Time
}

// Churn changes containers on the fleet's engines at rate events per
// second until ctx ends, calling observe (if not nil) after each change,
// from the one goroutine that makes them. Each engine has slots: a slot
// creates a container, starts it, stops it and removes it, one step at a
// time, each step on an engine picked at random; a step is taken only
// once the slot's previous step is at least hold old, so a container
// lives long enough for a client to see it. It returns the events emitted.
func (f *Fleet) Churn(ctx context.Context, rate, slots int, hold time.Duration, observe func(ChurnOp)) (int, error) {
	if rate <= 0 || slots <= 0 || len(f.Engines) == 0 {
		return 0, fmt.Errorf("%w: churn needs a rate, slots and engines", ErrInvalid)
	}
	type slot struct {
		id   string
		step int // 0 none, 1 created, 2 running, 3 exited
		at   time.Time
	}
	state := make([][]slot, len(f.Engines))
	for i := range state {
		state[i] = make([]slot, slots)
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	start, emitted, seq := time.Now(), 0, 0
	for {
		select {
		case <-ctx.Done():
			return emitted, nil
		case <-tick.C:
		}
		due := int(time.Since(start).Seconds() * float64(rate))
		for tries := 0; emitted < due && tries < 4*rate; tries++ {
			i := rand.IntN(len(f.Engines))
			s := &state[i][rand.IntN(slots)]
			now := time.Now()
			if now.Sub(s.at) < hold {
				continue
			}
			e := f.Engines[i]
			op := ChurnOp{Engine: i, ID: s.id}
			var err error
			switch s.step {
			case 0:
				seq++
				op.Action, op.Events = "create", 1
				op.ID, err = e.Create(CreateSpec{Name: fmt.Sprintf("churn-%d", seq), Image: "busybox:latest", Cmd: []string{"sleep", "1"}, Labels: map[string]string{ChurnLabel: "1"}})
				s.id = op.ID
			case 1:
				op.Action, op.Events = "start", 1
				err = e.StartContainer(s.id)
			case 2:
				op.Action, op.Events = "stop", 2
				err = e.StopContainer(s.id, false)
			case 3:
				op.Action, op.Events = "remove", 1
				err = e.RemoveContainer(s.id, false)
			}
			if err != nil {
				return emitted, fmt.Errorf("enginesim: churn %s on %s: %w", op.Action, e.Name(), err)
			}
			s.step, s.at = (s.step+1)%4, now
			op.At = now
			emitted += op.Events
			if observe != nil {
				observe(op)
			}
		}
	}
}

// logs answers GET /containers/{ref}/logs with a few lines in dockerd's
// multiplexed stream format (the simulated containers have no TTY).
func (e *Engine) logs(w http.ResponseWriter, ref string) {
	e.mu.Lock()
	r, err := e.lookup(ref)
	var name string
	if err == nil {
		name = r.name
	}
	e.mu.Unlock()
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
	w.WriteHeader(http.StatusOK)
	for i := range 3 {
		line := fmt.Sprintf("%s: line %d\n", name, i+1)
		var hdr [8]byte
		hdr[0] = 1 // stdout
		binary.BigEndian.PutUint32(hdr[4:], uint32(len(line)))
		_, _ = w.Write(hdr[:])
		_, _ = w.Write([]byte(line))
	}
}

// Reserved is the memory the engine's containers reserve, each
// max(Memory, MemoryReservation) as a scheduler counts it, and the
// engine's MemTotal: a test checks placements never overcommit it.
func (e *Engine) Reserved() (reserved, memTotal int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.containers {
		reserved += max(r.res.Memory, r.res.MemoryReservation)
	}
	return reserved, e.opts.MemTotal
}
