package broker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
)

// delivered returns the delivery of a task as the broker hands it out
// after one dead-lettering round through a delay level (x-death).
func delivered(t *testing.T, task *warren.Task) (*amqp.Delivery, *warren.Task) {
	t.Helper()
	msg := Encode(task)
	msg.Headers["x-death"] = []any{amqp.Table{"queue": "warren.delay.0", "count": int64(1)}}
	msg.Headers["CC"] = []any{"elsewhere"}
	d := delivery(msg)
	got, err := Decode(d, task.Queue)
	if err != nil {
		t.Fatal(err)
	}
	return d, got
}

func TestEncodeRetryRaisesTheAttemptAndRecordsTheFailure(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_000)
	prior := []warren.Failure{{Attempt: 1, Error: "first", FailedAt: at.Add(-time.Minute), Worker: "w0", Duration: time.Second}}
	d, task := delivered(t, &warren.Task{ID: "id-1", Type: "email", Queue: "emails", Payload: []byte("{}"),
		Attempt: 2, MaxAttempts: 5, EnqueuedAt: at.Add(-time.Hour), History: prior})
	l, err := EncodeRetry(d, Failed{Task: task, Err: errors.New("smtp 421"), At: at, Worker: "w1", Duration: 3 * time.Millisecond}, 5*time.Second)
	if err != nil || l.Trimmed {
		t.Fatalf("EncodeRetry: trimmed=%v err=%v", l.Trimmed, err)
	}
	wantEx, wantKey, _ := DelayRoute("emails", 5*time.Second)
	if l.Exchange != wantEx || l.Key != wantKey || l.Delay != 5*time.Second {
		t.Errorf("routed to %q %q after %s, want %q %q after 5s", l.Exchange, l.Key, l.Delay, wantEx, wantKey)
	}
	for _, k := range []string{"x-death", "CC"} {
		if _, ok := l.Msg.Headers[k]; ok {
			t.Errorf("the retry carries the delivery's %s header", k)
		}
	}
	if v, _ := HeaderInt(l.Msg.Headers, warren.HeaderDeliverAt); v != at.Add(5*time.Second).UnixMilli() {
		t.Errorf("deliver-at = %d, want %d", v, at.Add(5*time.Second).UnixMilli())
	}
	next, err := Decode(delivery(l.Msg), "emails")
	if err != nil {
		t.Fatal(err)
	}
	want := *task
	want.Attempt = 3
	want.LastError = "smtp 421"
	want.History = append(prior, warren.Failure{Attempt: 2, Error: "smtp 421", FailedAt: at, Worker: "w1", Duration: 3 * time.Millisecond})
	want.Redelivered, want.DeliveryCount = false, 0
	want.Headers = nil // CC is stripped
	if diff := cmp.Diff(&want, next); diff != "" {
		t.Errorf("next attempt (-want +got):\n%s", diff)
	}
	if len(task.History) != 1 {
		t.Errorf("EncodeRetry changed the task's history: %+v", task.History)
	}
}

func TestEncodeRetryWithoutDelayGoesStraightBack(t *testing.T) {
	d, task := delivered(t, &warren.Task{ID: "id", Type: "t", Queue: "q", Attempt: 1})
	l, err := EncodeRetry(d, Failed{Task: task, Err: errors.New("x")}, 0)
	if err != nil || l.Exchange != "" || l.Key != "q" {
		t.Fatalf("got %q %q, %v; want the default exchange to q", l.Exchange, l.Key, err)
	}
	if _, ok := l.Msg.Headers[warren.HeaderDeliverAt]; ok {
		t.Error("an immediate retry carries deliver-at")
	}
	l, err = EncodeRetry(d, Failed{Task: task, Err: errors.New("x")}, 10*MaxDelay)
	if err != nil || l.Delay != MaxDelay {
		t.Errorf("a delay past MaxDelay: delay %s, %v; want it clamped to %s", l.Delay, err, MaxDelay)
	}
}

func TestEncodeDeadLetterTellsItsStory(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_000)
	d, task := delivered(t, &warren.Task{ID: "id-2", Type: "charge", Queue: "billing", Attempt: 4, MaxAttempts: 4,
		EnqueuedAt: at.Add(-time.Hour)})
	l, err := EncodeDeadLetter(d, Failed{Task: task, Err: errors.New("card declined"), Stack: []byte("goroutine 1"),
		At: at, Worker: "w2", Duration: time.Second}, warren.ReasonExhausted)
	if err != nil {
		t.Fatal(err)
	}
	if l.Exchange != "" || l.Key != "billing.dlq" {
		t.Errorf("routed to %q %q, want the default exchange to billing.dlq", l.Exchange, l.Key)
	}
	h := l.Msg.Headers
	for k, want := range map[string]string{
		warren.HeaderDeadReason: "attempts_exhausted", warren.HeaderError: "card declined",
		warren.HeaderWorkerHost: "w2", warren.HeaderStack: "goroutine 1", warren.HeaderQueue: "billing",
	} {
		if got := HeaderString(h, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if v, _ := HeaderInt(h, warren.HeaderFailedAt); v != at.UnixMilli() {
		t.Errorf("failed-at = %d", v)
	}
	if v, _ := HeaderInt(h, warren.HeaderDurationMS); v != 1000 {
		t.Errorf("duration-ms = %d", v)
	}
	back, err := Decode(delivery(l.Msg), "billing.dlq")
	if err != nil || back.Attempt != 4 || len(back.History) != 1 || back.History[0].Error != "card declined" {
		t.Errorf("decoded %+v, %v", back, err)
	}
}

func TestEncodeDeadLetterOfAMalformedMessageAddsNoAttempt(t *testing.T) {
	d := &amqp.Delivery{Body: []byte("junk"), Headers: amqp.Table{}}
	l, err := EncodeDeadLetter(d, Failed{Task: &warren.Task{Queue: "q"}, Err: ErrMalformed}, warren.ReasonMalformed)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{warren.HeaderAttempt, warren.HeaderHistory, warren.HeaderEnqueuedAt, warren.HeaderStack} {
		if _, ok := l.Msg.Headers[k]; ok {
			t.Errorf("a malformed dead letter carries %s", k)
		}
	}
}

func TestEncodersTrimOrRefuseWhatDoesNotFit(t *testing.T) {
	d, task := delivered(t, &warren.Task{ID: "id", Type: "t", Queue: "q", Attempt: 1,
		Headers: map[string]any{"own": strings.Repeat("x", 120_000)}})
	failed := Failed{Task: task, Err: errors.New(strings.Repeat("e", MaxErrorLen)), Stack: []byte(strings.Repeat("s", MaxStackLen)), FrameMax: 131072}
	l, err := EncodeDeadLetter(d, failed, warren.ReasonPermanent)
	if err != nil || !l.Trimmed {
		t.Errorf("dead letter: trimmed=%v err=%v; want trimmed to fit", l.Trimmed, err)
	}
	if _, err := EncodeRetry(d, failed, time.Minute); !errors.Is(err, ErrOversized) {
		t.Errorf("retry through the delay levels: %v; want ErrOversized (their x-death entries need room)", err)
	}
}
