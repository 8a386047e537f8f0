package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/warrenq/warren"
)

// List returns the dead letters of queue's dead-letter queue that match f,
// in queue order. An empty Filter matches every dead letter. queue is the
// Warren queue's own name, not its ".dlq".
//
// List does not remove or change a dead letter: it reads each one without
// acking it and hands all of them back to the broker at the end (see the
// package documentation for what RabbitMQ changes all the same: the
// x-delivery-count header). It reads at most as many as the queue held when
// it began. It holds every match in memory; use Each to stream, or a Limit.
func (a *Admin) List(ctx context.Context, queue string, f Filter) ([]DeadLetter, error) {
	out := make([]DeadLetter, 0)
	err := a.Each(ctx, queue, f, func(dl DeadLetter) error {
		out = append(out, dl)
		return nil
	})
	return out, err
}

// Each calls fn for every dead letter of queue's dead-letter queue that
// matches f, in queue order, as List does without keeping them. It stops
// at the first error fn returns, and returns it. fn runs while the
// operation holds the queue's lock and the dead letters it has read; keep
// it short (RabbitMQ closes a channel that holds a message unacked for
// longer than its consumer_timeout, 30 minutes by default: that requeues
// the dead letters, nothing is lost, but the operation fails).
func (a *Admin) Each(ctx context.Context, queue string, f Filter, fn func(DeadLetter) error) (err error) {
	m, err := newMatcher(f)
	if err != nil {
		return err
	}
	p, err := a.begin(ctx, queue)
	if err != nil {
		return err
	}
	defer func() {
		_, eerr := p.end(ctx)
		err = errors.Join(err, eerr)
	}()
	matched := 0
	for !m.full(matched) {
		d, ok, err := p.next(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		p.hold(d.DeliveryTag)
		if !m.match(d.MessageId, d.Type) {
			continue
		}
		matched++
		if err := fn(newDeadLetter(&d, queue)); err != nil {
			return err
		}
	}
	return nil
}

// Get returns the dead letter of task id in queue's dead-letter queue, or
// an error wrapping ErrNotFound. If the queue holds several copies of the
// task (possible after an interrupted replay or purge, see the package
// documentation), Get returns the first. Like List, it changes nothing.
func (a *Admin) Get(ctx context.Context, queue, id string) (DeadLetter, error) {
	if id == "" {
		return DeadLetter{}, fmt.Errorf("%w: empty task ID", ErrNotFound)
	}
	var found *DeadLetter
	err := a.Each(ctx, queue, Filter{IDs: []string{id}, Limit: 1}, func(dl DeadLetter) error {
		found = &dl
		return nil
	})
	if err != nil {
		return DeadLetter{}, err
	}
	if found == nil {
		return DeadLetter{}, fmt.Errorf("%w: no task %s in %s", ErrNotFound, id, warren.DeadLetterQueue(queue))
	}
	return *found, nil
}
