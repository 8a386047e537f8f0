package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// settleBudget caps the acks and returns (nacks with requeue) a pass sends
// between two barriers: points where the broker has applied everything the
// pass sent before.
//
// RabbitMQ 3.10's quorum-queue client (rabbit_fifo_client, inside the
// broker's channel process) keeps at most 32 commands in flight per queue.
// Past that soft limit it stashes acks and returns and sends them later as
// one batch. Measured on this broker, that has two effects a pass must
// avoid: a batch of returns goes back to the queue in a scrambled order,
// and acks still stashed when the channel closes are lost (5,000 acks sent
// back to back, then channel.close: 2,314 acked messages were back in the
// queue). A multiple-ack does not help: for basic.get deliveries the
// broker settles each message with a command of its own. With fewer than
// 32 in flight nothing is stashed: every command reaches the queue, in
// order, before the channel's end does.
//
// The barriers: a basic.get, which on a quorum queue is a synchronous
// command of the queue's Raft log, applied after whatever the channel sent
// before it; and a returned message showing in the queue's ready count.
const settleBudget = 16

// readAhead is the prefetch window of a pass over a standard quorum
// dead-letter queue, which reads through a consumer (broker.Cursor) until
// the last messages it means to read. A consumer holds at most this many
// messages unsettled, so the acks and returns the broker has not applied
// stay within it, as they stay within settleBudget between two basic.get
// barriers: it cannot be larger than settleBudget.
const readAhead = settleBudget

// returnTimeout bounds the wait for a batch of returned dead letters to
// show in the queue.
const returnTimeout = 10 * time.Second

// confirmGrace bounds the wait for replay confirms still due once the
// operation's context has ended: each confirm that arrives lets the pass
// ack its dead letter, closing a window for a duplicate.
const confirmGrace = 30 * time.Second

// pass is one walk over a dead-letter queue, under its lock.
//
// A pass reads the dead letters the queue held when it began, once each,
// in order, without auto-ack: through a consumer with the prefetch window
// readAhead, the last ones with basic.get (broker.Cursor), or with
// basic.get only over a queue that is not a standard quorum dead-letter
// queue or holds few dead letters. Each is then kept (handed
// back with a nack and requeue) or removed (acked); a replayed one is
// removed only once the broker has confirmed its copy. RabbitMQ 3.10's
// quorum queues put a returned message at the back of the queue, so a pass
// that hands back everything it read, in order, turns the queue once, all
// the way round, and leaves it in its order. Whatever a pass holds stays on
// the broker, unacked: if the process dies, the broker requeues it. A pass
// can be interrupted anywhere without losing a dead letter; an interrupted
// pass leaves the queue turned part of the way.
//
// A pass hands dead letters back as it goes, so it holds few at a time:
// basic.get on a quorum queue slows down as the messages one channel
// holds unacked grow (measured here: about 1,500/s with a few thousand
// held, under 200/s past 12,000, about 50/s near 100,000).
//
// Dead letters that arrive during a pass are queued among the ones handed
// back so far, in their own order.
//
// A dead-letter queue that is not a standard Warren quorum queue (declared
// with other arguments, or classic: a classic queue puts a returned
// message back in its place, where the next read would find it again) is
// read holding every kept dead letter until the end, which is exact but
// slow for large queues.
type pass struct {
	a     *Inspector
	queue string // the Warren queue
	dlq   string
	cur   *broker.Cursor // reads, settles and counts

	count  int  // messages ready when the pass began: it reads these and no more
	read   int  // messages read so far
	rotate bool // a standard quorum DLQ: hand back as the pass goes

	items   []*item  // read and not settled yet, in read order
	kept    []uint64 // !rotate: delivery tags to hand back at the end
	budget  int      // commands the pass may send before the next barrier
	unsure  int      // acks sent since the last barrier
	ready0  int      // messages ready at the last read
	since   int      // returns sent since the last read
	broken  error    // the channel failed: no more reads or settles
	blind   bool     // read through the consumer since the last barrier: ready0 unknown
	damaged bool     // a dead letter had to be moved out of its place
	// damage says how the pass stood when it had to: for the warning.
	damage []any
	unlock func()

	// beforeWait, if set, runs before the pass blocks on the gates of the
	// items it holds: an export flushes its output there, so that its
	// gates open.
	beforeWait func()
	// atEnd, if set, runs once walk has read its last dead letter, before
	// the pass settles what it holds.
	atEnd func()
}

// gate is what a pass waits for before it removes a dead letter: the
// broker's confirm of a replayed copy (*broker.Pending), or an export's
// flush of the records written. Done is closed once Wait's answer is
// known; nil means remove, an error keep.
type gate interface {
	Done() <-chan struct{}
	Wait(ctx context.Context) error
}

