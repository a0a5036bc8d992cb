package manager

import "context"

// locker is the built-in cluster's autolock (internal/cluster).
type locker interface {
	UnlockKey(ctx context.Context) (string, error)
}

func (m *Manager) locker() (locker, error) {
	l, ok := m.cfg.Cluster.(locker)
	if !ok {
		return nil, errNotSwarm
	}
	return l, nil
}

// UnlockKey is docker swarm unlock-key: "" while autolock is off.
func (m *Manager) UnlockKey(ctx context.Context) (string, error) {
	l, err := m.locker()
	if err != nil {
		return "", err
	}
	return l.UnlockKey(ctx)
}
