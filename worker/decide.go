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
	// broker's own dead-lettering (or holds it: see Pool.reject).
	actReject
)

var actionNames = [...]string{"ack", "skip", "requeue", "retry", "dead-letter", "reject"}

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

// decision is decide's verdict on a delivery.
type decision struct {
	action action
	// reason says why, for actDeadLetter and actReject.
	reason warren.DeadReason
	// delay is the wait before the next attempt, for actRetry.
	delay time.Duration
	// err is the failure to record (the handler's error, the decode error,
	// or what makes the delivery unreadable); for actSkip, why it was skipped.
	err error
}

// decide says what to do with a delivery of t after a: it is pure, and the
// pool carries the decision out (see Pool.carryOut). policy applies unless
// byType holds one for t.Type. The checks that need the broker (a retry or
// a dead letter too large for a frame) happen while carrying it out.
func decide(t *warren.Task, a attempt, policy retry.Policy, byType map[string]retry.Policy) decision {
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
	if tp, ok := byType[t.Type]; ok {
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