// item is a dead letter read by a pass and not settled yet.
type item struct {
	tag    uint64
	remove bool
	// pd is the gate of the item (a replayed copy awaiting its confirm,
	// an exported record awaiting its flush): the item is removed if it
	// opens without an error and kept otherwise; resolved is told which.
	pd       gate
	resolved func(err error)
	// acked, if set, is called once the ack is sent.
	acked func()
}

// beginMatching is begin for a pass that selects dead letters by f.
func (a *Inspector) beginMatching(ctx context.Context, queue string, f Filter) (*pass, *matcher, error) {
	m, err := newMatcher(f)
	if err != nil {
		return nil, nil, err
	}
	p, err := a.begin(ctx, queue)
	return p, m, err
}

// begin locks queue's dead-letter queue and opens a pass over it.
func (a *Inspector) begin(ctx context.Context, queue string) (*pass, error) {
	if err := checkQueue(queue); err != nil {
		return nil, err
	}
	dlq := warren.DeadLetterQueue(queue)
	unlock, err := a.lock(ctx, dlq)
	if err != nil {
		return nil, err
	}
	return a.openPass(ctx, queue, dlq, unlock)
}

// openPass opens a pass over the quorum queue name (queue's dead-letter
// queue, or its replay journal) for a caller holding the lock; unlock is
// called when the pass closes.
func (a *Inspector) openPass(ctx context.Context, queue, name string, unlock func()) (*pass, error) {
	p := &pass{a: a, queue: queue, dlq: name, unlock: unlock}
	if err := p.open(ctx); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *pass) open(ctx context.Context) error {
	st, err := broker.Inspect(ctx, p.a.conn, p.dlq)
	if err != nil {
		if errors.Is(err, broker.ErrQueueNotFound) {
			return fmt.Errorf("admin: dead-letter queue %s does not exist (is %q a Warren queue?): %w", p.dlq, p.queue, err)
		}
		return fmt.Errorf("admin: %w", err)
	}
	if st.Consumers > 0 {
		// Often a pass that just ended: the broker drops its consumer a
		// moment after its channel closes.
		p.a.log.Info("admin: the dead-letter queue has consumers; other consumers would take dead letters while this operation runs",
			"queue", p.queue, "consumers", st.Consumers)
	}
	p.count = st.Ready
	p.rotate = p.standard(ctx)
	if !p.rotate {
		p.a.log.Info("admin: not a standard Warren dead-letter queue; holding what it keeps until the end",
			"queue", p.queue, "dead_letters", p.count)
	}
	o := broker.CursorOptions{}
	if p.rotate {
		o = broker.CursorOptions{Prefetch: readAhead, Reads: p.count}
	}
	if p.cur, err = broker.OpenCursor(ctx, p.a.conn, p.dlq, o); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}

// standard reports whether the dead-letter queue is a quorum queue as
// broker.DeclareQueue declares it: redeclaring it with the same arguments
// succeeds, and changes nothing. Any other answer means "not known to be".
func (p *pass) standard(ctx context.Context) bool {
	return broker.DeclarePlain(ctx, p.a.conn, p.dlq, broker.DeclareOptions{}) == nil
}

// next reads the next dead letter of the pass, or reports false once it
// has read all the queue held when it began (or found it empty). The
// caller then settles it with keep, remove or await.
func (p *pass) next(ctx context.Context) (amqp.Delivery, bool, error) {
	if p.broken != nil {
		return amqp.Delivery{}, false, p.broken
	}
	if p.read >= p.count {
		return amqp.Delivery{}, false, nil
	}
	if err := ctx.Err(); err != nil {
		return amqp.Delivery{}, false, err
	}
	// Near the end, the reads left must leave room for every item still
	// to settle: each read brings one more item and settleBudget more
	// room. Waiting for the confirms due makes every item settleable.
	if left := p.count - p.read; len(p.items) >= (settleBudget-1)*(left-1) {
		p.resolveAll(ctx)
		p.progress()
	}
	// A consumer whose whole window the pass holds delivers no more:
	// wait for the first gate (a confirm, a flush), which lets the pass
	// settle at least one.
	for p.cur.Consuming() && len(p.items) >= readAhead && p.broken == nil {
		if ctx.Err() != nil || !p.resolveFirst(ctx) {
			p.resolveAll(ctx)
			p.progress()
			break
		}
		p.progress()
	}
	d, ok, err := p.get(ctx)
	if err != nil || !ok {
		return d, false, err
	}
	return d, true, nil
}

