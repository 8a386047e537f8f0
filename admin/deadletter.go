package admin

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// Reasons the broker itself gives when it dead-letters a message (the x-death
// header), reported as DeadLetter.Reason when no worker recorded one.
const (
	// ReasonDeliveryLimit: the quorum queue's x-delivery-limit was passed,
	// because workers kept dying (or closing their channel) while holding
	// the task.
	ReasonDeliveryLimit = warren.ReasonDeliveryLimit
	// ReasonRejected: a consumer rejected the message without requeueing it.
	ReasonRejected warren.DeadReason = "rejected"
	// ReasonExpired: the message's TTL ran out in the queue.
	ReasonExpired warren.DeadReason = "expired"
	// ReasonMaxLen: the queue was over its length limit (drop-head overflow).
	ReasonMaxLen warren.DeadReason = "maxlen"
)

// DeadLetter is one message of a dead-letter queue, as an operator sees it.
type DeadLetter struct {
	// ID is the task ID (AMQP message_id); Type the task type (AMQP type).
	ID, Type string
	// Queue is the queue the task belongs to: the warren-queue header, or
	// the queue whose dead-letter queue holds it. Replay sends it there.
	Queue string
	// Payload is the message body, byte for byte; ContentType its AMQP content_type.
	Payload     []byte
	ContentType string
	// Reason says why the task is dead: the warren-dead-reason header a
	// worker wrote, or, when the broker dead-lettered it (a task that
	// crash-loops past the queue's x-delivery-limit carries no Warren
	// metadata), the reason from the broker's x-death header:
	// ReasonDeliveryLimit, ReasonRejected, ReasonExpired or ReasonMaxLen.
	// "" when neither says.
	Reason warren.DeadReason
	// Error is the final error (warren-error); "" for a broker dead letter.
	Error string
	// Attempts is the attempt the task died on (warren-attempt; absent
	// means 1, unreadable gives 0); MaxAttempts the producer's cap
	// (warren-max-attempts), 0 if none.
	Attempts, MaxAttempts int
	// EnqueuedAt is when the task was first enqueued. FailedAt is when it
	// was dead-lettered: warren-failed-at, or the time in the broker's
	// x-death (whole seconds).
	EnqueuedAt, FailedAt time.Time
	// WorkerHost is the host of the worker that dead-lettered it.
	WorkerHost string
	// Duration is how long the last handler run took.
	Duration time.Duration
	// Stack is the goroutine stack of a handler panic.
	Stack string
	// History lists the failed attempts, oldest first (at most
	// broker.MaxHistoryLen, the newest).
	History []warren.Failure
	// ReplayCount is how many times the task was replayed before (warren-replay-count).
	ReplayCount int
	// DeliveryCount is the broker's x-delivery-count as this dead letter
	// was read from its quorum dead-letter queue. RabbitMQ 3.10 counts every
	// return to the queue, so each earlier List, Get or Replay pass over it
	// adds one.
	DeliveryCount int
	// Unreadable is set when this client could not read the dead letter's
	// headers (nested too deep, too many entries, or too large for the
	// frame size): Reason is then ReasonUnreadable, Error says what was
	// wrong, and Headers holds only warren.HeaderUnreadable. The broker
	// still holds the headers as they were. Replay and Export leave such a
	// dead letter in place (ReplayOptions.StripUnreadable replays it
	// without them); Purge removes it like any other.
	Unreadable bool
	// Headers holds every header as stored, broker headers (x-death)
	// included, with the value types of the AMQP client (it is the
	// delivery's own table, not a copy).
	Headers map[string]any
}

// deadLetterHeaders are the headers a worker writes when it dead-letters a
// task; Replay removes them. The history (warren-history) stays.
var deadLetterHeaders = []string{
	warren.HeaderDeadReason,
	warren.HeaderError,
	warren.HeaderFailedAt,
	warren.HeaderWorkerHost,
	warren.HeaderDurationMS,
	warren.HeaderStack,
}

// newDeadLetter reads a delivery from queue's dead-letter queue. It never
// fails: fields whose header is missing or of the wrong kind stay zero.
func newDeadLetter(d *amqp.Delivery, queue string) DeadLetter {
	h := d.Headers
	dl := DeadLetter{
		ID:          d.MessageId,
		Type:        d.Type,
		Queue:       originalQueue(h, queue),
		Payload:     d.Body,
		ContentType: d.ContentType,
		Reason:      warren.DeadReason(broker.HeaderString(h, warren.HeaderDeadReason)),
		Error:       broker.HeaderString(h, warren.HeaderError),
		WorkerHost:  broker.HeaderString(h, warren.HeaderWorkerHost),
		Stack:       broker.HeaderString(h, warren.HeaderStack),
		Headers:     h,
	}
	if n, ok := headerCount(h, warren.HeaderAttempt); ok {
		dl.Attempts = n
	} else if _, present := h[warren.HeaderAttempt]; !present {
		dl.Attempts = 1 // absent means 1 (docs/protocol.md)
	}
	if n, ok := headerCount(h, warren.HeaderMaxAttempts); ok {
		dl.MaxAttempts = n
	}
	if n, ok := headerCount(h, warren.HeaderReplayCount); ok {
		dl.ReplayCount = n
	}
	if n, ok := headerCount(h, "x-delivery-count"); ok {
		dl.DeliveryCount = n
	}
	if ms, ok := broker.HeaderInt(h, warren.HeaderDurationMS); ok && ms >= 0 {
		dl.Duration = time.Duration(ms) * time.Millisecond
	}
	if ts, ok := broker.HeaderTime(h, warren.HeaderEnqueuedAt); ok {
		dl.EnqueuedAt = ts
	} else if !d.Timestamp.IsZero() {
		dl.EnqueuedAt = d.Timestamp
	}
	dl.FailedAt = failedAt(h)
	if dl.Reason == "" {
		if death, ok := brokerDeath(h); ok {
			dl.Reason = warren.DeadReason(death.reason)
		}
	}
	dl.History = broker.DecodeHistory(h[warren.HeaderHistory])
	if note := broker.HeaderString(h, warren.HeaderUnreadable); note != "" {
		dl.Unreadable, dl.Reason, dl.Error = true, warren.ReasonUnreadable, note
	}
	return dl
}

