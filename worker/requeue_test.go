package worker

import (
	"log/slog"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
)

// recordingAcker records how a delivery was settled.
type recordingAcker struct{ calls []string }

func (r *recordingAcker) Ack(uint64, bool) error { r.calls = append(r.calls, "ack"); return nil }
func (r *recordingAcker) Nack(_ uint64, multiple, requeue bool) error {
	if !multiple && requeue {
		r.calls = append(r.calls, "nack requeue")
	} else {
		r.calls = append(r.calls, "nack other")
	}
	return nil
}
func (r *recordingAcker) Reject(_ uint64, requeue bool) error {
	if requeue {
		r.calls = append(r.calls, "reject requeue")
	} else {
		r.calls = append(r.calls, "reject drop")
	}
	return nil
}

// TestRequeueRejectsFailuresAndNacksTheRest: a task handed back because
// its retry or dead letter could not be published is rejected (RabbitMQ
// 4.3 counts that toward the delivery limit); one handed back on shutdown
// is nacked (4.3 does not count it).
func TestRequeueRejectsFailuresAndNacksTheRest(t *testing.T) {
	p := &Pool{log: slog.New(slog.DiscardHandler)}
	task := &warren.Task{ID: "t1", Type: "x", Queue: "q"}
	for _, c := range []struct {
		failed bool
		want   string
	}{{true, "reject requeue"}, {false, "nack requeue"}} {
		ack := &recordingAcker{}
		d := &amqp.Delivery{Acknowledger: ack, DeliveryTag: 1}
		if got := p.requeue(d, task, "test", c.failed); got != Requeued {
			t.Errorf("failed=%v: outcome %v, want Requeued", c.failed, got)
		}
		if len(ack.calls) != 1 || ack.calls[0] != c.want {
			t.Errorf("failed=%v: settled with %v, want %s", c.failed, ack.calls, c.want)
		}
	}
}
