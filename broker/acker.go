package broker

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// errSettleClosed is returned by a settle on a consumer whose channel is
// closed (or closing): the broker delivers the message again.
var errSettleClosed = fmt.Errorf("%w: the consumer's channel is closed; the broker delivers its unsettled messages again", ErrClosed)

// acker settles one consumer channel's deliveries from one goroutine. It
// acks with multiple=true up to the highest tag below which every
// delivery is settled: one frame for many deliveries. Quorum queues drain
// far faster so.
//
// A settle returns before its frame is sent. A delivery whose ack is
// still queued when its channel dies is delivered again: at-least-once.
type acker struct {
	ch      amqp.Acknowledger // the channel: *amqp.Channel, or a fake in tests
	reqs    chan ackReq
	every   int           // acks to gather before a multiple ack goes out
	flush   time.Duration // how long a settled ack may wait for its batch
	closing chan struct{}
	done    chan struct{}
	once    sync.Once
	settled atomic.Int64 // deliveries settled
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

// ackStuckTicks is how many flush intervals acks may wait behind an
// unsettled delivery before they are sent one by one.
const ackStuckTicks = 10

// newAcker settles on ch the deliveries of a channel with prefetch,
// flushing acks at least every flush (ackFlushInterval but in tests).
func newAcker(ch amqp.Acknowledger, prefetch int, flush time.Duration) *acker {
	a := &acker{
		ch:      ch,
		reqs:    make(chan ackReq, max(prefetch, 1)),
		every:   max(1, prefetch/10),
		flush:   flush,
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	go a.loop()
	return a
}

func (a *acker) settle(r ackReq) error {
	select {
	case <-a.closing:
		return errSettleClosed
	default:
	}
	select {
	case a.reqs <- r:
		a.settled.Add(1)
		return nil
	case <-a.closing:
		return errSettleClosed
	}
}

// close sends what is settled and stops. Call it before closing the
// channel; a settle after it returns errSettleClosed.
func (a *acker) close() {
	a.once.Do(func() { close(a.closing) })
	<-a.done
}

func (a *acker) loop() {
	defer close(a.done)
	next := uint64(1)            // lowest tag not yet settled
	settled := map[uint64]bool{} // settled tags above next: true = still to ack
	var high uint64              // highest tag of the contiguous run to ack
	pending := 0                 // acks in that run not sent yet
	send := func() {
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
			send()
		}
	}
	tick := time.NewTicker(a.flush)
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
			send()
			for tag, ack := range settled {
				if ack {
					_ = a.ch.Ack(tag, false)
				}
			}
			return
		case <-tick.C:
			send()
			if len(settled) == 0 {
				stuck = 0
				continue
			}
			// Acks held behind a delivery still unsettled (a long task,
			// or one held back): after a while send them one by one, so
			// they do not hold the prefetch window.
			if stuck++; stuck >= ackStuckTicks {
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
