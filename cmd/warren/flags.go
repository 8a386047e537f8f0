package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// queueFlags are the options a queue is declared with. Every producer and
// worker of a queue must use the same ones.
type queueFlags struct {
	queueType     string
	deliveryLimit int
}

func (q *queueFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&q.queueType, "queue-type", string(broker.Quorum), "queue `type` when declaring: quorum or classic")
	fs.IntVar(&q.deliveryLimit, "delivery-limit", broker.DefaultDeliveryLimit,
		"quorum queues: deliveries to workers that die holding a task before the broker dead-letters it")
}

func (q *queueFlags) options() (broker.QueueOptions, error) {
	o := broker.QueueOptions{Type: broker.QueueType(q.queueType), DeliveryLimit: q.deliveryLimit}
	if q.deliveryLimit <= 0 {
		return o, usagef("--delivery-limit must be positive (got %d)", q.deliveryLimit)
	}
	if o.Type != broker.Quorum && o.Type != broker.Classic {
		return o, usagef("--queue-type %q: want quorum or classic", q.queueType)
	}
	return o, usage(o.Validate())
}

// checkQueues validates queue names before anything touches the broker.
func checkQueues(queues []string) error {
	seen := map[string]bool{}
	for _, q := range queues {
		if err := warren.ValidateQueueName(q); err != nil {
			return usage(err)
		}
		if seen[q] {
			return usagef("queue %q given twice", q)
		}
		seen[q] = true
	}
	return nil
}

func nonNegative(name string, n int) error {
	if n < 0 {
		return usagef("--%s cannot be negative (got %d)", name, n)
	}
	return nil
}

func positive(name string, n int) error {
	if n <= 0 {
		return usagef("--%s must be positive (got %d)", name, n)
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// oneOf refuses a --name value that is not one of allowed.
func oneOf(name, value string, allowed ...string) error {
	if slices.Contains(allowed, value) {
		return nil
	}
	want := allowed[0]
	if n := len(allowed); n > 1 {
		want = strings.Join(allowed[:n-1], ", ") + " or " + allowed[n-1]
	}
	return usagef("--%s %q: want %s", name, value, want)
}