// unreadable reports whether this client could not read d's headers.
func unreadable(d *amqp.Delivery) bool {
	return broker.HeaderString(d.Headers, warren.HeaderUnreadable) != ""
}

// deadError is a dead letter's error text: warren-error, or why its
// headers could not be read.
func deadError(h amqp.Table) string {
	if note := broker.HeaderString(h, warren.HeaderUnreadable); note != "" {
		return note
	}
	return broker.HeaderString(h, warren.HeaderError)
}

// failedAt is when a dead letter was dead-lettered: warren-failed-at, else
// the time of the broker's x-death entry when the broker gave the reason.
func failedAt(h amqp.Table) time.Time {
	if ts, ok := broker.HeaderTime(h, warren.HeaderFailedAt); ok {
		return ts
	}
	if broker.HeaderString(h, warren.HeaderDeadReason) == "" {
		if death, ok := brokerDeath(h); ok {
			return death.at
		}
	}
	return time.Time{}
}

// originalQueue is where a dead letter of queue's DLQ belongs: its
// warren-queue header, or queue.
func originalQueue(h amqp.Table, queue string) string {
	if s := broker.HeaderString(h, warren.HeaderQueue); s != "" {
		return s
	}
	return queue
}

// headerCount reads a non-negative int header.
func headerCount(h amqp.Table, key string) (int, bool) {
	n, ok := broker.HeaderInt(h, key)
	if !ok || n < 0 || n > 1<<31-1 {
		return 0, false
	}
	return int(n), true
}

// death is the broker's account of its most recent dead-lettering.
type death struct {
	reason string
	at     time.Time
}

// brokerDeath reads why the broker dead-lettered a message: x-last-death-*
// (RabbitMQ 3.13 and later), else the first (most recent) entry of x-death,
// else x-first-death-*.
func brokerDeath(h amqp.Table) (death, bool) {
	if r := broker.HeaderString(h, "x-last-death-reason"); r != "" {
		dd := death{reason: r}
		if entry, ok := firstDeathEntry(h); ok && entry.reason == r {
			dd.at = entry.at
		}
		return dd, true
	}
	if entry, ok := firstDeathEntry(h); ok {
		return entry, true
	}
	if r := broker.HeaderString(h, "x-first-death-reason"); r != "" {
		return death{reason: r}, true
	}
	return death{}, false
}

func firstDeathEntry(h amqp.Table) (death, bool) {
	arr, ok := h["x-death"].([]any)
	if !ok {
		return death{}, false
	}
	for _, e := range arr {
		tab, ok := e.(amqp.Table)
		if !ok {
			continue
		}
		r := broker.HeaderString(tab, "reason")
		if r == "" {
			continue
		}
		dd := death{reason: r}
		if ts, ok := broker.HeaderTime(tab, "time"); ok {
			dd.at = ts
		}
		return dd, true
	}
	return death{}, false
}

// replayMessage builds the message that puts a dead letter back to work on
// target: body and properties as they were (see broker.Derive), the
// broker's x- headers and the dead-letter metadata removed, the history
// kept, the attempt count reset to 1, warren-replay-count raised by one,
// warren-replayed-at set to now, warren-queue set to target (where the
// task now lives), and a stale warren-deliver-at (the due time of an old
// retry, which older workers left in dead letters) removed.
func replayMessage(d *amqp.Delivery, target string, now time.Time) amqp.Publishing {
	count, _ := headerCount(d.Headers, warren.HeaderReplayCount)
	msg := broker.Derive(d, amqp.Table{
		warren.HeaderAttempt:     int32(1),
		warren.HeaderReplayCount: int32(min(count+1, 1<<31-1)),
		warren.HeaderReplayedAt:  now.UnixMilli(),
		warren.HeaderQueue:       target,
	})
	for _, k := range deadLetterHeaders {
		delete(msg.Headers, k)
	}
	delete(msg.Headers, warren.HeaderDeliverAt)
	delete(msg.Headers, warren.HeaderUnreadable)
	return msg
}
