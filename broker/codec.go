package broker

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
)

// Limits on what Warren writes into headers, so that a long error or a deep
// history never pushes a message past the broker's frame limits.
const (
	MaxErrorLen   = 8 << 10  // bytes of an error kept in a header
	MaxHistoryLen = 16       // failed attempts kept in HeaderHistory
	maxHistoryErr = 1 << 10  // bytes of each history entry's error
	MaxStackLen   = 16 << 10 // bytes of a panic stack kept in a header
)

// DefaultContentType is the content type of a task whose producer gave none.
const DefaultContentType = "application/json"

// Encode turns t into an AMQP message: the body is the payload as given,
// message_id, type, content_type and timestamp are AMQP properties, and
// Warren's metadata travels in headers named with warren.HeaderPrefix.
// The message is persistent.
func Encode(t *warren.Task) amqp.Publishing {
	h := make(amqp.Table, len(t.Headers)+6)
	for k, v := range t.Headers {
		if n, ok := v.(int); ok {
			v = int64(n) // amqp091-go would write a Go int as 32 bits
		}
		h[k] = v
	}
	if t.Attempt > 1 { // absent means 1 (docs/protocol.md)
		h[warren.HeaderAttempt] = int32(t.Attempt)
	}
	if t.MaxAttempts > 0 {
		h[warren.HeaderMaxAttempts] = int32(t.MaxAttempts)
	}
	if !t.EnqueuedAt.IsZero() {
		h[warren.HeaderEnqueuedAt] = t.EnqueuedAt.UnixMilli()
	}
	// warren-queue is optional: the worker routes by the queue it consumed.
	if t.LastError != "" {
		h[warren.HeaderLastError] = Truncate(t.LastError, MaxErrorLen)
	}
	if len(t.History) > 0 {
		h[warren.HeaderHistory] = EncodeHistory(t.History)
	}
	ct := t.ContentType
	if ct == "" {
		ct = DefaultContentType
	}
	ts := t.EnqueuedAt
	if ts.IsZero() {
		ts = time.Now()
	}
	return amqp.Publishing{
		Headers:      h,
		ContentType:  ct,
		DeliveryMode: amqp.Persistent,
		MessageId:    t.ID,
		Type:         t.Type,
		Timestamp:    ts,
		Body:         t.Payload,
	}
}

// EncodeHistory encodes failed attempts for HeaderHistory, keeping the
// newest MaxHistoryLen.
func EncodeHistory(hist []warren.Failure) []any {
	if len(hist) > MaxHistoryLen {
		hist = hist[len(hist)-MaxHistoryLen:]
	}
	out := make([]any, 0, len(hist))
	for _, f := range hist {
		out = append(out, amqp.Table{
			"attempt":     int32(f.Attempt),
			"error":       Truncate(f.Error, maxHistoryErr),
			"failed-at":   f.FailedAt.UnixMilli(),
			"worker":      f.Worker,
			"duration-ms": f.Duration.Milliseconds(),
		})
	}
	return out
}

// Decode reads a Warren task from a delivery. queue is the queue it was
// consumed from, used when the message does not name one. It fails with
// ErrMalformed when the message has no message_id or type, or when
// warren-attempt, warren-max-attempts or warren-enqueued-at cannot be read
// as a number in range; other Warren headers of an unexpected kind are
// ignored. It never panics, whatever the input, and always returns a
// non-nil task holding what could be read.
func Decode(d *amqp.Delivery, queue string) (*warren.Task, error) {
	t := &warren.Task{
		ID:          d.MessageId,
		Type:        d.Type,
		Queue:       queue,
		Payload:     d.Body,
		ContentType: d.ContentType,
		Attempt:     1,
		Redelivered: d.Redelivered,
	}
	var problems []string
	if t.ID == "" {
		problems = append(problems, "no message_id (the task ID)")
	}
	if t.Type == "" {
		problems = append(problems, "no type (the task type)")
	}
	if !d.Timestamp.IsZero() {
		t.EnqueuedAt = d.Timestamp
	}
	for k, v := range d.Headers {
		switch {
		case k == "x-delivery-count":
			if n, ok := toInt64(v); ok && n >= 0 {
				t.DeliveryCount = int(min(n, math.MaxInt32))
			}
		case strings.HasPrefix(k, "x-"):
			// the broker's (x-death, x-first-death-*): not carried on
		case k == warren.HeaderAttempt:
			n, ok := toInt64(v)
			if !ok || n < 1 || n > math.MaxInt32 {
				problems = append(problems, fmt.Sprintf("header %s: want a positive integer, got %s", k, describe(v)))
				continue
			}
			t.Attempt = int(n)
		case k == warren.HeaderMaxAttempts:
			n, ok := toInt64(v)
			if !ok || n < 0 || n > math.MaxInt32 {
				problems = append(problems, fmt.Sprintf("header %s: want a non-negative integer, got %s", k, describe(v)))
				continue
			}
			t.MaxAttempts = int(n)
		case k == warren.HeaderEnqueuedAt:
			ts, ok := toTime(v)
			if !ok {
				problems = append(problems, fmt.Sprintf("header %s: want Unix milliseconds, got %s", k, describe(v)))
				continue
			}
			t.EnqueuedAt = ts
		case k == warren.HeaderQueue:
			if s := HeaderString(d.Headers, k); s != "" {
				t.Queue = s
			}
		case k == warren.HeaderLastError:
			t.LastError = HeaderString(d.Headers, k)
		case k == warren.HeaderHistory:
			t.History = DecodeHistory(v)
		case strings.HasPrefix(k, warren.HeaderPrefix):
			// Warren metadata of other stages (dead-letter, replay): read by admin tools
		default:
			if t.Headers == nil {
				t.Headers = make(map[string]any)
			}
			t.Headers[k] = v
		}
	}
	if len(problems) > 0 {
		return t, fmt.Errorf("%w: %s", ErrMalformed, strings.Join(problems, "; "))
	}
	return t, nil
}

