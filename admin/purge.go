package admin

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// PurgeResult says what a Purge removed.
type PurgeResult struct {
	// Purged counts the dead letters removed.
	Purged int
	// IDs lists their task IDs, in queue order.
	IDs []string
}

// Purge deletes the dead letters of queue that match f, for good. f must
// select something: an empty Filter without All fails with ErrNoSelector.
//
// Purge reads the dead-letter queue as List does and acks each match, so
// it removes only what was there when it began and reports every ID it
// removed, even with All (it never uses queue.purge, which would also take
// dead letters arriving meanwhile, unseen). Dead letters that do not match
// stay, in their order. Purge holds the queue's lock, as Replay does.
func (a *Inspector) Purge(ctx context.Context, queue string, f Filter) (PurgeResult, error) {
	var res PurgeResult
	if !f.selects() {
		return res, ErrNoSelector
	}
	p, m, err := a.beginMatching(ctx, queue, f)
	if err != nil {
		return res, err
	}
	matched := 0
	report := progressOf(ctx, "purge")
	inDoubt, readErr, finErr := p.walk(ctx, func(d *amqp.Delivery) error {
		if m.full(matched) || !m.match(d) {
			p.keep(d)
		} else {
			matched++
			id := d.MessageId
			p.remove(d, func() {
				res.Purged++
				res.IDs = append(res.IDs, id)
			})
		}
		report(Progress{Total: p.count, Read: p.read, Done: res.Purged, Skipped: p.read - matched})
		return nil
	})
	report(Progress{Total: p.count, Read: p.read, Done: res.Purged, Skipped: p.read - matched})
	if readErr != nil {
		readErr = fmt.Errorf("admin: purge %s stopped after %d purged: %w", queue, res.Purged, readErr)
	}
	if finErr != nil && inDoubt > 0 {
		finErr = fmt.Errorf("%w; up to %d of the purged dead letters may still be in %s", finErr, inDoubt, p.dlq)
	}
	a.log.Info("admin: purged", "queue", queue, "purged", res.Purged)
	return res, errors.Join(readErr, finErr)
}
