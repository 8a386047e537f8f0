package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// replayWindow bounds the replayed messages awaiting their confirm.
const replayWindow = 256

// ReplayOptions shape a Replay.
type ReplayOptions struct {
	// DryRun reports what Replay would do and changes nothing.
	DryRun bool
	// ToQueue sends the tasks to this queue instead of each one's original
	// queue. "" means the original queue (the warren-queue header, else the
	// queue whose dead letters are replayed).
	ToQueue string
	// Rate caps the replays a second (a token bucket); 0 means no cap. A
	// dry run ignores it.
	Rate float64
	// StripUnreadable replays the matching dead letters whose headers this
	// client cannot read (DeadLetter.Unreadable) without those headers:
	// body, ID, type and other properties as they were, the task's own
	// headers lost. false leaves them in the dead-letter queue, counted
	// as Unreadable.
	StripUnreadable bool
}

// ReplayResult counts what a Replay did (or, for a dry run, would do).
type ReplayResult struct {
	// Replayed counts the dead letters back on a queue, confirmed by the broker.
	Replayed int
	// Resumed counts the dead letters an earlier, interrupted replay had
	// already put back on their queue (its journal says so): they were
	// removed without being published again. Any filter aside: such a
	// dead letter is a leftover, not a task waiting to be replayed.
	Resumed int
	// Skipped counts the dead letters read that did not match the filter.
	Skipped int
	// Failed counts the matching dead letters that could not be replayed;
	// they stay in the dead-letter queue.
	Failed int
	// Unreadable counts the matching dead letters left in the dead-letter
	// queue because this client cannot read their headers (see
	// ReplayOptions.StripUnreadable).
	Unreadable int
	// Unconfirmed counts the dead letters published whose confirm never
	// came (the connection was lost): they stay in the dead-letter queue,
	// and the journal lets the next replay remove them without
	// publishing them again if they did arrive.
	Unconfirmed int
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
// # Exactly once across interruptions
//
// The same publish also stores the replayed message in the queue's replay
// journal, JournalQueue(queue) ("Q.dlq.replayed", a durable quorum queue
// declared by Replay): RabbitMQ's sender-selected distribution (the BCC
// header, which the broker removes) routes one message to both queues
// atomically, and the confirm covers both. A replay killed after the
// confirm and before the ack leaves the dead letter (task ID, replay
// count n) in the dead-letter queue and its journal entry (same ID, n+1).
// Every replay reads the journal first, under the lock, and removes such a
// dead letter without publishing it again (Resumed). A task replayed,
// failed again and dead-lettered again carries n+1 itself and is replayed
// as it should be. Once a replay has settled every dead letter it read
// (completed, or stopped by ctx with every confirm known), no entry refers
// to a dead letter any more and it deletes the journal. Dead letters read
// by a replay that still holds the lock are not in doubt; nothing else
// writes to the journal.
//
// A replay interrupted anywhere (ctx, a dropped connection, a killed
// process) loses nothing: a dead letter leaves the queue only after its
// copy is stored. On interruption it waits up to 30s for the confirms
// still due and acks what they confirm.
//
// Replay holds the queue's lock: concurrent replays, purges and lists of
// the same queue fail with ErrBusy instead of interfering.
func (a *Inspector) Replay(ctx context.Context, queue string, f Filter, o ReplayOptions) (ReplayResult, error) {
	var res ReplayResult
	if !f.selects() {
		return res, ErrNoSelector
	}
	m, err := newMatcher(f)
	if err != nil {
		return res, err
	}
	if err := checkQueue(queue); err != nil {
		return res, err
	}
	if o.Rate < 0 {
		return res, fmt.Errorf("admin: ReplayOptions.Rate cannot be negative (got %v)", o.Rate)
	}
	if o.ToQueue != "" {
		if err := warren.ValidateQueueName(o.ToQueue); err != nil {
			return res, fmt.Errorf("admin: replay target %q: %w", o.ToQueue, err)
		}
		if o.ToQueue == warren.DeadLetterQueue(queue) || o.ToQueue == JournalQueue(queue) {
			return res, fmt.Errorf("%w: replay target %s is the dead-letter queue being replayed or its journal", ErrInvalidTarget, o.ToQueue)
		}
	}
	dlq := warren.DeadLetterQueue(queue)
	unlock, err := a.lock(ctx, dlq)
	if err != nil {
		return res, err
	}
	defer unlock()
	if _, err := broker.Inspect(ctx, a.conn, dlq); errors.Is(err, broker.ErrQueueNotFound) {
		return res, fmt.Errorf("admin: dead-letter queue %s does not exist (is %q a Warren queue?): %w", dlq, queue, err)
	}
	j, entries, err := a.readJournal(ctx, queue, !o.DryRun)
	if err != nil {
		return res, err
	}
	if entries > 0 {
		a.log.Info("admin: replay journal holds entries of an interrupted replay", "queue", queue, "entries", entries)
	}
	p, err := a.openPass(ctx, queue, dlq, func() {})
	if err != nil {
		return res, err
	}
	r := &replayer{a: a, p: p, o: o, targets: make(map[string]error), journal: j, bcc: []any{JournalQueue(queue)}}
	if o.Rate > 0 && !o.DryRun {
		r.rate = newBucket(o.Rate, time.Now, sleepCtx)
	}
	if !o.DryRun {
		if r.pub, err = broker.NewSender(a.conn, broker.SenderConfig{Window: replayWindow}); err != nil {
			_, ferr := p.finish(ctx)
			return res, errors.Join(fmt.Errorf("admin: replay %s: %w", queue, err), ferr)
		}
	}
	var readErr error
	matched := 0
	report := progressOf(ctx, "replay")
	progress := func() {
		report(Progress{Total: p.count, Read: p.read, Done: r.res.Replayed, Skipped: r.res.Skipped, Failed: r.res.Failed})
	}
	inDoubt, readErr, finErr := p.walk(ctx, func(d *amqp.Delivery) error {
		switch n, _ := headerCount(d.Headers, warren.HeaderReplayCount); {
		case r.stop != nil:
			p.keep(d)
		case j.covers(d.MessageId, n):
			r.resume(d)
		case m.full(matched):
			p.keep(d)
		case !m.match(d):
			r.res.Skipped++
			p.keep(d)
		case unreadable(d) && !o.StripUnreadable:
			matched++
			r.res.Unreadable++
			p.keep(d)
		default:
			matched++
			r.replay(ctx, d)
		}
		progress()
		return nil
	})
	progress()
	if r.pub != nil {
		_ = r.pub.Close()
	}
	// A broken channel fails both the reading and the finishing: then
	// not everything read is settled.
	settled := finErr == nil && p.broken == nil && r.inDoubt == 0
	res = r.res

	var errs []error
	res.Unconfirmed = r.inDoubt
	stopped := func(cause error) error {
		if res.Unconfirmed > 0 {
			return fmt.Errorf("admin: replay %s stopped after %d replayed and %d published whose confirm did not arrive (they stay in %s; the next replay completes them without publishing them twice): %w",
				queue, res.Replayed, res.Unconfirmed, p.dlq, cause)
		}
		return fmt.Errorf("admin: replay %s stopped after %d replayed: %w", queue, res.Replayed, cause)
	}
	if readErr != nil {
		errs = append(errs, stopped(readErr))
	}
	if r.stop != nil {
		errs = append(errs, stopped(r.stop))
	}
	if res.Failed > 0 {
		errs = append(errs, fmt.Errorf("admin: replay %s: %d dead letters could not be replayed and stay in %s (%s): %w",
			queue, res.Failed, p.dlq, sample(r.failedIDs, res.Failed), r.firstErr))
	}
	if finErr != nil {
		if inDoubt > 0 {
			finErr = fmt.Errorf("%w; up to %d replayed tasks may still be in %s too; the journal %s lets the next replay remove them without replaying them again",
				finErr, inDoubt, p.dlq, JournalQueue(queue))
		}
		errs = append(errs, finErr)
	}
	if settled && !o.DryRun {
		// Every dead letter read is settled: each journal entry refers to
		// a dead letter now gone (or to a publish the broker refused).
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), returnTimeout)
		if err := r.checkTargetsStill(cctx); err != nil {
			errs = append(errs, fmt.Errorf("admin: replay %s: %w; the replayed tasks are kept in %s", queue, err, JournalQueue(queue)))
		} else if err := a.dropJournal(cctx, queue); err != nil {
			a.log.Warn("admin: cannot delete the replay journal; the next replay reads it", "queue", queue, "err", err)
		}
		cancel()
	}
	msg := "admin: replayed"
	if o.DryRun {
		msg = "admin: replay dry run"
	}
	a.log.Info(msg, "queue", queue, "replayed", res.Replayed, "resumed", res.Resumed, "skipped", res.Skipped, "failed", res.Failed, "unreadable", res.Unreadable, "to_queue", o.ToQueue)
	return res, errors.Join(errs...)
}

