package doctor

import (
	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// AMQP 0-9-1 framing, in bytes.
const (
	// frameOverhead is a frame's type, channel, size and frame-end octet.
	frameOverhead = 8
	// contentHeaderFixed is a content header's class, weight, body size
	// and property flags, before the properties themselves.
	contentHeaderFixed = 14
	// shortstrMax is the longest AMQP short string (message_id, type,
	// content_type, a host name).
	shortstrMax = 255
)

// WarrenHeaderReserve is the most Warren's own properties and headers can
// take in a task's content header, in bytes: message_id, type and
// content_type at their longest; warren-last-error and warren-error at
// broker.MaxErrorLen; warren-stack at broker.MaxStackLen; a full
// warren-history (broker.MaxHistoryLen entries, each error cut to 1 KiB);
// and the scalar headers with a longest queue name and host name.
var WarrenHeaderReserve = warrenReserve()

// BrokerHeaderReserve is the most RabbitMQ adds to a task's headers on
// its way through the delay levels and dead-lettering, in bytes: one x-death
// entry per delay level and one for the queue itself (reason, queue,
// exchange and routing key at their longest), and the x-first-death-* and
// x-last-death-* headers.
var BrokerHeaderReserve = brokerReserve()

// field is the encoded size of a table field: name, type octet, value.
func field(name string, value int) int { return 1 + len(name) + 1 + value }

// longstr is the encoded size of a long string value of n bytes.
func longstr(n int) int { return 4 + n }

func warrenReserve() int {
	props := 3*(1+shortstrMax) + 8 + 1 // message_id, type, content_type; timestamp; delivery mode
	entry := 4 + field("attempt", 4) + field("error", longstr(1<<10)) + field("failed-at", 8) +
		field("worker", longstr(shortstrMax)) + field("duration-ms", 8)
	history := field(warren.HeaderHistory, 4+broker.MaxHistoryLen*(1+entry))
	texts := field(warren.HeaderLastError, longstr(broker.MaxErrorLen)) +
		field(warren.HeaderError, longstr(broker.MaxErrorLen)) +
		field(warren.HeaderStack, longstr(broker.MaxStackLen))
	scalars := 0
	for _, h := range []string{warren.HeaderAttempt, warren.HeaderMaxAttempts, warren.HeaderEnqueuedAt,
		warren.HeaderDeliverAt, warren.HeaderFailedAt, warren.HeaderDurationMS, warren.HeaderReplayCount,
		warren.HeaderReplayedAt} {
		scalars += field(h, 8)
	}
	scalars += field(warren.HeaderQueue, longstr(warren.MaxQueueNameLen)) +
		field(warren.HeaderWorkerHost, longstr(shortstrMax)) + field(warren.HeaderDeadReason, longstr(32))
	return 4 + props + history + texts + scalars // 4: the headers table's length
}

func brokerReserve() int {
	key := 2*broker.DelayLevels + warren.MaxQueueNameLen // a delay route's routing key
	entry := 4 + field("count", 8) + field("reason", longstr(16)) + field("queue", longstr(warren.MaxQueueNameLen)) +
		field("time", 8) + field("exchange", longstr(shortstrMax)) + field("routing-keys", 4+1+longstr(key))
	deaths := field("x-death", 4+(broker.DelayLevels+1)*(1+entry))
	firstLast := 2 * (field("x-first-death-reason", longstr(16)) + field("x-first-death-queue", longstr(warren.MaxQueueNameLen)) +
		field("x-first-death-exchange", longstr(shortstrMax)))
	return deaths + firstLast
}

// HeaderBudget returns how many bytes of properties and headers of their
// own tasks can carry when the negotiated frame_max is frameMax: the
// content header must fit in one frame, after AMQP's framing and the
// worst case of WarrenHeaderReserve and BrokerHeaderReserve. It is
// negative when even Warren's own metadata may not fit. Bodies are split
// across frames, so frame_max does not bound them (max_message_size does).
func HeaderBudget(frameMax int) int {
	return frameMax - frameOverhead - contentHeaderFixed - WarrenHeaderReserve - BrokerHeaderReserve
}
