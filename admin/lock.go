package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenq/warren/broker"
)

// lockPrefix names the lock queue of a dead-letter queue: warren.lock.<Q>.dlq.
const lockPrefix = "warren.lock."

// lockQueue returns the name of the lock queue guarding dlq.
func lockQueue(dlq string) string { return lockPrefix + dlq }

// lockPoll is how often an operation waiting for a lock tries again.
const lockPoll = 500 * time.Millisecond

type lockWaitKey struct{}

// WithLockWait returns a context under which an operation that finds its
// dead-letter queue busy (another replay, purge, list or export holds its
// lock) waits for the lock, trying again every half second until ctx
// ends, instead of failing with ErrBusy. waiting, if not nil, is called
// once, with the dead-letter queue's name, when the wait begins.
func WithLockWait(ctx context.Context, waiting func(dlq string)) context.Context {
	if waiting == nil {
		waiting = func(string) {}
	}
	return context.WithValue(ctx, lockWaitKey{}, waiting)
}

// lock takes the exclusive lock of dlq. It fails with ErrBusy while
// another operation holds it, unless ctx says to wait (WithLockWait).
func (a *Inspector) lock(ctx context.Context, dlq string) (unlock func(), err error) {
	waiting, wait := ctx.Value(lockWaitKey{}).(func(string))
	told := false
	for {
		unlock, err := a.tryLock(ctx, dlq)
		if !wait || !errors.Is(err, ErrBusy) {
			return unlock, err
		}
		if !told {
			waiting(dlq)
			told = true
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("admin: gave up waiting for %s: %w", dlq, ctx.Err())
		case <-t.C:
		}
	}
}

// tryLock takes the exclusive lock of dlq (broker.TryLock on its lock
// queue), or fails with ErrBusy. unlock releases it.
func (a *Inspector) tryLock(ctx context.Context, dlq string) (unlock func(), err error) {
	name := lockQueue(dlq)
	l, err := broker.TryLock(ctx, a.conn, name)
	if errors.Is(err, broker.ErrLocked) {
		return nil, fmt.Errorf("%w: another warren admin command (replay, purge, list or show) is using %s; "+
			"try again when it has finished (a killed command frees the lock when its connection closes): %w", ErrBusy, dlq, err)
	}
	if err != nil {
		return nil, fmt.Errorf("admin: lock %s: %w", dlq, err)
	}
	return func() {
		if err := l.Release(ctx); err != nil {
			// The connection is gone, or will be: the broker deletes the
			// exclusive queue then.
			a.log.Debug("admin: delete lock queue", "queue", dlq, "lock", name, "err", err)
		}
	}, nil
}
