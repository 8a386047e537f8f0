//go:build integration

package testbroker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// TestDeleteQueueAfterTheTestClosedItsConnection: the cleanup Queue
// registers deletes the queue and its dead-letter queue even when the test
// has closed its own connection by then.
func TestDeleteQueueAfterTheTestClosedItsConnection(t *testing.T) {
	ctx := testbroker.Context(t, time.Minute)
	c := testbroker.Dial(t)
	var q string
	t.Run("user", func(t *testing.T) {
		q = testbroker.Queue(t, c) // deleted when this subtest ends
		if err := broker.Declare(ctx, c, broker.QueueOptions{}, q); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	})
	check := testbroker.Dial(t)
	for _, name := range []string{q, warren.DeadLetterQueue(q)} {
		if _, err := broker.Inspect(ctx, check, name); !errors.Is(err, broker.ErrQueueNotFound) {
			t.Errorf("%s after the cleanup: %v, want ErrQueueNotFound", name, err)
		}
	}
}
