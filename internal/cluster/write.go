package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/internal/store"
)

// Write attempts: a proposal forwarded to a leader that just died is lost
// and would wait out the store's whole write timeout, so a write is tried
// for writeAttempt at a time until writeTimeout: it goes through as soon
// as a new leader is elected.
const (
	writeAttempt = 800 * time.Millisecond
	writeTimeout = 5 * time.Second
)

func (c *Cluster) write(ctx context.Context, f func(ctx context.Context) error) error {
	// The node list read next is listed, not the last one reused: the
	// watch's event for this write may come after that read (nodeswatch.go).
	// Any write, done or not (one that timed out may have gone through).
	defer c.wroteNodes()
	deadline := time.Now().Add(writeTimeout)
	for {
		actx, cancel := context.WithTimeout(ctx, writeAttempt)
		err := f(actx)
		cancel()
		retry := retryable(err)
		if !retry || ctx.Err() != nil || time.Now().After(deadline) {
			return giveUp(err, retry)
		}
		time.Sleep(50 * time.Millisecond) // "no leader" may come back at once
	}
}

// retryable says whether a write may go through on another attempt: the
// store had no quorum or the attempt ran out of time.
func retryable(err error) bool {
	return errors.Is(err, store.ErrNoQuorum) || errors.Is(err, context.DeadlineExceeded)
}

// giveUp is the error of the last attempt: a retryable one always says
// "no quorum", which the API answers with 503.
func giveUp(err error, retry bool) error {
	if retry && !errors.Is(err, store.ErrNoQuorum) {
		return fmt.Errorf("%w: %w", store.ErrNoQuorum, err)
	}
	return err
}
