package admin

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
)

// List returns the dead letters of queue's dead-letter queue that match f,
// in queue order. An empty Filter matches every dead letter. queue is the
// Warren queue's own name, not its ".dlq".
//
// List does not remove or change a dead letter, nor their order: it reads
// each one without acking it and hands it back (see the package
// documentation for the one thing RabbitMQ changes all the same: the
// x-delivery-count header). It reads the dead letters the queue held when
// it began, all of them even with a Limit, since handing back only some
// would reorder the queue. It holds every match in memory; use Each to
// stream.
func (a *Inspector) List(ctx context.Context, queue string, f Filter) ([]DeadLetter, error) {
	out := make([]DeadLetter, 0)
	err := a.Each(ctx, queue, f, func(dl DeadLetter) error {
		out = append(out, dl)
		return nil
	})
	return out, err
}

// Each calls fn for every dead letter of queue's dead-letter queue that
// matches f, in queue order, as List does without keeping them. After fn
// returns an error, Each calls it no more, finishes the pass (to leave the
// queue in order) unless ctx has ended, and returns that error. fn runs
// while the operation holds the queue's lock; keep it short: the dead
// letter stays unacked meanwhile, and RabbitMQ closes a channel that holds
// a message unacked past its consumer_timeout (30 minutes by default),
// which requeues the dead letters (nothing is lost) and fails the pass.
func (a *Inspector) Each(ctx context.Context, queue string, f Filter, fn func(DeadLetter) error) error {
	p, m, err := a.beginMatching(ctx, queue, f)
	if err != nil {
		return err
	}
	var fnErr error
	matched := 0
	report := progressOf(ctx, "list")
	_, readErr, finErr := p.walk(ctx, func(d *amqp.Delivery) error {
		if fnErr == nil && !m.full(matched) && m.match(d) {
			matched++
			fnErr = fn(newDeadLetter(d, queue))
		}
		p.keep(d)
		report(Progress{Total: p.count, Read: p.read, Done: matched, Skipped: p.read - matched})
		return nil
	})
	report(Progress{Total: p.count, Read: p.read, Done: matched, Skipped: p.read - matched})
	return errors.Join(fnErr, readErr, finErr)
}

// Get returns the dead letter of task id in queue's dead-letter queue, or
// an error wrapping ErrNotFound. If the queue holds several copies of the
// task (possible after an interrupted replay, see Replay), Get returns the
// first. Like List, it changes nothing, and reads the whole queue.
func (a *Inspector) Get(ctx context.Context, queue, id string) (DeadLetter, error) {
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
