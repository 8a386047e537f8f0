package doctor

import (
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// RetryMetadata is the least room Warren's own properties and headers take
// on a retry once broker.Fit has trimmed them: message_id, type and
// content_type at their longest, the attempt counters and times, the
// longest queue name, and the last error cut to 128 bytes. A worker trims
// the stack, the history and the error texts before it gives up on a
// retry, so this, not their full length, is what a task's own headers
// must leave room for.
var RetryMetadata = retryMetadata()

func retryMetadata() int {
	long := strings.Repeat("x", 255)
	msg := amqp.Publishing{
		MessageId: long, Type: long, ContentType: long, DeliveryMode: amqp.Persistent, Timestamp: time.Now(),
		Headers: amqp.Table{
			warren.HeaderAttempt:     int32(2),
			warren.HeaderMaxAttempts: int32(10),
			warren.HeaderEnqueuedAt:  int64(0),
			warren.HeaderDeliverAt:   int64(0),
			warren.HeaderQueue:       strings.Repeat("q", warren.MaxQueueNameLen),
			warren.HeaderLastError:   strings.Repeat("e", 128),
			warren.HeaderReplayCount: int32(1),
			warren.HeaderReplayedAt:  int64(0),
		},
	}
	return broker.PropertiesSize(&msg)
}

// HeaderBudget returns how many bytes of headers of their own tasks can
// carry and still be retried through the delay levels when the negotiated
// frame_max is frameMax: broker.DelayedHeaderBudget (the frame less the
// room the broker's x-death entries need) less RetryMetadata. It is
// negative when even Warren's trimmed metadata may not fit. A task over it
// is not lost: its retry is dead-lettered with reason oversized. Bodies are
// split across frames, so frame_max does not bound them (max_message_size
// does).
func HeaderBudget(frameMax int) int {
	return broker.DelayedHeaderBudget(frameMax) - RetryMetadata
}
