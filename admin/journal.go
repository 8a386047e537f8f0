package admin

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// journalSuffix ends the name of a dead-letter queue's replay journal.
const journalSuffix = ".replayed"

// JournalQueue returns the replay journal of Warren queue queue:
// "<queue>.dlq.replayed". Replay publishes each replayed task to its
// target queue and, in the same publish, to the journal (RabbitMQ's
// sender-selected distribution: the BCC header), so that a replay killed
// between the broker's confirm and the dead letter's ack can tell, the
// next time, which dead letters it had already replayed.
func JournalQueue(queue string) string { return warren.DeadLetterQueue(queue) + journalSuffix }

// bccHeader is RabbitMQ's sender-selected distribution header: the broker
// also routes the message, through the same exchange, to each routing key
// listed, atomically with the publish, and removes the header before
// storing the message.
const bccHeader = "BCC"

// journal is what a replay journal held when a replay began: for each
// task ID, the replay counts its entries carry.
type journal map[string][]int

// covers reports whether a dead letter of task id with replay count n was
// already replayed: an entry of id carries n+1. A task replayed, failed
// again and dead-lettered again carries n+1 itself, so it is not covered.
func (j journal) covers(id string, n int) bool {
	for _, c := range j[id] {
		if c == n+1 {
			return true
		}
	}
	return false
}

func (j journal) add(id string, n int) {
	for _, c := range j[id] {
		if c == n {
			return
		}
	}
	j[id] = append(j[id], n)
}

// declareJournal declares queue's replay journal: a durable quorum queue.
func (a *Inspector) declareJournal(ctx context.Context, queue string) error {
	name := JournalQueue(queue)
	if err := broker.DeclarePlain(ctx, a.conn, name, broker.DeclareOptions{}); err != nil {
		return fmt.Errorf("admin: declare journal %s: %w", name, err)
	}
	return nil
}

// readJournal reads queue's replay journal, handing every entry back. The
// caller holds the dead-letter queue's lock (replays, the only writers,
// hold it too). With declare false, a missing journal reads as empty.
func (a *Inspector) readJournal(ctx context.Context, queue string, declare bool) (journal, int, error) {
	j := make(journal)
	name := JournalQueue(queue)
	if declare {
		if err := a.declareJournal(ctx, queue); err != nil {
			return nil, 0, err
		}
	} else if _, err := broker.Inspect(ctx, a.conn, name); errors.Is(err, broker.ErrQueueNotFound) {
		return j, 0, nil
	} else if err != nil {
		return nil, 0, fmt.Errorf("admin: %w", err)
	}
	p, err := a.openPass(ctx, queue, name, func() {})
	if err != nil {
		return nil, 0, err
	}
	entries := 0
	_, readErr, finErr := p.walk(ctx, func(d *amqp.Delivery) error {
		n, _ := headerCount(d.Headers, warren.HeaderReplayCount)
		j.add(d.MessageId, n)
		entries++
		p.keep(d)
		return nil
	})
	if err := errors.Join(readErr, finErr); err != nil {
		return nil, 0, fmt.Errorf("admin: read the replay journal %s: %w", name, err)
	}
	return j, entries, nil
}

// dropJournal deletes queue's replay journal, once a completed replay has
// resolved every entry: no dead letter it refers to is left.
func (a *Inspector) dropJournal(ctx context.Context, queue string) error {
	name := JournalQueue(queue)
	if _, err := broker.DeleteQueue(ctx, a.conn, name, broker.DeleteOptions{}); err != nil {
		return fmt.Errorf("admin: delete journal %s: %w", name, err)
	}
	return nil
}
