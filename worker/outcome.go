package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// process runs one delivery to its outcome: decide says what to do, and
// carryOut does it.
func (p *Pool) process(hardCtx context.Context, pubs *publishers, j job) {
	d := &j.d
	if d.Redelivered {
		p.redelivered.Add(1)
	}
	t, err := broker.Decode(d, j.queue)
	// The task lives in the queue it was consumed from: retries and dead
	// letters go there, whatever a header claims.
	t.Queue = j.queue
	ev := Event{Task: t, Redelivered: d.Redelivered}
	if obs := p.cfg.Observer; obs != nil {
		defer func() { obs.TaskFinished(ev) }()
	}
	if note := broker.HeaderString(d.Headers, warren.HeaderUnreadable); note != "" || err != nil {
		// Nothing to run: a message that cannot be read or decoded.
		dec := decide(t, attempt{unreadable: note, malformed: err}, &p.rules)
		p.carryOut(hardCtx, pubs, &j, t, dec, 0, &ev)
		return
	}
	if p.cfg.Observer != nil {
		p.cfg.Observer.TaskStarted(t)
	}
	p.started.Add(1)
	p.inFlight.Add(1)
	start := time.Now()
	ended := p.runStart(t, start)
	runCtx := hardCtx
	if !p.cfg.KeepRunningOnDisconnect && j.live != nil {
		var cancel context.CancelCauseFunc
		runCtx, cancel = context.WithCancelCause(hardCtx)
		stopWatch := context.AfterFunc(j.live, func() { cancel(context.Cause(j.live)) })
		defer stopWatch()
		defer cancel(nil)
	}
	err = p.run(runCtx, t)
	dur := time.Since(start)
	ended()
	p.inFlight.Add(-1)
	ev.Err, ev.Duration = err, dur

	if j.live != nil && j.live.Err() != nil {
		// The delivery died with its channel: the broker has requeued it,
		// and any outcome published now would duplicate the task.
		p.voided.Add(1)
		ev.Outcome = Voided
		p.logTask(slog.LevelWarn, t, "worker: delivery lost with its channel; outcome dropped, the broker delivers the task again", "err", err, "duration", dur)
		return
	}
	dec := decide(t, attempt{err: err, shutdown: hardCtx.Err() != nil}, &p.rules)
	p.carryOut(hardCtx, pubs, &j, t, dec, dur, &ev)
}

// ack settles j's delivery positively.
func (j *job) ack() error { return j.from.Ack(j.d.DeliveryTag) }

// carryOut does what dec says with j's delivery of t, whose handler ran
// for dur, and records the outcome in ev.
func (p *Pool) carryOut(ctx context.Context, pubs *publishers, j *job, t *warren.Task, dec decision, dur time.Duration, ev *Event) {
	ev.Err, ev.Reason = dec.err, dec.reason
	switch dec.action {
	case actAck, actSkip:
		if aerr := j.ack(); aerr != nil {
			ev.Outcome = Voided
			p.logTask(slog.LevelWarn, t, "worker: ack failed; the broker will deliver the task again", "err", aerr)
			return
		}
		if dec.action == actSkip {
			p.skipped.Add(1)
			ev.Outcome, ev.Err = Skipped, nil
			p.logTask(slog.LevelInfo, t, "job skipped: already done", "why", dec.err)
			return
		}
		p.succeeded.Add(1)
		p.queueCounts(t.Queue).succeeded.Add(1)
		ev.Outcome = Succeeded
		p.logTask(slog.LevelInfo, t, "job succeeded", "duration", dur)
	case actRequeue:
		ev.Outcome = p.requeue(j, t, "shutdown", broker.RequeueOptions{})
	case actReject, actHold:
		if dec.reason == warren.ReasonUnreadable {
			p.unreadable.Add(1)
		}
		if dec.action == actHold {
			ev.Outcome = p.hold(t, dec.reason, dec.err)
			return
		}
		ev.Outcome = p.reject(j, t, dec.reason, dec.err)
	case actDeadLetter:
		ev.Outcome = p.deadLetter(ctx, pubs, j, p.failed(t, dec.err, dur), dec.reason)
	case actRetry:
		ev.Delay = dec.delay
		ev.Outcome = p.retryLater(ctx, pubs, j, p.failed(t, dec.err, dur), dec.delay)
		if ev.Outcome == DeadLettered { // the retry could not fit in a frame
			ev.Reason, ev.Delay = warren.ReasonOversized, 0
		}
	}
}

// logTask logs with the fixed task keys, building nothing when level is off.
func (p *Pool) logTask(level slog.Level, t *warren.Task, msg string, args ...any) {
	ctx := context.Background()
	if !p.log.Enabled(ctx, level) {
		return
	}
	p.log.Log(ctx, level, msg, append([]any{"task_id", t.ID, "type", t.Type, "queue", t.Queue, "attempt", t.Attempt}, args...)...)
}

