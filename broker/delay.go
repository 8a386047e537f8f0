package broker

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// DelayLevels is the number of binary delay levels. Level k holds messages
// for 2^k seconds, so the longest delay is 2^DelayLevels - 1 seconds
// (about 194 days).
const DelayLevels = 24

// MaxDelay is the longest delay the levels can express.
const MaxDelay = time.Duration(1<<DelayLevels-1) * time.Second

// Names of the shared topology.
const (
	// DelayPrefix names each level's exchange and queue: warren.delay.<k>.
	DelayPrefix = "warren.delay."
	// DeliveryExchange is the topic exchange the last level dead-letters
	// into; every Warren queue is bound to it by its own name.
	DeliveryExchange = "warren.delivery"
	// UnroutableExchange is the delivery exchange's alternate exchange, and
	// UnroutableQueue keeps what reaches it: delayed messages whose queue was
	// deleted while they waited. Nothing is dropped silently.
	UnroutableExchange = "warren.unroutable"
	UnroutableQueue    = "warren.unroutable"
)

// DelayExchange returns the name of level k's exchange (and queue).
func DelayExchange(k int) string { return DelayPrefix + strconv.Itoa(k) }

// DelaySeconds rounds d to whole seconds, the unit of the delay levels:
// to the nearest second, so a task arrives within half a second of its
// due time plus the broker's expiry latency.
func DelaySeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second/2) / time.Second)
}

// DelayRoute returns where to publish a message for queue that must wait d.
// A delay that rounds to 0 seconds goes straight to the queue through the
// default exchange. Longer delays enter the highest level's exchange with a
// routing key of DelayLevels binary digits (most significant first) then
// the queue name, e.g. "0.0.[...].1.0.1.emails" for 5 s.
func DelayRoute(queue string, d time.Duration) (exchange, key string, err error) {
	if d > MaxDelay {
		return "", "", fmt.Errorf("broker: delay %s exceeds the maximum of %s", d, MaxDelay)
	}
	secs := DelaySeconds(d)
	if secs == 0 {
		return "", queue, nil
	}
	var b strings.Builder
	b.Grow(2*DelayLevels + len(queue))
	for k := DelayLevels - 1; k >= 0; k-- {
		if secs&(1<<k) != 0 {
			b.WriteString("1.")
		} else {
			b.WriteString("0.")
		}
	}
	b.WriteString(queue)
	// Enter at the highest level whose bit is set: the levels above would
	// only pass the message down through their 0-bindings.
	return DelayExchange(bits.Len64(uint64(secs)) - 1), b.String(), nil
}

// levelPattern returns the binding pattern that matches bit value v at
// level k: the word at position DelayLevels-1-k.
func levelPattern(k int, v byte) string {
	return strings.Repeat("*.", DelayLevels-1-k) + string(v) + ".#"
}

// deliveryPattern is the binding key of queue on DeliveryExchange: exactly
// DelayLevels bit words, then the queue's own words.
func deliveryPattern(queue string) string {
	return strings.Repeat("*.", DelayLevels) + queue
}