// replayer is the state of one Replay.
type replayer struct {
	a       *Inspector
	p       *pass
	o       ReplayOptions
	pub     *broker.Sender   // nil for a dry run
	targets map[string]error // target queue → nil if it exists
	stop    error            // why no more dead letters are replayed
	journal journal          // the replay journal as this replay began
	bcc     []any            // the BCC header: the journal queue
	inDoubt int              // replays whose confirm never came: the copy may be stored
	rate    *bucket          // nil: no rate cap

	res       ReplayResult
	firstErr  error
	failedIDs []string
}

// replay publishes a copy of d and lets the pass remove d once the broker
// confirms it; d stays if anything fails.
func (r *replayer) replay(ctx context.Context, d *amqp.Delivery) {
	id := d.MessageId
	target := r.o.ToQueue
	if target == "" {
		target = originalQueue(d.Headers, r.p.queue)
	}
	if err := r.checkTarget(ctx, target); err != nil {
		if ctx.Err() != nil {
			r.stop = ctx.Err()
		} else {
			r.fail(id, err)
		}
		r.p.keep(d)
		return
	}
	if r.o.DryRun {
		r.res.Replayed++
		r.res.IDs = append(r.res.IDs, id)
		r.p.keep(d)
		return
	}
	if r.rate != nil {
		if err := r.rate.take(ctx); err != nil {
			r.stop = err
			r.p.keep(d)
			return
		}
	}
	msg := replayMessage(d, target, time.Now())
	if _, err := broker.Fit(&msg, broker.HeaderBudget(r.a.conn.FrameMax())); err != nil {
		r.fail(id, err)
		r.p.keep(d)
		return
	}
	msg.Headers[bccHeader] = r.bcc
	pd, err := r.pub.Publish(ctx, "", target, msg)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			r.stop = err // never published: not a failure, just not done
		case errors.Is(err, broker.ErrClosed):
			r.stop = err
			r.fail(id, err)
		default:
			r.fail(id, err)
		}
		r.p.keep(d)
		return
	}
	r.a.log.Debug("admin: replaying", "task_id", id, "type", d.Type, "queue", target)
	r.p.await(d, pd, func(err error) {
		if err != nil {
			if !errors.Is(err, broker.ErrNacked) && !errors.Is(err, broker.ErrUnroutable) {
				r.inDoubt++
			}
			r.fail(id, err)
			return
		}
		r.res.Replayed++
		r.res.IDs = append(r.res.IDs, id)
	})
}