// walk is the one read loop of every pass: it reads the dead letters in
// order and hands each to visit, which settles it (keep, remove or await)
// and may report progress; an error from visit stops the reading. Then
// walk runs atEnd, if set, finishes the pass (settling what it holds, in
// order, even after an error) and returns the reading's error and the
// finishing's, the latter nil when it is the same error.
func (p *pass) walk(ctx context.Context, visit func(d *amqp.Delivery) error) (inDoubt int, readErr, finErr error) {
	for readErr == nil {
		d, ok, err := p.next(ctx)
		if err != nil {
			readErr = err
			break
		}
		if !ok {
			break
		}
		readErr = visit(&d)
	}
	if p.atEnd != nil {
		p.atEnd()
	}
	inDoubt, finErr = p.finish(ctx)
	if errors.Is(readErr, finErr) {
		finErr = nil
	}
	return inDoubt, readErr, finErr
}

// get reads one message. Read with basic.get, it is a barrier. Delivered
// by the running consumer, it renews the budget only: the consumer's
// window bounds the settles the broker has not applied (broker.Cursor).
// An empty queue ends the reading.
func (p *pass) get(ctx context.Context) (amqp.Delivery, bool, error) {
	d, how, err := p.cur.Next(ctx)
	if err != nil {
		p.broken = fmt.Errorf("admin: %w", err)
		return d, false, p.broken
	}
	switch how {
	case broker.ReadEmpty, broker.ReadGet:
		p.budget, p.unsure, p.since, p.ready0, p.blind = settleBudget, 0, 0, int(d.MessageCount), false
	case broker.ReadConsumed:
		p.budget, p.blind = settleBudget, true
	default:
		p.blind = true
	}
	if how == broker.ReadEmpty {
		p.count = p.read
		return d, false, nil
	}
	p.read++
	return d, true, nil
}

// keep hands d back to the queue, in its place in the order.
func (p *pass) keep(d *amqp.Delivery) { p.add(&item{tag: d.DeliveryTag}) }

// remove acks d: it leaves the queue for good. acked, if not nil, is
// called once the ack is sent (in read order).
func (p *pass) remove(d *amqp.Delivery, acked func()) {
	p.add(&item{tag: d.DeliveryTag, remove: true, acked: acked})
}

// await removes d once pd opens without an error (a confirm, a flush),
// and keeps it otherwise; resolved is told the outcome, in read order.
func (p *pass) await(d *amqp.Delivery, pd gate, resolved func(error)) {
	p.add(&item{tag: d.DeliveryTag, pd: pd, resolved: resolved})
}

// add queues an item. Items are settled up to settleBudget at a time, so
// that the broker can commit each batch together.
func (p *pass) add(it *item) {
	p.items = append(p.items, it)
	if len(p.items) >= settleBudget {
		p.progress()
	}
}

// progress settles the items it can, in order, within the budget: it
// stops at the first replay whose confirm is still due.
func (p *pass) progress() {
	for len(p.items) > 0 && p.broken == nil {
		it := p.items[0]
		if it.pd != nil {
			select {
			case <-it.pd.Done():
				p.resolve(it, it.pd.Wait(context.Background())) // done: returns at once
			default:
				return
			}
		}
		if !it.remove && !p.rotate {
			p.kept = append(p.kept, it.tag)
			p.items = p.items[1:]
			continue
		}
		if p.budget == 0 {
			return
		}
		var err error
		if it.remove {
			err = p.cur.Ack(it.tag)
			p.unsure++
		} else {
			err = p.cur.Return(it.tag)
			p.since++
		}
		if err != nil {
			p.broken = fmt.Errorf("admin: settle a dead letter of %s: %w", p.dlq, err)
			return
		}
		if it.remove && it.acked != nil {
			it.acked()
		}
		p.budget--
		p.items = p.items[1:]
	}
}

func (p *pass) resolve(it *item, err error) {
	it.remove = err == nil
	it.pd = nil
	if it.resolved != nil {
		it.resolved(err)
	}
}

// resolveFirst waits for the gate of the first item the pass holds,
// unless ctx ends first; it reports false if that item has no gate or ctx
// ended.
func (p *pass) resolveFirst(ctx context.Context) bool {
	it := p.items[0]
	if it.pd == nil {
		return false
	}
	select {
	case <-it.pd.Done():
	default:
		if p.beforeWait != nil {
			p.beforeWait()
		}
	}
	err := it.pd.Wait(ctx)
	if err != nil && ctx.Err() != nil {
		return false
	}
	p.resolve(it, err)
	return true
}

// resolveAll waits for every confirm still due: until ctx ends, then for
// up to confirmGrace more. A confirm that does not come keeps its dead
// letter (the copy may or may not be stored).
func (p *pass) resolveAll(ctx context.Context) {
	if p.beforeWait != nil {
		p.beforeWait()
	}
	var grace context.Context
	for _, it := range p.items {
		if it.pd == nil {
			continue
		}
		err := it.pd.Wait(ctx)
		if err != nil && ctx.Err() != nil {
			if grace == nil {
				var cancel context.CancelFunc
				grace, cancel = context.WithTimeout(context.WithoutCancel(ctx), confirmGrace)
				defer cancel()
			}
			err = it.pd.Wait(grace)
		}
		p.resolve(it, err)
	}
}

