package warren

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// HeaderPrefix starts the name of every AMQP header that Warren owns. It does
// not start with "x-": from RabbitMQ 3.13 on, "x-" headers belong to the broker.
const HeaderPrefix = "warren-"

// Header names. Each value is documented in docs/protocol.md.
const (
	// HeaderAttempt is the 1-based number of the attempt this delivery is (int).
	HeaderAttempt = HeaderPrefix + "attempt"
	// HeaderMaxAttempts caps the attempts for this task (int). Absent means
	// the worker's retry policy decides.
	HeaderMaxAttempts = HeaderPrefix + "max-attempts"
	// HeaderEnqueuedAt is when the task was first enqueued (Unix milliseconds, int64).
	HeaderEnqueuedAt = HeaderPrefix + "enqueued-at"
	// HeaderQueue is the queue the task was enqueued to (string).
	HeaderQueue = HeaderPrefix + "queue"
	// HeaderDeliverAt is when a delayed task is due (Unix milliseconds, int64).
	HeaderDeliverAt = HeaderPrefix + "deliver-at"
	// HeaderLastError is the error of the previous failed attempt (string).
	HeaderLastError = HeaderPrefix + "last-error"
	// HeaderHistory records each failed attempt (array of tables, newest last).
	HeaderHistory = HeaderPrefix + "history"

	// Dead-letter metadata, set when a worker moves a task to a dead-letter queue.

	// HeaderDeadReason says why the task was dead-lettered (string, see DeadReason).
	HeaderDeadReason = HeaderPrefix + "dead-reason"
	// HeaderError is the final error (string).
	HeaderError = HeaderPrefix + "error"
	// HeaderFailedAt is when the task was dead-lettered (Unix milliseconds, int64).
	HeaderFailedAt = HeaderPrefix + "failed-at"
	// HeaderWorkerHost is the host name of the worker that dead-lettered it (string).
	HeaderWorkerHost = HeaderPrefix + "worker-host"
	// HeaderDurationMS is how long the last handler run took (milliseconds, int64).
	HeaderDurationMS = HeaderPrefix + "duration-ms"
	// HeaderStack is the goroutine stack of a handler panic (string).
	HeaderStack = HeaderPrefix + "stack"

	// Replay audit, set by warren dlq replay.

	// HeaderReplayCount counts how many times the task was replayed (int).
	HeaderReplayCount = HeaderPrefix + "replay-count"
	// HeaderReplayedAt is when it was last replayed (Unix milliseconds, int64).
	HeaderReplayedAt = HeaderPrefix + "replayed-at"

	// HeaderUnreadable replaces the headers of a message this client cannot
	// read (nested too deep, too many entries, or larger than the frame
	// size): it says what was wrong (string). Warren sets it on the
	// receiving side only; the broker still holds the original headers.
	HeaderUnreadable = HeaderPrefix + "unreadable"
)

// DeadReason says why a task ended in a dead-letter queue.
type DeadReason string

// The reasons a task is dead-lettered.
const (
	// ReasonExhausted: the task failed on its last allowed attempt.
	ReasonExhausted DeadReason = "attempts_exhausted"
	// ReasonPermanent: the handler returned an error marked permanent.
	ReasonPermanent DeadReason = "permanent_error"
	// ReasonUnknownType: no handler is registered for the task type.
	ReasonUnknownType DeadReason = "unknown_type"
	// ReasonMalformed: the message could not be decoded as a Warren task.
	ReasonMalformed DeadReason = "malformed"
	// ReasonDeliveryLimit: the broker dead-lettered the task after its
	// x-delivery-limit, because workers kept dying (or closing their channel)
	// while holding it. Set by the broker (x-death), reported by admin tools.
	ReasonDeliveryLimit DeadReason = "delivery_limit"
	// ReasonUnreadable: the message's headers could not be read by this
	// client (see HeaderUnreadable); the worker rejected it and the broker
	// dead-lettered the original, headers intact.
	ReasonUnreadable DeadReason = "unreadable"
	// ReasonOversized: the task's own headers leave no room, under the
	// broker's frame size, for the metadata a retry or a dead letter adds.
	ReasonOversized DeadReason = "oversized"
)

