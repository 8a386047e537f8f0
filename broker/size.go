package broker

import (
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
)

// ErrOversized is returned when a message's properties and headers do not
// fit in the broker's frame size with the room Warren keeps for what the
// broker adds. RabbitMQ closes the whole connection (FRAME_ERROR) on a
// publish whose header frame is too large, so Warren checks before it
// sends. Match it with errors.Is; the error says the sizes.
var ErrOversized = errors.New("broker: the message's headers are too large for the broker's frame size")

// brokerHeaders is the room kept for what the broker adds to a message it
// stores: x-delivery-count on each redelivery, and an x-death entry with
// the x-first-death-* headers when it dead-letters it.
const brokerHeaders = 1 << 10

// deathEntry bounds one x-death entry (count, reason, queue, time,
// exchange and the routing key, which for a delayed message spells the
// delay and the queue name).
const deathEntry = 256 + 2*DelayLevels + warren.MaxQueueNameLen

// HeaderBudget is the most bytes a message's properties and headers may
// take when it is published straight to a queue (a task, a dead letter, a
// replay, an import): frameMax less the frame's own bytes and the room the
// broker needs to add its headers when it redelivers or dead-letters it.
// frameMax 0 (no limit) gives 0, meaning no budget.
func HeaderBudget(frameMax int) int {
	if frameMax <= 0 {
		return 0
	}
	return frameMax - frameOverhead - brokerHeaders
}

// DelayedHeaderBudget is HeaderBudget for a message that goes through the
// delay levels (a retry): each level it waits in adds an x-death entry.
func DelayedHeaderBudget(frameMax int) int {
	if frameMax <= 0 {
		return 0
	}
	return HeaderBudget(frameMax) - DelayLevels*deathEntry
}

// PropertiesSize returns the size of msg's content header payload as
// amqp091-go encodes it: the class, weight and body size, the property
// flags, and every property, headers included. A message fits in a frame
// when PropertiesSize plus 8 is at most the negotiated frame_max.
func PropertiesSize(msg *amqp.Publishing) int {
	n := 2 + 2 + 8 + 2
	for _, s := range []string{msg.ContentType, msg.ContentEncoding, msg.CorrelationId, msg.ReplyTo,
		msg.Expiration, msg.MessageId, msg.Type, msg.UserId, msg.AppId} {
		if s != "" {
			n += 1 + len(s)
		}
	}
	if len(msg.Headers) > 0 {
		n += tableSize(msg.Headers)
	}
	if msg.DeliveryMode > 0 {
		n++
	}
	if msg.Priority > 0 {
		n++
	}
	if !msg.Timestamp.IsZero() {
		n += 8
	}
	return n
}

func tableSize(t amqp.Table) int {
	n := 4
	for k, v := range t {
		n += 1 + len(k) + fieldSize(v)
	}
	return n
}

// fieldSize is the encoded size of a table or array value, type octet
// included, as amqp091-go writes it.
func fieldSize(v any) int {
	switch v := v.(type) {
	case nil:
		return 1
	case bool, byte, int8:
		return 2
	case int16, uint16:
		return 3
	case int, int32, uint32, float32:
		return 5
	case int64, float64, time.Time:
		return 9
	case amqp.Decimal:
		return 6
	case string:
		return 5 + len(v)
	case []byte:
		return 5 + len(v)
	case []any:
		n := 5
		for _, e := range v {
			n += fieldSize(e)
		}
		return n
	case amqp.Table:
		return 1 + tableSize(v)
	case map[string]any:
		return 1 + tableSize(v)
	}
	return 0
}

// Fit makes msg's properties fit in budget bytes (see HeaderBudget),
// trimming Warren's own metadata only, in this order: the panic stack,
// the oldest entries of the history, then the error texts, cut shorter.
// It never touches the task's own headers or properties. It reports
// whether it trimmed anything, and ErrOversized when even Warren's
// metadata gone the message does not fit. budget 0 means no limit.
func Fit(msg *amqp.Publishing, budget int) (trimmed bool, err error) {
	if budget <= 0 {
		return false, nil
	}
	if err := CheckSize(msg, budget); err == nil || msg.Headers == nil {
		return false, err
	}
	h := msg.Headers
	var size int
	cut := func(key string) {
		if _, ok := h[key]; ok {
			delete(h, key)
			trimmed = true
		}
	}
	steps := []func() bool{
		func() bool { cut(warren.HeaderStack); return true },
		func() bool { // the history, oldest first
			hist, ok := h[warren.HeaderHistory].([]any)
			if !ok || len(hist) == 0 {
				return true
			}
			h[warren.HeaderHistory] = hist[len(hist)/2+len(hist)%2:]
			if len(hist) == 1 {
				delete(h, warren.HeaderHistory)
			}
			trimmed = true
			return len(hist) <= 1
		},
	}
	for _, limit := range []int{1 << 10, 128} {
		steps = append(steps, func() bool {
			for _, key := range []string{warren.HeaderError, warren.HeaderLastError} {
				if s, ok := h[key].(string); ok && len(s) > limit {
					h[key] = Truncate(s, limit)
					trimmed = true
				}
			}
			return true
		})
	}
	for i := 0; i < len(steps); {
		done := steps[i]()
		if size = PropertiesSize(msg); size <= budget {
			return trimmed, nil
		}
		if done {
			i++
		}
	}
	return trimmed, oversized(size, budget)
}

// CheckSize returns ErrOversized, with the sizes, when msg's properties
// take more than budget bytes (see HeaderBudget); budget 0 means no limit.
// Unlike Fit it changes nothing.
func CheckSize(msg *amqp.Publishing, budget int) error {
	if size := PropertiesSize(msg); budget > 0 && size > budget {
		return oversized(size, budget)
	}
	return nil
}

// oversized is the ErrOversized of a message of size against budget.
func oversized(size, budget int) error {
	return fmt.Errorf("%w: its properties and headers take %d bytes, more than the %d this broker's frame size leaves", ErrOversized, size, budget)
}

// CheckHeaders reports headers that a client like amqp091-go could not
// read back: tables or arrays nested more than MaxHeaderDepth deep or
// holding more than MaxHeaderEntries entries. RabbitMQ accepts them, so
// Warren refuses them before it publishes.
func CheckHeaders(h amqp.Table) error {
	return checkTable(h, 0)
}

func checkTable(t amqp.Table, depth int) error {
	if depth > MaxHeaderDepth {
		return fmt.Errorf("%w: headers nested more than %d deep", ErrUnreadableHeaders, MaxHeaderDepth)
	}
	if len(t) > MaxHeaderEntries {
		return fmt.Errorf("%w: a header table holds %d entries, more than %d", ErrUnreadableHeaders, len(t), MaxHeaderEntries)
	}
	for _, v := range t {
		if err := checkValue(v, depth); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(v any, depth int) error {
	switch v := v.(type) {
	case amqp.Table:
		return checkTable(v, depth+1)
	case map[string]any:
		return checkTable(v, depth+1)
	case []any:
		if depth+1 > MaxHeaderDepth {
			return fmt.Errorf("%w: headers nested more than %d deep", ErrUnreadableHeaders, MaxHeaderDepth)
		}
		if len(v) > MaxHeaderEntries {
			return fmt.Errorf("%w: a header array holds %d elements, more than %d", ErrUnreadableHeaders, len(v), MaxHeaderEntries)
		}
		for _, e := range v {
			if err := checkValue(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// ErrUnreadableHeaders is returned for headers that Warren's client (and
// others) could not read back once published: see CheckHeaders.
var ErrUnreadableHeaders = errors.New("broker: headers this client could not read back")
