package dockerapi

import (
	"sync"
	"time"
)

// quota counts the places taken per client address and in all, for the
// connection and stream caps. A zero cap is no cap; a client "" (a unix
// socket) counts only in the total.
type quota struct {
	perClient, total int

	mu       sync.Mutex
	open     int
	byClient map[string]int
}

// full says which cap refuses one more place.
type full int

const (
	notFull full = iota
	clientFull
	totalFull
)

func newQuota(perClient, total int) *quota {
	return &quota{perClient: perClient, total: total, byClient: map[string]int{}}
}

// take takes a place for client, or says which cap is full (the total's
// checked first).
func (q *quota) take(client string) full {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.total > 0 && q.open >= q.total:
		return totalFull
	case client != "" && q.perClient > 0 && q.byClient[client] >= q.perClient:
		return clientFull
	}
	q.open++
	if client != "" {
		q.byClient[client]++
	}
	return notFull
}

// give gives client's place back.
func (q *quota) give(client string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.open--
	if client == "" {
		return
	}
	if q.byClient[client]--; q.byClient[client] <= 0 {
		delete(q.byClient, client)
	}
}

// Refusals says when a refusal is worth a log line: at most one per
// period, carrying the number refused since the last one, so a flood of
// bad clients does not flood the log and the operator still learns of it.
type Refusals struct {
	every time.Duration

	mu    sync.Mutex
	last  time.Time
	count int
}

// NewRefusals returns a Refusals that allows a line every period.
func NewRefusals(every time.Duration) *Refusals { return &Refusals{every: every} }

// Note counts one refusal. When a line is due it returns true and the
// number refused since the last line, this one included.
func (r *Refusals) Note() (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		return 0, false
	}
	n := r.count
	r.count, r.last = 0, now
	return n, true
}