// Task is one unit of work: what a producer enqueues and a handler receives.
type Task struct {
	// ID identifies the task (AMQP message_id). Producers use a UUIDv7 unless
	// the caller chooses one; it stays the same across retries and replays.
	ID string
	// Type selects the handler (AMQP type).
	Type string
	// Queue is the queue the task was enqueued to.
	Queue string
	// Payload is the message body, exactly as given to the producer.
	Payload []byte
	// ContentType is the AMQP content_type, "application/json" by default.
	ContentType string
	// Attempt is the 1-based number of this attempt.
	Attempt int
	// MaxAttempts is the cap set by the producer; 0 means the worker's policy decides.
	MaxAttempts int
	// EnqueuedAt is when the task was first enqueued.
	EnqueuedAt time.Time
	// LastError is the error of the previous attempt, if any.
	LastError string
	// Redelivered is true when the broker delivered this message before
	// (a worker died or lost its connection while holding it).
	Redelivered bool
	// DeliveryCount is the broker's count of earlier deliveries of this
	// message (x-delivery-count on quorum queues), 0 on the first.
	DeliveryCount int
	// History lists earlier failed attempts, oldest first.
	History []Failure
	// Headers are the caller's own headers: every header that is neither
	// Warren's (HeaderPrefix) nor the broker's ("x-").
	Headers map[string]any
}

// Failure records one failed attempt.
type Failure struct {
	Attempt  int
	Error    string
	FailedAt time.Time
	Worker   string
	Duration time.Duration
}

// MaxQueueNameLen leaves room for the ".dlq" suffix within AMQP's 255 bytes.
const MaxQueueNameLen = 200

// DeadLetterSuffix ends the name of every dead-letter queue.
const DeadLetterSuffix = ".dlq"

// DeadLetterQueue returns the name of queue's dead-letter queue: queue
// with DeadLetterSuffix. A dead-letter queue has none of its own: for one
// (IsDeadLetterQueue), DeadLetterQueue returns queue itself, so that
// nothing ever declares or publishes to a "Q.dlq.dlq" (a worker consuming
// a dead-letter queue holds what fails there: see worker.Held).
func DeadLetterQueue(queue string) string {
	if IsDeadLetterQueue(queue) {
		return queue
	}
	return queue + DeadLetterSuffix
}

// IsDeadLetterQueue reports whether queue is named as a dead-letter queue
// (it ends with DeadLetterSuffix).
func IsDeadLetterQueue(queue string) bool {
	return len(queue) > len(DeadLetterSuffix) && strings.HasSuffix(queue, DeadLetterSuffix)
}

// ErrInvalidQueueName is returned for a queue name Warren cannot route.
var ErrInvalidQueueName = errors.New("warren: invalid queue name")

// ValidateQueueName checks that name can be used as a Warren queue: 1 to
// MaxQueueNameLen characters from letters, digits, '-', '_', '.' and ':',
// not starting with "amq." (reserved by the broker) or "warren." (reserved
// for Warren's shared topology), and no empty dot-separated word (the delay
// levels route by topic words).
func ValidateQueueName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidQueueName)
	}
	if len(name) > MaxQueueNameLen {
		return fmt.Errorf("%w: %d bytes long, at most %d", ErrInvalidQueueName, len(name), MaxQueueNameLen)
	}
	if strings.HasPrefix(name, "amq.") || strings.HasPrefix(name, "warren.") {
		return fmt.Errorf("%w: %q: the prefixes amq. and warren. are reserved", ErrInvalidQueueName, name)
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == ':':
		default:
			return fmt.Errorf("%w: %q: character %q not allowed (use letters, digits, - _ . :)", ErrInvalidQueueName, name, r)
		}
	}
	if name[0] == '.' || name[len(name)-1] == '.' || strings.Contains(name, "..") {
		return fmt.Errorf("%w: %q: empty word between dots", ErrInvalidQueueName, name)
	}
	return nil
}
