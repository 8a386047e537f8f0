package admin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/broker"
)

// lockPrefix names the lock queue of a dead-letter queue: warren.lock.<Q>.dlq.
const lockPrefix = "warren.lock."

// lockQueue returns the name of the lock queue guarding dlq.
func lockQueue(dlq string) string { return lockPrefix + dlq }

// held records the locks this process holds, by connection: the broker
// lets the connection that declared an exclusive queue declare it again,
// so two operations sharing a connection must exclude each other here.
var held = struct {
	sync.Mutex
	m map[lockKey]bool
}{m: make(map[lockKey]bool)}

type lockKey struct {
	conn *broker.Conn
	dlq  string
}

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

// tryLock takes the exclusive lock of dlq, or fails with ErrBusy. The lock is
// an exclusive, auto-delete, non-durable queue declared on the admin's
// connection: another connection's declaration fails with RESOURCE_LOCKED,
// and the broker deletes the queue when the connection closes, so a killed
// process frees it. unlock deletes it.
func (a *Inspector) tryLock(ctx context.Context, dlq string) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := lockKey{a.conn, dlq}
	name := lockQueue(dlq)
	held.Lock()
	if held.m[key] {
		held.Unlock()
		return nil, fmt.Errorf("%w: another operation of this process is using %s (lock queue %s)", ErrBusy, dlq, name)
	}
	held.m[key] = true
	held.Unlock()
	release := func() {
		held.Lock()
		delete(held.m, key)
		held.Unlock()
	}

	ch, err := a.conn.Channel()
	if err != nil {
		release()
		return nil, fmt.Errorf("admin: lock %s: %w", dlq, err)
	}
	_, err = ch.QueueDeclare(name, false, true, true, false, amqp.Table{"x-queue-type": "classic"})
	if err != nil {
		_ = ch.Close()
		release()
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.ResourceLocked {
			return nil, fmt.Errorf("%w: another warren admin command (replay, purge, list or show) is using %s: "+
				"its lock queue %s belongs to another connection; try again when it has finished "+
				"(a killed command frees the lock when its connection closes)", ErrBusy, dlq, name)
		}
		return nil, &broker.OpError{Op: broker.OpLock, Err: fmt.Errorf("admin: lock %s: declare lock queue %s: %w", dlq, name, err)}
	}
	return func() {
		if _, err := ch.QueueDelete(name, false, false, false); err != nil {
			// The connection is gone, or will be: the broker deletes the
			// exclusive queue then.
			a.log.Debug("admin: delete lock queue", "queue", dlq, "lock", name, "err", err)
		}
		_ = ch.Close()
		release()
	}, nil
}
