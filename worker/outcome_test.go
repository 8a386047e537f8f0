package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// recordingSettler records how deliveries were settled, as "verb tag",
// and fails every settle with err when it is set.
type recordingSettler struct {
	calls []string
	err   error
}

func (r *recordingSettler) Ack(tag uint64) error {
	r.calls = append(r.calls, fmt.Sprint("ack ", tag))
	return r.err
}

func (r *recordingSettler) Reject(tag uint64) error {
	r.calls = append(r.calls, fmt.Sprint("reject ", tag))
	return r.err
}

func (r *recordingSettler) Requeue(tag uint64, o broker.RequeueOptions) error {
	if o.Counted {
		r.calls = append(r.calls, fmt.Sprint("requeue counted ", tag))
	} else {
		r.calls = append(r.calls, fmt.Sprint("requeue ", tag))
	}
	return r.err
}

// TestRequeueCountsFailuresOnly: a task handed back because its retry or
// dead letter could not be published is requeued counted (basic.reject:
// RabbitMQ 4.3 counts it toward the delivery limit); one handed back on
// shutdown is requeued uncounted (basic.nack: 4.3 does not count it).
func TestRequeueCountsFailuresOnly(t *testing.T) {
	p := &Pool{log: slog.New(slog.DiscardHandler)}
	task := &warren.Task{ID: "t1", Type: "x", Queue: "q"}
	for _, c := range []struct {
		o    broker.RequeueOptions
		want string
	}{{broker.RequeueOptions{Counted: true}, "requeue counted 7"}, {broker.RequeueOptions{}, "requeue 7"}} {
		rec := &recordingSettler{}
		j := &job{d: amqp.Delivery{DeliveryTag: 7}, queue: "q", from: rec}
		if got := p.requeue(j, task, "test", c.o); got != Requeued {
			t.Errorf("%+v: outcome %v, want Requeued", c.o, got)
		}
		if len(rec.calls) != 1 || rec.calls[0] != c.want {
			t.Errorf("%+v: settled with %v, want %s", c.o, rec.calls, c.want)
		}
	}
	if n := p.requeued.Load(); n != 2 {
		t.Errorf("Requeued counter %d, want 2", n)
	}
}

// TestCarryOutSettles: each decision that needs no publish settles the
// delivery on the consumer that delivered it, once and the right way, and
// counts and reports its outcome. A held delivery is not settled at all.
func TestCarryOutSettles(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		dec     decision
		fail    error // every settle fails with this
		want    []string
		outcome Outcome
		stats   Stats // the counters carryOut moves
	}{
		{name: "ack", dec: decision{action: actAck}, want: []string{"ack 7"}, outcome: Succeeded, stats: Stats{Succeeded: 1}},
		{name: "skip", dec: decision{action: actSkip, err: ErrAlreadyDone}, want: []string{"ack 7"}, outcome: Skipped, stats: Stats{Skipped: 1}},
		{name: "ack lost with its channel", dec: decision{action: actAck}, fail: broker.ErrClosed, want: []string{"ack 7"}, outcome: Voided},
		{name: "requeue on shutdown", dec: decision{action: actRequeue, err: context.Canceled}, want: []string{"requeue 7"},
			outcome: Requeued, stats: Stats{Requeued: 1}},
		{name: "reject unreadable", dec: decision{action: actReject, reason: warren.ReasonUnreadable, err: boom}, want: []string{"reject 7"},
			outcome: DeadLettered, stats: Stats{DeadLettered: 1, Unreadable: 1}},
		{name: "reject lost with its channel", dec: decision{action: actReject, reason: warren.ReasonUnreadable, err: boom},
			fail: broker.ErrClosed, want: []string{"reject 7"}, outcome: Voided, stats: Stats{Unreadable: 1}},
		{name: "hold unreadable", dec: decision{action: actHold, reason: warren.ReasonUnreadable, err: boom},
			outcome: Held, stats: Stats{Held: 1, Unreadable: 1}},
		{name: "hold exhausted", dec: decision{action: actHold, reason: warren.ReasonExhausted, err: boom},
			outcome: Held, stats: Stats{Held: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Pool{log: slog.New(slog.DiscardHandler), conn: &broker.Conn{}}
			rec := &recordingSettler{err: tc.fail}
			j := &job{d: amqp.Delivery{DeliveryTag: 7}, queue: "q", from: rec}
			task := &warren.Task{ID: "t1", Type: "x", Queue: "q", Attempt: 1}
			var ev Event
			p.carryOut(context.Background(), nil, j, task, tc.dec, 0, &ev)
			if !slices.Equal(rec.calls, tc.want) {
				t.Errorf("settled with %q, want %q", rec.calls, tc.want)
			}
			if ev.Outcome != tc.outcome || ev.Reason != tc.dec.reason {
				t.Errorf("event outcome %q reason %q, want %q %q", ev.Outcome, ev.Reason, tc.outcome, tc.dec.reason)
			}
			if got := p.Stats(); got != tc.stats {
				t.Errorf("stats %+v, want %+v", got, tc.stats)
			}
		})
	}
}

// TestActionNames: every action has a name in logs and test failures.
func TestActionNames(t *testing.T) {
	for a := actAck; a <= actHold; a++ {
		if s := a.String(); s == "" || s == fmt.Sprintf("action(%d)", int(a)) {
			t.Errorf("action %d has no name", int(a))
		}
	}
}
