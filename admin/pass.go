package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// settleBatch caps the acks (or returns) a pass issues before it makes sure
// the broker has applied them.
//
// RabbitMQ 3.10's quorum-queue client (rabbit_fifo_client, inside the
// broker's channel process) keeps at most 32 commands in flight per queue.
// Past that soft limit it stashes acks and returns and sends them later in
// one batch. Measured on this broker, that has two effects a pass must
// avoid: a batch of returns goes back to the queue in a scrambled order,
// and a channel closed while acks are stashed loses them (5,000 acks sent
// back to back, then channel.close: 2,314 acked messages were back in the
// queue). Staying well under the limit, with a barrier after each batch,
// keeps acks final and returns in order.
const settleBatch = 16

// returnTimeout bounds the wait for one batch of returned dead letters to
// show in the queue; past it, a pass gives up on keeping the order and
// lets the broker requeue the rest when the channel closes.
const returnTimeout = 10 * time.Second

// pass is one walk over a dead-letter queue, under its lock.
//
// It reads with basic.get without auto-ack on a channel of its own, at most
// as many messages as the queue held when it began, so that dead letters
// arriving meanwhile do not keep it going. What it reads stays on the
// broker, unacked, until the pass acks it (purge, replay) or returns it.
// If the process dies, the broker requeues everything held: a pass can be
// interrupted anywhere without losing a dead letter.
type pass struct {
	a     *Admin
	queue string // the Warren queue
	dlq   string
	ch    *amqp.Channel

	count    int      // messages ready when the pass began: it reads these and no more
	taken    int      // messages read so far
	scanning bool     // next still hands out dead letters; once false, reads are only held
	held     []uint64 // delivery tags read and neither acked nor returned
	unsynced int      // acks issued since the last barrier
	unlock   func()
}

// begin locks queue's dead-letter queue and opens a pass over it.
func (a *Admin) begin(ctx context.Context, queue string) (*pass, error) {
	if err := checkQueue(queue); err != nil {
		return nil, err
	}
	dlq := warren.DeadLetterQueue(queue)
	unlock, err := a.lock(ctx, dlq)
	if err != nil {
		return nil, err
	}
	st, err := broker.Inspect(ctx, a.conn, dlq)
	if err != nil {
		unlock()
		if errors.Is(err, broker.ErrQueueNotFound) {
			return nil, fmt.Errorf("admin: dead-letter queue %s does not exist (is %q a Warren queue?): %w", dlq, queue, err)
		}
		return nil, fmt.Errorf("admin: %w", err)
	}
	if st.Consumers > 0 {
		a.log.Warn("admin: the dead-letter queue has consumers; they may take dead letters while this operation runs",
			"queue", queue, "consumers", st.Consumers)
	}
	ch, err := a.conn.Channel()
	if err != nil {
		unlock()
		return nil, fmt.Errorf("admin: %w", err)
	}
	return &pass{a: a, queue: queue, dlq: dlq, ch: ch, count: st.Ready, scanning: true, unlock: unlock}, nil
}

// next reads the next dead letter of the scan. It reports false once the
// scan has read as many as the queue held at the start, or found it empty,
// or was stopped. Every read is a barrier (see barrier).
func (p *pass) next(ctx context.Context) (amqp.Delivery, bool, error) {
	if !p.scanning || p.taken >= p.count {
		p.scanning = false
		return amqp.Delivery{}, false, nil
	}
	if err := ctx.Err(); err != nil {
		return amqp.Delivery{}, false, err
	}
	d, ok, err := p.get()
	if err != nil || !ok {
		p.scanning = false
		return d, false, err
	}
	return d, true, nil
}

// stop ends the scan: from now on every read is only held, and acks put
// in their own barriers.
func (p *pass) stop() { p.scanning = false }

// get reads one message; an empty queue ends the pass's reading.
func (p *pass) get() (amqp.Delivery, bool, error) {
	d, ok, err := p.ch.Get(p.dlq, false)
	if err != nil {
		return d, false, fmt.Errorf("admin: read %s: %w", p.dlq, err)
	}
	p.unsynced = 0
	if !ok {
		p.count = p.taken
		return d, false, nil
	}
	p.taken++
	return d, true, nil
}

// hold keeps a read dead letter where it is: it goes back to the queue,
// in its place, when the pass ends.
func (p *pass) hold(tag uint64) { p.held = append(p.held, tag) }

// canAck reports whether an ack may be issued without a barrier first.
func (p *pass) canAck() bool { return p.unsynced < settleBatch }

// ack removes a read dead letter from the queue for good. During the scan
// the caller keeps within canAck; after it, ack puts in a barrier itself.
func (p *pass) ack(tag uint64) error {
	if !p.canAck() {
		if p.scanning {
			return errors.New("admin: internal error: too many acks between two reads")
		}
		if err := p.barrier(); err != nil {
			return err
		}
	}
	if err := p.ch.Ack(tag, false); err != nil {
		return fmt.Errorf("admin: ack on %s: %w", p.dlq, err)
	}
	p.unsynced++
	return nil
}

