package manager

import "sync"

// keyLock serializes work per key: callers of lock with the same key run
// one at a time, others in parallel. Entries exist only while held.
type keyLock struct {
	mu   sync.Mutex
	held map[any]*keyLockEntry
}

type keyLockEntry struct {
	mu   sync.Mutex
	refs int
}

// lock takes key's lock and returns its release.
func (k *keyLock) lock(key any) (unlock func()) {
	k.mu.Lock()
	if k.held == nil {
		k.held = map[any]*keyLockEntry{}
	}
	en := k.held[key]
	if en == nil {
		en = &keyLockEntry{}
		k.held[key] = en
	}
	en.refs++
	k.mu.Unlock()
	en.mu.Lock()
	return func() {
		en.mu.Unlock()
		k.mu.Lock()
		if en.refs--; en.refs == 0 {
			delete(k.held, key)
		}
		k.mu.Unlock()
	}
}
