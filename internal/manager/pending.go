package manager

import (
	"context"
	"time"

	"github.com/containerd/errdefs"
	"github.com/shoal-dev/shoal/internal/engine"
)

// awaitContact waits, at most one engine timeout, while some engine is
// still being contacted for the first time (Pending, no failure yet), so
// that an answer meant to cover the whole cluster (a list, info, a lookup
// about to say "no such") does not leave out engines that simply have not
// answered yet, as right after shoal restarts. An engine that already
// failed a contact is not waited for: it is down, and waiting for it on
// every call until it is marked unhealthy would only slow every list.
// It reports whether there was anything to wait for.
func (m *Manager) awaitContact(ctx context.Context) bool {
	if !m.contacting() {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, m.pool.Timeout())
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for m.contacting() {
		select {
		case <-ctx.Done():
			return true
		case <-t.C:
		}
	}
	return true
}

// contacting says whether some engine has not answered its first contact yet.
func (m *Manager) contacting() bool {
	for _, e := range m.pool.Engines() {
		if st, lastErr := e.State(); st == engine.Pending && lastErr == "" {
			return true
		}
	}
	return false
}

// lookAgain says whether a lookup that failed with err should be tried
// once more: it found nothing (or no healthy engine to ask) while some
// engine was still being contacted, and that engine has answered since
// (or the wait ran out), so it may hold what was looked for.
func (m *Manager) lookAgain(ctx context.Context, err error) bool {
	return (errdefs.IsNotFound(err) || errdefs.IsUnavailable(err)) && m.awaitContact(ctx)
}
