package worker

import (
	"time"

	"github.com/warrenq/warren"
)

// Outcome is how one delivery ended.
type Outcome string

// The outcomes of a delivery.
const (
	// Succeeded: the handler returned nil and the delivery was acked.
	Succeeded Outcome = "succeeded"
	// Skipped: the task was already done (ErrAlreadyDone, returned by the
	// Idempotent middleware or a handler); the delivery was acked.
	Skipped Outcome = "skipped"
	// Retried: the task was republished to the delay levels for a later attempt.
	Retried Outcome = "retried"
	// DeadLettered: the task was moved to its queue's dead-letter queue.
	DeadLettered Outcome = "dead_lettered"
	// Requeued: the delivery was handed back to the broker unchanged
	// (shutdown, or an outcome that could not be published).
	Requeued Outcome = "requeued"
	// Voided: the channel that delivered the task was lost (or the ack
	// failed); the broker delivers the task again.
	Voided Outcome = "voided"
	// Held: the task cannot go on (unreadable, or failed for good) and its
	// queue has no dead-letter target Warren declared (a dead-letter queue
	// consumed as a queue; NoDeclare, for an unreadable one): it is left
	// unacked in place, where the broker keeps it, rather than dropped or
	// run again in a loop. The broker delivers it again once the
	// channel closes.
	Held Outcome = "held"
)

// Event describes one finished delivery.
type Event struct {
	// Task is the task as decoded (partial for a malformed message).
	Task *warren.Task
	// Outcome is how the delivery ended.
	Outcome Outcome
	// Reason says why, for DeadLettered.
	Reason warren.DeadReason
	// Err is the handler's error (or the decode error), nil on success.
	Err error
	// Duration is how long the handler ran (0 if it did not).
	Duration time.Duration
	// Delay is the wait before the next attempt, for Retried.
	Delay time.Duration
	// Redelivered is true when the broker had delivered this message before.
	Redelivered bool
}

// Observer is told what a Pool does with each delivery, for metrics. Its
// methods are called from the pool's goroutines: they must be safe for
// concurrent use and quick.
type Observer interface {
	// TaskStarted is called before the handler runs (not for a message
	// that does not decode).
	TaskStarted(t *warren.Task)
	// TaskFinished is called once per delivery, when its outcome is settled.
	TaskFinished(e Event)
}