// run calls the handler under the handler timeout, turning a panic into a
// *PanicError and a run past its deadline into a timeout error.
func (p *Pool) run(hardCtx context.Context, t *warren.Task) (err error) {
	ctx, cancel := context.WithTimeout(context.WithValue(hardCtx, taskKey{}, t), p.cfg.HandlerTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	err = p.handler.ProcessTask(ctx, t)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && hardCtx.Err() == nil {
		err = fmt.Errorf("worker: handler timeout after %s: %w", p.cfg.HandlerTimeout, err)
	}
	return err
}

// failed describes the run of t that failed with cause after dur, for
// broker's retry and dead-letter encoders.
func (p *Pool) failed(t *warren.Task, cause error, dur time.Duration) broker.Failed {
	f := broker.Failed{Task: t, Err: cause, Worker: p.cfg.Hostname, Duration: dur, FrameMax: p.conn.FrameMax()}
	var pe *PanicError
	if errors.As(cause, &pe) {
		f.Stack = pe.Stack
	}
	return f
}

func (p *Pool) retryLater(ctx context.Context, pubs *publishers, j *job, f broker.Failed, delay time.Duration) Outcome {
	t, cause := f.Task, f.Err
	l, err := broker.EncodeRetry(&j.d, f, delay)
	if err != nil {
		p.oversized.Add(1)
		f.Err = fmt.Errorf("worker: cannot retry: %w (last error: %w)", err, cause)
		return p.deadLetter(ctx, pubs, j, f, warren.ReasonOversized)
	}
	if out, ok := p.forward(ctx, pubs, j, t, l, "retry", cause); !ok {
		return out
	}
	p.retried.Add(1)
	p.queueCounts(t.Queue).retried.Add(1)
	p.logTask(slog.LevelWarn, t, "job retrying", "err", cause, "delay", time.Duration(broker.DelaySeconds(l.Delay))*time.Second, "next_attempt", t.Attempt+1)
	return Retried
}

func (p *Pool) deadLetter(ctx context.Context, pubs *publishers, j *job, f broker.Failed, reason warren.DeadReason) Outcome {
	t, cause := f.Task, f.Err
	if holds(t.Queue, actDeadLetter, p.cfg.NoDeclare) {
		return p.hold(t, reason, cause)
	}
	l, err := broker.EncodeDeadLetter(&j.d, f, reason)
	if err != nil {
		// The task's own headers leave no room for a dead letter's
		// story: the broker dead-letters the original instead.
		p.oversized.Add(1)
		return p.reject(j, t, warren.ReasonOversized, fmt.Errorf("%w (dead-lettering: %w)", err, cause))
	}
	if out, ok := p.forward(ctx, pubs, j, t, l, "dead letter", cause); !ok {
		return out
	}
	p.dead.Add(1)
	p.queueCounts(t.Queue).dead.Add(1)
	p.logTask(slog.LevelError, t, "job dead-lettered", "reason", string(reason), "err", cause)
	return DeadLettered
}

// forward publishes l, the task's retry or dead letter (what names it in
// logs), then acks the delivery. When the publish fails it hands the
// delivery back to the broker and returns that outcome and false.
func (p *Pool) forward(ctx context.Context, pubs *publishers, j *job, t *warren.Task, l broker.Letter, what string, cause error) (Outcome, bool) {
	if l.Trimmed {
		p.oversized.Add(1)
		p.logTask(slog.LevelWarn, t, "worker: "+what+" metadata trimmed to fit the broker's frame size")
	}
	if err := pubs.publish(ctx, l.Exchange, l.Key, l.Msg); err != nil {
		p.logTask(slog.LevelError, t, "worker: could not publish the "+what+"; handing the task back to the broker", "err", err, "cause", cause)
		return p.requeue(j, t, what+" publish failed", broker.RequeueOptions{Counted: true}), false
	}
	if err := j.ack(); err != nil {
		// The new message is stored; the original will come back too:
		// the task may be handled twice (at-least-once).
		p.logTask(slog.LevelWarn, t, "worker: ack after the "+what+" failed; the task may be handled twice", "err", err)
	}
	return "", true
}

// reject hands a delivery Warren cannot carry on (unreadable, or too
// large for a dead letter's metadata) to the broker's own dead-lettering:
// basic.reject without requeue moves the message, exactly as the broker
// holds it, to the queue's dead-letter target (Q.dlq for a queue Warren
// declared), with an x-death reason "rejected". A queue Warren did not
// declare may have no such target, and a reject would drop the message:
// there the delivery is Held, unacked, until the channel closes.
func (p *Pool) reject(j *job, t *warren.Task, reason warren.DeadReason, cause error) Outcome {
	if holds(t.Queue, actReject, p.cfg.NoDeclare) {
		return p.hold(t, reason, cause)
	}
	if err := j.from.Reject(j.d.DeliveryTag); err != nil {
		p.logTask(slog.LevelWarn, t, "worker: reject failed; the broker will deliver the message again", "err", err)
		return Voided
	}
	p.dead.Add(1)
	p.queueCounts(t.Queue).dead.Add(1)
	p.logTask(slog.LevelError, t, "job dead-lettered by the broker (rejected)", "reason", string(reason), "err", cause)
	return DeadLettered
}

// hold leaves a delivery unacked in place: its queue has nowhere to
// dead-letter it to. The broker delivers it again once the channel closes.
func (p *Pool) hold(t *warren.Task, reason warren.DeadReason, cause error) Outcome {
	p.held.Add(1)
	p.logTask(slog.LevelError, t, "worker: this task cannot go on and its queue has no dead-letter target; leaving it unacked in place until the worker stops (warren dlq purge or replay moves it)", "reason", string(reason), "err", cause)
	return Held
}

// requeue hands a delivery back to the broker. o.Counted says that
// handling the task failed (its retry or dead letter could not be
// published): RabbitMQ 4.3 and later then count the hand-back toward the
// queue's delivery limit, as every earlier line counts any hand-back, so a
// task that can never move on is dead-lettered by the broker in the end.
// A hand-back on shutdown is not counted (docs/compatibility.md).
func (p *Pool) requeue(j *job, t *warren.Task, why string, o broker.RequeueOptions) Outcome {
	p.requeued.Add(1)
	if err := j.from.Requeue(j.d.DeliveryTag, o); err != nil {
		p.logTask(slog.LevelDebug, t, "worker: hand-back failed; the broker requeues the task when the channel closes", "why", why, "err", err)
	}
	return Requeued
}
