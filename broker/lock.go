package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrLocked: the lock is held, by another connection or by another holder
// on the same Conn (TryLock).
var ErrLocked = errors.New("broker: lock held")

// Lock is a lock held on the broker: an exclusive, auto-delete, non-durable
// classic queue declared on a Conn's connection. Another connection's
// declaration fails with RESOURCE_LOCKED, and the broker deletes the queue
// when the connection closes, so a killed process frees its locks.
type Lock struct {
	key  lockKey
	once sync.Once
	err  error
}

// held records the locks taken through each Conn: the broker lets the
// connection that declared an exclusive queue declare it again, so two
// holders sharing a Conn must exclude each other here.
var held = struct {
	sync.Mutex
	m map[lockKey]bool
}{m: make(map[lockKey]bool)}

type lockKey struct {
	c    *Conn
	name string
}

// TryLock takes the lock name on c: it declares the queue name, exclusive
// to c's connection. It fails at once with ErrLocked while another
// connection, or another holder on c, holds it; other failures (a refused
// permission, a lost connection) carry OpLock.
func TryLock(ctx context.Context, c *Conn, name string) (*Lock, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := lockKey{c, name}
	held.Lock()
	if held.m[key] {
		held.Unlock()
		return nil, &OpError{Op: OpLock, Err: fmt.Errorf("%w: %s is held on this connection", ErrLocked, name)}
	}
	held.m[key] = true
	held.Unlock()
	l := &Lock{key: key}
	if err := DeclarePlain(ctx, c, name, DeclareOptions{Exclusive: true}); err != nil {
		l.forget()
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.ResourceLocked {
			return nil, &OpError{Op: OpLock, Err: fmt.Errorf("%w: %s belongs to another connection", ErrLocked, name)}
		}
		return nil, &OpError{Op: OpLock, Err: fmt.Errorf("broker: take lock %s: %w", name, err)}
	}
	return l, nil
}

// Release frees the lock: it deletes the lock's queue, even after ctx has
// ended. Only the first call does anything; later ones return its error.
// An error means the queue could not be deleted (the connection is gone,
// or going): the broker deletes it when the connection closes.
func (l *Lock) Release(ctx context.Context) error {
	l.once.Do(func() {
		_, l.err = DeleteQueue(context.WithoutCancel(ctx), l.key.c, l.key.name, DeleteOptions{})
		l.forget()
	})
	return l.err
}

func (l *Lock) forget() {
	held.Lock()
	delete(held.m, l.key)
	held.Unlock()
}
