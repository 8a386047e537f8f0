package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// replayWindow bounds the replayed messages awaiting their confirm.
const replayWindow = 256

// confirmGrace bounds the wait for confirms still due when a replay is
// interrupted: each one that arrives lets the replay ack its dead letter,
// which closes a window for a duplicate.
const confirmGrace = 30 * time.Second

// ReplayOptions shape a Replay.
type ReplayOptions struct {
	// DryRun reports what Replay would do and changes nothing.
	DryRun bool
	// ToQueue sends the tasks to this queue instead of each one's original
	// queue. "" means the original queue (the warren-queue header, else the
	// queue whose dead letters are replayed).
	ToQueue string
}

// ReplayResult counts what a Replay did (or, for a dry run, would do).
type ReplayResult struct {
	// Replayed counts the dead letters back on a queue, confirmed by the broker.
	Replayed int
	// Skipped counts the dead letters read that did not match the filter.
	Skipped int
	// Failed counts the matching dead letters that could not be replayed;
	// they stay in the dead-letter queue.
	Failed int
	// IDs lists the task IDs of the replayed dead letters, in queue order.
	IDs []string
}

// Replay puts the dead letters of queue that match f back to work. f must
// select something: an empty Filter without All fails with ErrNoSelector.
//
// Each matching dead letter is published (mandatory, with a publisher
// confirm) to its original queue or to o.ToQueue, with its attempt count
// reset to 1, warren-replay-count raised by one, warren-replayed-at set,
// the dead-letter metadata (reason, error, failed-at, worker host,
// duration, stack) and the broker's x- headers (x-death) removed, and its
// history kept; body, ID, type and other properties are unchanged. Only
// once the broker confirms the publish is the dead letter acked. If the
// publish fails (target queue missing, refused, unconfirmed), the dead
// letter stays and counts as Failed; Replay then returns the result with
// an error naming the first cause. Dead letters that do not match stay
// untouched, in their order.
//
// A replay interrupted anywhere (ctx, a dropped connection, a killed
// process) loses nothing: a dead letter leaves the queue only after its
// copy is stored. The price is at-least-once: a copy that was stored but
// whose dead letter was not yet acked leaves both, so the task may run
// again later if that dead letter is replayed once more. Replay keeps that
// window short: on interruption it waits up to 30s for the confirms still
// due and acks what they confirm.
//
// Replay holds the queue's lock: concurrent replays, purges and lists of
// the same queue fail with ErrBusy instead of interfering.
func (a *Admin) Replay(ctx context.Context, queue string, f Filter, o ReplayOptions) (ReplayResult, error) {
	var res ReplayResult
	if !f.selects() {
		return res, ErrNoSelector
	}
	m, err := newMatcher(f)
	if err != nil {
		return res, err
	}
	if o.ToQueue != "" {
		if err := warren.ValidateQueueName(o.ToQueue); err != nil {
			return res, fmt.Errorf("admin: ReplayOptions.ToQueue: %w", err)
		}
		if o.ToQueue == warren.DeadLetterQueue(queue) {
			return res, fmt.Errorf("admin: ReplayOptions.ToQueue: %s is the dead-letter queue being replayed", o.ToQueue)
		}
	}
	p, err := a.begin(ctx, queue)
	if err != nil {
		return res, err
	}
	r := &replayer{a: a, p: p, m: m, o: o, targets: make(map[string]error)}
	if !o.DryRun {
		if r.pub, err = broker.NewPublisher(a.conn, replayWindow); err != nil {
			_, eerr := p.end(ctx)
			return res, errors.Join(fmt.Errorf("admin: replay %s: %w", queue, err), eerr)
		}
	}
	runErr := r.run(ctx)
	if r.pub != nil {
		r.drain(ctx)
		_ = r.pub.Close()
	}
	inDoubt, endErr := p.end(ctx)
	res = r.res

	var errs []error
	if runErr != nil {
		errs = append(errs, fmt.Errorf("admin: replay %s stopped after %d replayed: %w", queue, res.Replayed, runErr))
	}
	if len(r.stuck) > 0 {
		errs = append(errs, fmt.Errorf("admin: replay %s: %d dead letters were replayed but could not be removed from %s (%s); "+
			"they would run again if replayed again: %w", queue, len(r.stuck), p.dlq, sample(r.stuck), r.ackErr))
	}
	if res.Failed > 0 {
		errs = append(errs, fmt.Errorf("admin: replay %s: %d dead letters could not be replayed and stay in %s (%s): %w",
			queue, res.Failed, p.dlq, sample(r.failedIDs), r.firstErr))
	}
	if endErr != nil {
		if inDoubt > 0 {
			endErr = fmt.Errorf("%w; up to %d replayed dead letters may still be in %s and would run again if replayed again", endErr, inDoubt, p.dlq)
		}
		errs = append(errs, endErr)
	}
	level := "admin: replayed"
	if o.DryRun {
		level = "admin: replay dry run"
	}
	a.log.Info(level, "queue", queue, "replayed", res.Replayed, "skipped", res.Skipped, "failed", res.Failed, "to_queue", o.ToQueue)
	return res, errors.Join(errs...)
}