// finish settles what the pass still holds, closes it and releases the
// lock. It runs even if ctx has ended (then it stops reading new dead
// letters, but settles, in order, what it has read, reading on only as
// far as it needs barriers). inDoubt counts the acks the broker may not
// have applied if the channel failed: those dead letters may still be in
// the queue.
func (p *pass) finish(ctx context.Context) (inDoubt int, err error) {
	defer p.close()
	if p.broken == nil {
		err = p.settleAll(ctx)
	}
	if p.broken != nil {
		return p.unsure, p.broken
	}
	if cerr := p.cur.Close(); cerr != nil {
		return p.unsure, fmt.Errorf("admin: %w", cerr)
	}
	if p.damaged {
		p.a.log.Warn("admin: a dead letter was moved out of its place in the queue", append([]any{"queue", p.queue}, p.damage...)...)
	}
	return 0, err
}

func (p *pass) settleAll(ctx context.Context) error {
	if err := p.cur.Stop(); err != nil {
		p.broken = fmt.Errorf("admin: %w", err)
		return p.broken
	}
	p.resolveAll(ctx)
	for {
		p.progress()
		if p.broken != nil {
			return p.broken
		}
		if len(p.items) == 0 && !p.blind {
			break
		}
		// Out of budget: a barrier. Reading on is one; past the end of the
		// pass, a read finds what arrived since, or this pass's own
		// returns (one of which then moves: not expected, since next
		// leaves room) or nothing, which is the cleanest barrier.
		past := p.read >= p.count
		before := []any{"read", p.read, "count", p.count, "blind", p.blind, "unsettled", len(p.items),
			"budget", p.budget, "since", p.since, "unsure", p.unsure}
		d, ok, err := p.get(context.WithoutCancel(ctx))
		if err != nil {
			return err
		}
		if ok {
			if past && !p.damaged {
				p.damaged, p.damage = true, before
			}
			p.keep(&d)
		}
	}
	if p.since > 0 {
		// The last returns must be in the queue before the lock goes:
		// the next pass counts what is ready when it begins.
		if err := p.waitReady(context.WithoutCancel(ctx), p.ready0+p.since); err != nil {
			p.a.log.Warn("admin: cannot follow the dead-letter queue", "queue", p.queue, "err", err)
		} else {
			p.unsure = 0
		}
	}
	return p.giveBack(ctx)
}

// giveBack hands back the dead letters a non-rotating pass kept, in order,
// at most the budget at a time, each batch once the queue shows the one
// before. If it cannot tell, it goes on without waiting: the dead letters
// are safe, their order is not.
func (p *pass) giveBack(ctx context.Context) error {
	if len(p.kept) == 0 {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	base, err := p.cur.Ready(ctx)
	follow := err == nil
	returned := 0
	for len(p.kept) > 0 {
		if p.budget == 0 {
			p.budget = settleBudget // unfollowed: hope, as the broker's close does
			if follow {
				if err := p.waitReady(ctx, base+returned); err != nil {
					p.a.log.Warn("admin: cannot follow the dead-letter queue; its order may change", "queue", p.queue, "err", err)
					follow = false
				} else {
					p.unsure = 0
				}
			}
		}
		if err := p.cur.Return(p.kept[0]); err != nil {
			p.broken = fmt.Errorf("admin: return a dead letter to %s: %w", p.dlq, err)
			return p.broken
		}
		p.kept = p.kept[1:]
		p.budget--
		returned++
	}
	if follow {
		// The last batch, once shown, makes the acks before it final too.
		if err := p.waitReady(ctx, base+returned); err != nil {
			p.a.log.Warn("admin: cannot follow the dead-letter queue", "queue", p.queue, "err", err)
		} else {
			p.unsure = 0
		}
	}
	return nil
}

func (p *pass) close() {
	if p.cur != nil {
		_ = p.cur.Close()
	}
	p.unlock()
}

// waitReady polls until the dead-letter queue holds at least want ready
// messages. AMQP has no event for it; the first checks follow each other
// closely, since the broker applies a batch within milliseconds.
func (p *pass) waitReady(ctx context.Context, want int) error {
	deadline := time.Now().Add(returnTimeout)
	delay := 100 * time.Microsecond
	for {
		n, err := p.cur.Ready(ctx)
		if err != nil {
			return err
		}
		if n >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("admin: %s shows %d ready messages after %s, want %d", p.dlq, n, returnTimeout, want)
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
