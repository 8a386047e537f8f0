package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/retry"
)

// action is what the pool does with a delivery.
type action int

const (
	// actAck acks: the handler succeeded.
	actAck action = iota
	// actSkip acks without counting a success: the task was already done.
	actSkip
	// actRequeue hands the delivery back to the broker untouched: the
	// handler was cut off by shutdown and the attempt does not count.
	actRequeue
	// actRetry republishes the task to the delay levels for its next attempt.
	actRetry
	// actDeadLetter publishes the task to its queue's dead-letter queue.
	actDeadLetter
	// actReject hands the delivery, exactly as the broker holds it, to the
	// broker's own dead-lettering.
	actReject
	// actHold leaves the delivery unsettled in place: it cannot go on,
	// and its queue has nowhere to dead-letter it to (see holds).
	actHold
)

var actionNames = [...]string{"ack", "skip", "requeue", "retry", "dead-letter", "reject", "hold"}

func (a action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// attempt is what happened to one delivery, as decide needs it.
type attempt struct {
	// unreadable is the warren.HeaderUnreadable note: the client could not
	// read the delivery's headers. "" when it could.
	unreadable string
	// malformed is why the delivery does not decode into a task, or nil.
	malformed error
	// err is the handler's result, when it ran (unreadable and malformed
	// clear).
	err error
	// shutdown is true when the pool's handler context had ended by the
	// time the handler returned.
	shutdown bool
}

// rules are the parts of the pool's Config that decide applies.
type rules struct {
	retry  retry.Policy            // Config.Retry
	byType map[string]retry.Policy // Config.RetryByType: over retry for its types
	// noDeclare is Config.NoDeclare: the queues were declared by someone
	// else and may have no dead-letter target.
	noDeclare bool
}

// decision is decide's verdict on a delivery.
type decision struct {
	action action
	// reason says why, for actDeadLetter, actReject and actHold.
	reason warren.DeadReason
	// delay is the wait before the next attempt, for actRetry.
	delay time.Duration
	// err is the failure to record (the handler's error, the decode error,
	// or what makes the delivery unreadable); for actSkip, why it was skipped.
	err error
}

// decide says what to do with a delivery of t, consumed from t.Queue,
// after a: it is pure, and the pool carries the decision out (see
// Pool.carryOut). r.retry applies unless r.byType holds a policy for
// t.Type. The checks that need the broker (a retry or a dead letter too
// large for a frame) happen while carrying it out.
func decide(t *warren.Task, a attempt, r *rules) decision {
	dec := verdict(t, a, r)
	if holds(t.Queue, dec.action, r.noDeclare) {
		dec.action = actHold
	}
	return dec
}

// holds reports whether a delivery of queue that act would dead-letter
// has nowhere to go, and must be held instead. A dead-letter queue
// consumed as a queue is its own dead-letter queue: publishing there
// would run the task again at once, and rejecting it drops it. A queue
// Warren did not declare (noDeclare) may have no dead-letter target, and
// a reject would drop the message.
func holds(queue string, act action, noDeclare bool) bool {
	switch act {
	case actDeadLetter:
		return warren.IsDeadLetterQueue(queue)
	case actReject:
		return noDeclare || warren.IsDeadLetterQueue(queue)
	}
	return false
}

// verdict is decide's answer before holds applies.
func verdict(t *warren.Task, a attempt, r *rules) decision {
	switch {
	case a.unreadable != "":
		// The guard under the client replaced headers it could not read:
		// the broker still has them, so the broker dead-letters it.
		return decision{action: actReject, reason: warren.ReasonUnreadable,
			err: fmt.Errorf("worker: unreadable message: %s", a.unreadable)}
	case a.malformed != nil:
		return decision{action: actDeadLetter, reason: warren.ReasonMalformed, err: a.malformed}
	case a.err == nil:
		return decision{action: actAck}
	case errors.Is(a.err, ErrAlreadyDone):
		return decision{action: actSkip, err: a.err}
	case a.shutdown && errors.Is(a.err, context.Canceled):
		return decision{action: actRequeue, err: a.err}
	case errors.Is(a.err, ErrUnknownType):
		return decision{action: actDeadLetter, reason: warren.ReasonUnknownType, err: a.err}
	}
	policy := r.retry
	if tp, ok := r.byType[t.Type]; ok {
		policy = tp
	}
	dec := policy.Decide(t.Attempt, t.MaxAttempts, a.err)
	switch {
	case dec.Permanent:
		return decision{action: actDeadLetter, reason: warren.ReasonPermanent, err: a.err}
	case !dec.Retry:
		return decision{action: actDeadLetter, reason: warren.ReasonExhausted, err: a.err}
	default:
		return decision{action: actRetry, delay: dec.Delay, err: a.err}
	}
}