// barrier returns once the broker has applied every ack issued so far. A
// basic.get on a quorum queue is a synchronous command of the queue's Raft
// log, applied after the acks the channel sent before it; with fewer than
// the client's soft limit in flight, none was stashed. The scan is over by
// then: a message the barrier reads is held, to go back in its place.
func (p *pass) barrier() error {
	d, ok, err := p.get()
	if err != nil {
		return err
	}
	if ok {
		p.hold(d.DeliveryTag)
	}
	return nil
}

// end makes the pass's acks final, puts the dead letters it did not remove
// back in their order, closes the channel and releases the lock.
//
// If it cannot confirm that the broker applied the last acks (the channel
// or connection died), it reports how many acks are in doubt: those dead
// letters may still be in the queue.
//
// Keeping the order takes work on RabbitMQ 3.10's quorum queues, because a
// returned message goes to the back of the queue, not back to its place.
// So a pass that stopped early reads the rest of what the queue held when
// it began, and end hands every held dead letter back in the order read,
// which rotates the queue once, all the way round, to where it was. Dead
// letters that arrived during the pass are then ahead of the old ones;
// end reads those and hands them back too, behind. The returns go
// settleBatch at a time, each batch once the queue shows the one before
// (see settleBatch).
//
// If ctx has ended, or a batch does not show within returnTimeout, end
// closes the channel at once: the broker then requeues whatever is still
// held, safely, but in an order of its own.
func (p *pass) end(ctx context.Context) (inDoubt int, err error) {
	defer p.unlock()
	p.stop()
	if p.unsynced > 0 {
		if berr := p.barrier(); berr != nil {
			inDoubt = p.unsynced
			err = fmt.Errorf("admin: %s: could not confirm that the broker applied the last %d acks: %w", p.dlq, inDoubt, berr)
		}
	}
	if err == nil {
		if oerr := p.restoreOrder(ctx); errors.Is(oerr, context.Canceled) || errors.Is(oerr, context.DeadlineExceeded) {
			p.a.log.Info("admin: interrupted: the broker requeues the dead letters still held, in an order of its own",
				"queue", p.queue, "held", len(p.held))
		} else if oerr != nil {
			p.a.log.Warn("admin: the broker requeues the dead letters still held; their order may change",
				"queue", p.queue, "held", len(p.held), "err", oerr)
		}
	}
	if cerr := p.ch.Close(); cerr != nil && !errors.Is(cerr, amqp.ErrClosed) && err == nil {
		err = fmt.Errorf("admin: close channel on %s: %w", p.dlq, cerr)
	}
	return inDoubt, err
}

// restoreOrder reads the rest of the pass, returns every held dead letter
// in order, then moves the dead letters that arrived meanwhile behind them.
func (p *pass) restoreOrder(ctx context.Context) error {
	for p.taken < p.count {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, ok, err := p.get()
		if err != nil {
			return err
		}
		if ok {
			p.hold(d.DeliveryTag)
		}
	}
	if len(p.held) == 0 {
		return nil
	}
	info, err := p.a.conn.Channel()
	if err != nil {
		return err
	}
	defer info.Close()
	arrived, err := readyCount(info, p.dlq)
	if err != nil {
		return err
	}
	slices.Sort(p.held) // delivery tags grow in the order of reading
	if err := p.giveBack(ctx, info, arrived); err != nil {
		return err
	}
	// The queue is now: arrivals, then the held dead letters in order.
	// Move the arrivals behind them.
	for range arrived {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, ok, err := p.get()
		if err != nil {
			return err
		}
		if !ok {
			break // taken meanwhile: nothing left to move
		}
		p.hold(d.DeliveryTag)
	}
	if len(p.held) == 0 {
		return nil
	}
	base, err := readyCount(info, p.dlq)
	if err != nil {
		return err
	}
	return p.giveBack(ctx, info, base)
}

// giveBack nacks the held dead letters with requeue, in order, keeping
// fewer than the quorum client's soft limit in flight: after each batch it
// waits until the queue, which held base ready messages, shows it.
func (p *pass) giveBack(ctx context.Context, info *amqp.Channel, base int) error {
	returned := 0
	for len(p.held) > 0 {
		n := min(settleBatch, len(p.held))
		for _, tag := range p.held[:n] {
			if err := p.ch.Nack(tag, false, true); err != nil {
				return fmt.Errorf("admin: return a dead letter to %s: %w", p.dlq, err)
			}
		}
		p.held = p.held[n:]
		returned += n
		if err := waitReady(ctx, info, p.dlq, base+returned); err != nil {
			return err
		}
	}
	return nil
}

// readyCount returns the messages ready in queue, by a passive declare.
func readyCount(ch *amqp.Channel, queue string) (int, error) {
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("admin: inspect %s: %w", queue, err)
	}
	return q.Messages, nil
}

// waitReady polls until queue holds at least want ready messages. AMQP has
// no event for it; the first checks follow each other closely, since the
// broker applies a batch within milliseconds.
func waitReady(ctx context.Context, ch *amqp.Channel, queue string, want int) error {
	deadline := time.Now().Add(returnTimeout)
	delay := 100 * time.Microsecond
	for {
		n, err := readyCount(ch, queue)
		if err != nil {
			return err
		}
		if n >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("admin: %s shows %d ready messages after %s, want %d", queue, n, returnTimeout, want)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
}
