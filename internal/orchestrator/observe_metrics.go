package orchestrator

import "time"

// Observer is told, after each pass that reconciled, of the state the pass
// decided from and how long the pass took (reading the state, Reconcile,
// and applying the plan's writes; container operations run on after it).
// It runs on the loop's goroutine: it must be quick and must not keep or
// change st.
type Observer func(st State, took time.Duration)

func (l *loop) observed(st State, began time.Time) {
	if f := l.o.cfg.Observe; f != nil {
		f(st, time.Since(began))
	}
}
