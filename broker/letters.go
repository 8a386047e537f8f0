package broker

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
)

// Failed is one failed run of a task: what a worker knows when it derives
// the task's next message, a retry (EncodeRetry) or a dead letter
// (EncodeDeadLetter), from the delivery. Decode and admin read both back.
type Failed struct {
	// Task is the decoded task (partial for a malformed message).
	Task *warren.Task
	// Err is why the run failed; its text is stored, truncated to
	// MaxErrorLen.
	Err error
	// Stack is a panic's stack, stored truncated to MaxStackLen, or nil.
	Stack []byte
	// At is when the run failed. The zero time means time.Now().
	At time.Time
	// Worker is the host name of the worker that ran it.
	Worker string
	// Duration is how long the handler ran.
	Duration time.Duration
	// FrameMax is the connection's negotiated frame_max: the message is
	// trimmed (Fit) to its HeaderBudget, or DelayedHeaderBudget for a
	// retry through the delay levels. 0 means no limit.
	FrameMax int
}

func (f Failed) at() time.Time {
	if f.At.IsZero() {
		return time.Now()
	}
	return f.At
}

func (f Failed) failure(at time.Time) warren.Failure {
	return warren.Failure{Attempt: f.Task.Attempt, Error: f.Err.Error(), FailedAt: at, Worker: f.Worker, Duration: f.Duration}
}

// Letter is a message derived from a delivery, with where to publish it.
type Letter struct {
	// Exchange and Key route Msg.
	Exchange, Key string
	// Msg is the message: the delivery's body and properties, Warren's
	// headers updated (see Derive).
	Msg amqp.Publishing
	// Delay is how long a retry waits in the delay levels (0: none, or a
	// dead letter); a delay past MaxDelay is clamped to it.
	Delay time.Duration
	// Trimmed reports that Fit dropped some of Warren's metadata (stack,
	// oldest history, error texts) to stay under the frame size.
	Trimmed bool
}

// EncodeRetry derives the message of the task's next attempt from d: its
// attempt counter raised, the failure added to its history, routed through
// the delay levels to wait delay (0: straight back to the task's queue).
// It returns ErrOversized when the task's own headers leave no room for
// the metadata, however trimmed.
func EncodeRetry(d *amqp.Delivery, f Failed, delay time.Duration) (Letter, error) {
	now := f.at()
	t := f.Task
	set := amqp.Table{
		warren.HeaderAttempt:   int32(t.Attempt + 1),
		warren.HeaderLastError: Truncate(f.Err.Error(), MaxErrorLen),
		warren.HeaderHistory:   EncodeHistory(append(t.History[:len(t.History):len(t.History)], f.failure(now))),
		warren.HeaderQueue:     t.Queue,
		warren.HeaderDeliverAt: nil,
	}
	exchange, key, err := DelayRoute(t.Queue, delay)
	if err != nil { // only for a delay past MaxDelay: clamp
		delay = MaxDelay
		exchange, key, _ = DelayRoute(t.Queue, delay)
	}
	budget := HeaderBudget(f.FrameMax)
	if exchange != "" {
		set[warren.HeaderDeliverAt] = now.Add(delay).UnixMilli()
		budget = DelayedHeaderBudget(f.FrameMax)
	}
	l := Letter{Exchange: exchange, Key: key, Msg: Derive(d, set), Delay: delay}
	l.Trimmed, err = Fit(&l.Msg, budget)
	return l, err
}

// EncodeDeadLetter derives the dead letter of a task from d, for its
// queue's dead-letter queue: why it died (reason), the error, when, where
// and how long it ran, and (unless the message was malformed) its attempt
// and history with this failure added. It returns ErrOversized when the
// task's own headers leave no room for that story, however trimmed.
func EncodeDeadLetter(d *amqp.Delivery, f Failed, reason warren.DeadReason) (Letter, error) {
	now := f.at()
	t := f.Task
	set := amqp.Table{
		warren.HeaderDeadReason: string(reason),
		warren.HeaderError:      Truncate(f.Err.Error(), MaxErrorLen),
		warren.HeaderFailedAt:   now.UnixMilli(),
		warren.HeaderWorkerHost: f.Worker,
		warren.HeaderDurationMS: f.Duration.Milliseconds(),
		warren.HeaderQueue:      t.Queue,
		warren.HeaderDeliverAt:  nil,
	}
	if reason != warren.ReasonMalformed {
		set[warren.HeaderAttempt] = int32(t.Attempt)
		set[warren.HeaderHistory] = EncodeHistory(append(t.History[:len(t.History):len(t.History)], f.failure(now)))
		if t.EnqueuedAt.IsZero() {
			set[warren.HeaderEnqueuedAt] = now.UnixMilli()
		}
	}
	if f.Stack != nil {
		set[warren.HeaderStack] = Truncate(string(f.Stack), MaxStackLen)
	}
	l := Letter{Key: warren.DeadLetterQueue(t.Queue), Msg: Derive(d, set)}
	var err error
	l.Trimmed, err = Fit(&l.Msg, HeaderBudget(f.FrameMax))
	return l, err
}
