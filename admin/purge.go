package admin

import (
	"context"
	"errors"
	"fmt"
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
// it removes only what was there when it began, and reports every ID it
// removed, even with All (it never uses queue.purge, which would also take
// dead letters arriving meanwhile, unseen). Dead letters that do not match
// stay, in their order. Purge holds the queue's lock, as Replay does.
func (a *Admin) Purge(ctx context.Context, queue string, f Filter) (PurgeResult, error) {
	var res PurgeResult
	if !f.selects() {
		return res, ErrNoSelector
	}
	m, err := newMatcher(f)
	if err != nil {
		return res, err
	}
	p, err := a.begin(ctx, queue)
	if err != nil {
		return res, err
	}
	var runErr error
	for !m.full(res.Purged) {
		d, ok, err := p.next(ctx)
		if err != nil {
			runErr = err
			break
		}
		if !ok {
			break
		}
		if !m.match(d.MessageId, d.Type) {
			p.hold(d.DeliveryTag)
			continue
		}
		// One ack per read keeps within the pass's ack budget.
		if err := p.ack(d.DeliveryTag); err != nil {
			runErr = err
			break
		}
		res.Purged++
		res.IDs = append(res.IDs, d.MessageId)
	}
	p.stop()
	inDoubt, endErr := p.end(ctx)
	if runErr != nil {
		runErr = fmt.Errorf("admin: purge %s stopped after %d purged: %w", queue, res.Purged, runErr)
	}
	if endErr != nil && inDoubt > 0 {
		endErr = fmt.Errorf("%w; up to %d of the purged dead letters may still be in %s", endErr, inDoubt, p.dlq)
	}
	a.log.Info("admin: purged", "queue", queue, "purged", res.Purged)
	return res, errors.Join(runErr, endErr)
}