// replayer is the state of one Replay.
type replayer struct {
	a       *Admin
	p       *pass
	m       *matcher
	o       ReplayOptions
	pub     *broker.Publisher // nil for a dry run
	targets map[string]error  // target queue → nil if it exists

	inflight  []inflight // published, awaiting the confirm or the ack, in publish order
	res       ReplayResult
	firstErr  error
	failedIDs []string
	ackErr    error    // the first failed ack: the pass cannot remove dead letters any more
	stuck     []string // tasks replayed whose dead letters could not be removed
}

type inflight struct {
	tag uint64
	id  string
	pd  *broker.Pending
}

func (r *replayer) run(ctx context.Context) error {
	defer r.p.stop()
	matched := 0
	for !r.m.full(matched) {
		d, ok, err := r.p.next(ctx)
		if err != nil {
			return err
		}
		r.settleConfirmed(false)
		if !ok {
			return nil
		}
		if !r.m.match(d.MessageId, d.Type) {
			r.p.hold(d.DeliveryTag)
			r.res.Skipped++
			continue
		}
		matched++
		target := r.o.ToQueue
		if target == "" {
			target = originalQueue(d.Headers, r.p.queue)
		}
		if err := r.checkTarget(ctx, target); err != nil {
			r.fail(d.DeliveryTag, d.MessageId, err)
			continue
		}
		if r.o.DryRun {
			r.p.hold(d.DeliveryTag)
			r.res.Replayed++
			r.res.IDs = append(r.res.IDs, d.MessageId)
			continue
		}
		pd, err := r.pub.Publish(ctx, "", target, replayMessage(&d, target, time.Now()))
		if err != nil {
			if ctx.Err() != nil {
				r.p.hold(d.DeliveryTag) // never published: not a failure, just not done
				return err
			}
			r.fail(d.DeliveryTag, d.MessageId, err)
			if errors.Is(err, broker.ErrClosed) {
				return err
			}
			continue
		}
		r.a.log.Debug("admin: replaying", "task_id", d.MessageId, "type", d.Type, "queue", target)
		r.inflight = append(r.inflight, inflight{tag: d.DeliveryTag, id: d.MessageId, pd: pd})
	}
	return nil
}

// settleConfirmed acks the dead letters whose copies are confirmed, oldest
// first, and holds those whose publish failed. During the scan (!all) it
// stops at the first confirm still due and keeps within the pass's ack
// budget; with all, every confirm must be in (see drain).
func (r *replayer) settleConfirmed(all bool) {
	for len(r.inflight) > 0 {
		f := r.inflight[0]
		if !all {
			if !r.p.canAck() {
				return
			}
			select {
			case <-f.pd.Done():
			default:
				return
			}
		}
		r.inflight = r.inflight[1:]
		if err := f.pd.Wait(context.Background()); err != nil { // Done: returns at once
			r.fail(f.tag, f.id, err)
			continue
		}
		r.res.Replayed++
		r.res.IDs = append(r.res.IDs, f.id)
		if r.ackErr == nil {
			r.ackErr = r.p.ack(f.tag)
		}
		if r.ackErr != nil {
			// The task is back on its queue, but its dead letter cannot be
			// removed: the broker requeues it when the channel goes.
			r.stuck = append(r.stuck, f.id)
		}
	}
}

// drain waits for the confirms still due, until ctx ends and then for up
// to confirmGrace, and settles them; a confirm that does not come in time
// counts as a failure (the dead letter stays, the copy may exist).
func (r *replayer) drain(ctx context.Context) {
	r.p.stop()
	if len(r.inflight) == 0 {
		return
	}
	if err := r.pub.Flush(ctx); err != nil {
		grace, cancel := context.WithTimeout(context.WithoutCancel(ctx), confirmGrace)
		defer cancel()
		if err := r.pub.Flush(grace); err != nil {
			r.a.log.Warn("admin: replay interrupted before every confirm arrived; those dead letters stay, and their tasks may run twice",
				"queue", r.p.queue, "err", err)
			_ = r.pub.Close() // fails every publish still due with ErrConfirmLost
		}
	}
	r.settleConfirmed(true)
}

// checkTarget reports whether target can receive replayed tasks, once per target.
func (r *replayer) checkTarget(ctx context.Context, target string) error {
	if err, ok := r.targets[target]; ok {
		return err
	}
	err := warren.ValidateQueueName(target)
	if err == nil {
		if _, ierr := broker.Inspect(ctx, r.a.conn, target); ierr != nil {
			if errors.Is(ierr, broker.ErrQueueNotFound) {
				err = fmt.Errorf("target queue %s does not exist: %w", target, ierr)
			} else {
				err = ierr
			}
		}
	}
	if err != nil && ctx.Err() != nil {
		return err // do not cache an interruption
	}
	r.targets[target] = err
	return err
}

func (r *replayer) fail(tag uint64, id string, err error) {
	r.p.hold(tag)
	r.res.Failed++
	r.failedIDs = append(r.failedIDs, id)
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.a.log.Warn("admin: replay failed; the dead letter stays", "task_id", id, "queue", r.p.queue, "err", err)
}

// sample names the first few IDs of a list.
func sample(ids []string) string {
	const n = 5
	if len(ids) <= n {
		return "tasks " + strings.Join(ids, ", ")
	}
	return fmt.Sprintf("tasks %s and %d more", strings.Join(ids[:n], ", "), len(ids)-n)
}