// DecodeHistory reads a HeaderHistory value; entries it cannot read are skipped.
func DecodeHistory(v any) []warren.Failure {
	arr, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]warren.Failure, 0, len(arr))
	for _, e := range arr {
		tab, ok := e.(amqp.Table)
		if !ok {
			continue
		}
		var f warren.Failure
		if n, ok := toInt64(tab["attempt"]); ok && n >= 0 && n <= math.MaxInt32 {
			f.Attempt = int(n)
		}
		f.Error = HeaderString(tab, "error")
		f.Worker = HeaderString(tab, "worker")
		if ts, ok := toTime(tab["failed-at"]); ok {
			f.FailedAt = ts
		}
		if n, ok := toInt64(tab["duration-ms"]); ok && n >= 0 && n < math.MaxInt64/int64(time.Millisecond) {
			f.Duration = time.Duration(n) * time.Millisecond
		}
		out = append(out, f)
	}
	return out
}

// toInt64 accepts every integer type an AMQP client may send, integral
// floats, and decimal strings.
func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		if n > math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	case float32:
		return floatInt(float64(n))
	case float64:
		return floatInt(n)
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		return i, err == nil
	}
	return 0, false
}

func floatInt(f float64) (int64, bool) {
	if f != math.Trunc(f) || math.IsNaN(f) || f > math.MaxInt64 || f < math.MinInt64 {
		return 0, false
	}
	return int64(f), true
}

// toTime reads Unix milliseconds, or an AMQP timestamp.
func toTime(v any) (time.Time, bool) {
	if ts, ok := v.(time.Time); ok {
		return ts, true
	}
	ms, ok := toInt64(v)
	if !ok || ms < 0 || ms > 1<<53 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// HeaderInt reads an integer header written by any AMQP client.
func HeaderInt(h amqp.Table, key string) (int64, bool) { return toInt64(h[key]) }

// HeaderTime reads a Unix-milliseconds (or AMQP timestamp) header.
func HeaderTime(h amqp.Table, key string) (time.Time, bool) { return toTime(h[key]) }

// HeaderString reads a string header.
func HeaderString(h amqp.Table, key string) string {
	switch s := h[key].(type) {
	case string:
		return s
	case []byte:
		return string(s)
	}
	return ""
}

func describe(v any) string {
	s := fmt.Sprintf("%T %v", v, v)
	return Truncate(s, 80)
}

// Truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…(truncated)"
	cut := max(n-len(mark), 0)
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// StripBrokerHeaders returns a copy of h without the broker's own headers
// (x-death, x-first-death-*, x-last-death-*, x-delivery-count), which must
// not travel with a republished message: RabbitMQ drops a message that
// dead-letters into a queue already named in its x-death.
//
// It removes the sender-selected distribution headers CC and BCC too: a
// message republished with them is routed again to every queue they name,
// so a task a foreign client published with a CC would copy itself on
// each retry, dead-lettering or replay.
func StripBrokerHeaders(h amqp.Table) amqp.Table {
	out := make(amqp.Table, len(h))
	for k, v := range h {
		if strings.HasPrefix(k, "x-") || k == "CC" || k == "BCC" {
			continue
		}
		out[k] = v
	}
	return out
}

// Derive builds the message that carries a delivered task onward (to a
// delay level, a dead-letter queue, or back to its queue): the same body and
// properties, the broker's x- headers removed, and the headers in set added
// or replaced (a nil value removes the header). The user_id and expiration properties are dropped: the
// broker refuses a user_id that is not the publisher's own, and a dead
// letter must not expire.
func Derive(d *amqp.Delivery, set amqp.Table) amqp.Publishing {
	h := StripBrokerHeaders(d.Headers)
	for k, v := range set {
		if v == nil {
			delete(h, k)
			continue
		}
		h[k] = v
	}
	return amqp.Publishing{
		Headers:         h,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}
