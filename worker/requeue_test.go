package worker

import (
	"fmt"
	"log/slog"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// recordingSettler records how deliveries were settled, as "verb tag".
type recordingSettler struct{ calls []string }

func (r *recordingSettler) Ack(tag uint64) error {
	r.calls = append(r.calls, fmt.Sprint("ack ", tag))
	return nil
}

func (r *recordingSettler) Reject(tag uint64) error {
	r.calls = append(r.calls, fmt.Sprint("reject ", tag))
	return nil
}

func (r *recordingSettler) Requeue(tag uint64, o broker.RequeueOptions) error {
	if o.Counted {
		r.calls = append(r.calls, fmt.Sprint("requeue counted ", tag))
	} else {
		r.calls = append(r.calls, fmt.Sprint("requeue ", tag))
	}
	return nil
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
