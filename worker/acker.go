package worker

import (
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// batchAcker is the amqp.Acknowledger of one consumer channel's
// deliveries. It settles them on the channel from one goroutine, acking
// with multiple=true up to the highest tag below which every delivery is
// settled: one frame for many tasks. Quorum queues drain far faster so.
//
// Ack and Nack return before the frame is sent. A delivery whose ack is
// still queued when its channel dies is delivered again: at-least-once.
type batchAcker struct {
	ch      *amqp.Channel
	reqs    chan ackReq
	every   int
	closing chan struct{}
	done    chan struct{}
	once    sync.Once
	settled atomic.Int64 // deliveries acked or nacked
}

type ackReq struct {
	tag     uint64
	ack     bool
	requeue bool
	reject  bool // basic.reject rather than basic.nack
}

// ackFlushInterval bounds how long a settled delivery waits for its
// batch's ack frame.
const ackFlushInterval = 5 * time.Millisecond

func newBatchAcker(ch *amqp.Channel, prefetch int) *batchAcker {
	a := &batchAcker{
		ch:      ch,
		reqs:    make(chan ackReq, max(prefetch, 1)),
		every:   max(1, prefetch/10),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	go a.loop()
	return a
}

func (a *batchAcker) settle(r ackReq) error {
	select {
	case <-a.closing:
		return amqp.ErrClosed
	default:
	}
	select {
	case a.reqs <- r:
		a.settled.Add(1)
		return nil
	case <-a.closing:
		return amqp.ErrClosed
	}
}

// Ack settles tag positively; multiple is ignored (each delivery is acked
// on its own by the pool).
func (a *batchAcker) Ack(tag uint64, _ bool) error { return a.settle(ackReq{tag: tag, ack: true}) }

// Nack settles tag negatively at once.
func (a *batchAcker) Nack(tag uint64, _ bool, requeue bool) error {
	return a.settle(ackReq{tag: tag, requeue: requeue})
}

// Reject settles tag negatively at once with basic.reject: RabbitMQ 4.3
// and later count a requeued reject toward a quorum queue's delivery
// limit, and a requeued nack not.
func (a *batchAcker) Reject(tag uint64, requeue bool) error {
	return a.settle(ackReq{tag: tag, requeue: requeue, reject: true})
}

// close sends what is settled and stops. Call it before closing the
// channel, once no handler settles any more.
func (a *batchAcker) close() {
	a.once.Do(func() { close(a.closing) })
	<-a.done
}

func (a *batchAcker) loop() {
	defer close(a.done)
	next := uint64(1)            // lowest tag not yet settled
	settled := map[uint64]bool{} // settled tags above next: true = still to ack
	var high uint64              // highest tag of the contiguous run to ack
	pending := 0                 // acks in that run not sent yet
	flush := func() {
		if pending > 0 {
			_ = a.ch.Ack(high, true)
			pending = 0
		}
	}
	apply := func(r ackReq) {
		if r.ack {
			settled[r.tag] = true
		} else {
			if r.reject {
				_ = a.ch.Reject(r.tag, r.requeue)
			} else {
				_ = a.ch.Nack(r.tag, false, r.requeue)
			}
			settled[r.tag] = false
		}
		for {
			ack, ok := settled[next]
			if !ok {
				break
			}
			delete(settled, next)
			if ack {
				high = next
				pending++
			}
			next++
		}
		if pending >= a.every {
			flush()
		}
	}
	tick := time.NewTicker(ackFlushInterval)
	defer tick.Stop()
	stuck := 0
	for {
		select {
		case r := <-a.reqs:
			apply(r)
		case <-a.closing:
			for {
				select {
				case r := <-a.reqs:
					apply(r)
					continue
				default:
				}
				break
			}
			flush()
			for tag, ack := range settled {
				if ack {
					_ = a.ch.Ack(tag, false)
				}
			}
			return
		case <-tick.C:
			flush()
			if len(settled) == 0 {
				stuck = 0
				continue
			}
			// Acks held behind a long-running task: after a while send
			// them one by one, so they do not hold the prefetch window.
			if stuck++; stuck >= 10 {
				for tag, ack := range settled {
					if ack {
						_ = a.ch.Ack(tag, false)
						settled[tag] = false
					}
				}
				stuck = 0
			}
		}
	}
}
