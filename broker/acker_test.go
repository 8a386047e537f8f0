package broker

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// frames is an amqp.Acknowledger that records the frames an acker sends,
// as "ack 5+" (multiple), "ack 5", "nack 5 requeue", "reject 5 requeue",
// "reject 5", and hands each over on a channel.
type frames chan string

func (f frames) Ack(tag uint64, multiple bool) error {
	if multiple {
		f <- fmt.Sprintf("ack %d+", tag)
	} else {
		f <- fmt.Sprintf("ack %d", tag)
	}
	return nil
}

func (f frames) Nack(tag uint64, multiple, requeue bool) error {
	f <- fmt.Sprintf("nack %d%s%s", tag, map[bool]string{true: "+"}[multiple], map[bool]string{true: " requeue"}[requeue])
	return nil
}

func (f frames) Reject(tag uint64, requeue bool) error {
	f <- fmt.Sprintf("reject %d%s", tag, map[bool]string{true: " requeue"}[requeue])
	return nil
}

// drain returns the frames sent so far.
func (f frames) drain() []string {
	var got []string
	for {
		select {
		case s := <-f:
			got = append(got, s)
		default:
			return got
		}
	}
}

// wait returns the next frame, failing after 5s.
func (f frames) wait(t *testing.T) string {
	t.Helper()
	select {
	case s := <-f:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no frame sent")
		return ""
	}
}

const never = time.Hour // a flush interval that does not fire in a test

func ack(t *testing.T, a *acker, tags ...uint64) {
	t.Helper()
	for _, tag := range tags {
		if err := a.settle(ackReq{tag: tag, ack: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAckerBatchesContiguousAcks: acks go out as one multiple ack once a
// tenth of the prefetch window is settled contiguously from the lowest
// unsettled tag, whatever order they were settled in; the rest on close.
// Without batching each ack is a frame; without the contiguity rule a
// multiple ack would settle a delivery still running.
func TestAckerBatchesContiguousAcks(t *testing.T) {
	f := make(frames, 100)
	a := newAcker(f, 100, never) // a batch every 10
	ack(t, a, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	ack(t, a, 1)
	if got := f.wait(t); got != "ack 10+" {
		t.Fatalf("first frame %q, want ack 10+", got)
	}
	ack(t, a, 11, 12, 13, 14, 15)
	a.close()
	if got := f.drain(); !slices.Equal(got, []string{"ack 15+"}) {
		t.Errorf("frames after the first batch %q, want [ack 15+]", got)
	}
	if n := a.settled.Load(); n != 15 {
		t.Errorf("settled = %d, want 15", n)
	}
}

// TestAckerSendsNegativeSettlementsAtOnce: nacks and rejects are sent as
// they come, each with its own requeue flag, and they fill the gaps that
// let a later multiple ack cover the run.
func TestAckerSendsNegativeSettlementsAtOnce(t *testing.T) {
	f := make(frames, 100)
	a := newAcker(f, 20, never) // a batch every 2
	ack(t, a, 1)
	for _, r := range []ackReq{
		{tag: 2, requeue: true},
		{tag: 3, requeue: true, reject: true},
		{tag: 4, reject: true},
	} {
		if err := a.settle(r); err != nil {
			t.Fatal(err)
		}
	}
	ack(t, a, 5)
	a.close()
	want := []string{"nack 2 requeue", "reject 3 requeue", "reject 4", "ack 5+"}
	if got := f.drain(); !slices.Equal(got, want) {
		t.Errorf("frames %q, want %q", got, want)
	}
}

// TestAckerCloseAcksStragglersOneByOne: on close, acks that no multiple
// ack can cover (a lower delivery is still unsettled, held) go out one by
// one, and the held delivery is left for the broker to requeue.
func TestAckerCloseAcksStragglersOneByOne(t *testing.T) {
	f := make(frames, 100)
	a := newAcker(f, 100, never)
	ack(t, a, 2, 3)
	a.close()
	got := f.drain()
	slices.Sort(got)
	if want := []string{"ack 2", "ack 3"}; !slices.Equal(got, want) {
		t.Errorf("frames %q, want %q", got, want)
	}
	if err := a.settle(ackReq{tag: 1, ack: true}); !errors.Is(err, ErrClosed) {
		t.Errorf("settle after close = %v, want ErrClosed", err)
	}
	if n := a.settled.Load(); n != 2 {
		t.Errorf("settled = %d, want 2 (a refused settle does not count)", n)
	}
	a.close() // a second close returns
}

// TestAckerUnsticksAcksBehindAHeldDelivery: while the lowest delivery is
// held unsettled (a long task, or one held back for later), the acks
// behind it go out one by one after ackStuckTicks flush intervals instead
// of holding the prefetch window until it is settled; once it is, its own
// ack goes out at the next flush.
func TestAckerUnsticksAcksBehindAHeldDelivery(t *testing.T) {
	f := make(frames, 100)
	a := newAcker(f, 100, time.Millisecond)
	defer a.close()
	ack(t, a, 2, 3)
	got := []string{f.wait(t), f.wait(t)}
	slices.Sort(got)
	if want := []string{"ack 2", "ack 3"}; !slices.Equal(got, want) {
		t.Fatalf("frames while 1 is held %q, want %q", got, want)
	}
	ack(t, a, 1)
	if got := f.wait(t); got != "ack 1+" {
		t.Errorf("frame once 1 is settled %q, want ack 1+", got)
	}
	ack(t, a, 4)
	if got := f.wait(t); got != "ack 4+" {
		t.Errorf("frame after 4 %q, want ack 4+ (2 and 3 must not be acked twice)", got)
	}
}

// TestConsumerSettlementFrames: each of Consumer's settle methods sends
// the frame its documentation names. A counted requeue that went out as
// basic.nack would not count toward the delivery limit on RabbitMQ 4.3
// (a task that can never move on would loop); an uncounted one sent as
// basic.reject would cost a task an attempt at every shutdown; a Reject
// that requeued would loop an unreadable message forever.
func TestConsumerSettlementFrames(t *testing.T) {
	f := make(frames, 100)
	c := &Consumer{acker: newAcker(f, 10, never)}
	if err := errors.Join(
		c.Requeue(1, RequeueOptions{Counted: true}),
		c.Requeue(2, RequeueOptions{}),
		c.Reject(3),
		c.Ack(4),
	); err != nil {
		t.Fatal(err)
	}
	c.acker.close()
	want := []string{"reject 1 requeue", "nack 2 requeue", "reject 3", "ack 4+"}
	if got := f.drain(); !slices.Equal(got, want) {
		t.Errorf("frames %q, want %q", got, want)
	}
	if n := c.Settled(); n != 4 {
		t.Errorf("Settled = %d, want 4", n)
	}
}