// resume removes d, which an earlier replay already put back on its queue
// (the journal says so), without publishing it again. A dry run only counts it.
func (r *replayer) resume(d *amqp.Delivery) {
	r.a.log.Debug("admin: already replayed; removing the dead letter", "task_id", d.MessageId, "queue", r.p.queue)
	if r.o.DryRun {
		r.res.Resumed++
		r.p.keep(d)
		return
	}
	r.p.remove(d, func() { r.res.Resumed++ })
}

// checkTargetsStill reports an error if a queue this replay published to
// is gone: the copies published after it went are only in the journal.
func (r *replayer) checkTargetsStill(ctx context.Context) error {
	for target, err := range r.targets {
		if err != nil {
			continue
		}
		if _, err := broker.Inspect(ctx, r.a.conn, target); err != nil {
			return fmt.Errorf("target queue %s: %w", target, err)
		}
	}
	return nil
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

func (r *replayer) fail(id string, err error) {
	r.res.Failed++
	if len(r.failedIDs) < sampleLen {
		r.failedIDs = append(r.failedIDs, id)
	}
	if r.firstErr == nil {
		r.firstErr = err
	}
	level := slog.LevelWarn
	if r.res.Failed > 10 {
		level = slog.LevelDebug // the summary error counts them all
	}
	r.a.log.Log(context.Background(), level, "admin: replay failed; the dead letter stays", "task_id", id, "queue", r.p.queue, "err", err)
}

// sampleLen is how many IDs an error message names.
const sampleLen = 5

// sample names the first IDs of total.
func sample(ids []string, total int) string {
	if total <= len(ids) {
		return "tasks " + strings.Join(ids, ", ")
	}
	return fmt.Sprintf("tasks %s and %d more", strings.Join(ids, ", "), total-len(ids))
}
