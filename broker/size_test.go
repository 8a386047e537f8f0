package broker

import (
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
)

func TestFitTrimsWarrensMetadataOnlyAndInOrder(t *testing.T) {
	var hist []warren.Failure
	for i := range 16 {
		hist = append(hist, warren.Failure{Attempt: i + 1, Error: strings.Repeat("e", 1000), FailedAt: time.Unix(0, 0)})
	}
	newMsg := func(user int) amqp.Publishing {
		return amqp.Publishing{MessageId: "id", Type: "t", DeliveryMode: 2, Headers: amqp.Table{
			"user":                  strings.Repeat("u", user),
			warren.HeaderStack:      strings.Repeat("s", 16000),
			warren.HeaderHistory:    EncodeHistory(hist),
			warren.HeaderError:      strings.Repeat("x", 8000),
			warren.HeaderLastError:  strings.Repeat("y", 8000),
			warren.HeaderDeadReason: "permanent_error",
		}}
	}
	full := newMsg(10)
	size := PropertiesSize(&full)

	msg := newMsg(10)
	if trimmed, err := Fit(&msg, size); trimmed || err != nil {
		t.Fatalf("a message that fits: trimmed %v, err %v", trimmed, err)
	}

	msg = newMsg(10)
	if trimmed, err := Fit(&msg, size-1000); !trimmed || err != nil {
		t.Fatalf("trimmed %v, err %v", trimmed, err)
	}
	if _, ok := msg.Headers[warren.HeaderStack]; ok {
		t.Error("the stack goes first")
	}
	if h := msg.Headers[warren.HeaderHistory].([]any); len(h) != 16 {
		t.Errorf("history trimmed to %d before it had to be", len(h))
	}

	msg = newMsg(10)
	if _, err := Fit(&msg, 3000); err != nil {
		t.Fatalf("Fit to 3000: %v", err)
	}
	if n := PropertiesSize(&msg); n > 3000 {
		t.Errorf("size %d after Fit to 3000", n)
	}
	if msg.Headers["user"] != strings.Repeat("u", 10) || msg.Headers[warren.HeaderDeadReason] != "permanent_error" {
		t.Error("Fit changed the task's own headers or the reason")
	}
	if e := msg.Headers[warren.HeaderError].(string); len(e) > 1024 || !strings.HasSuffix(e, "(truncated)") {
		t.Errorf("error not cut: %d bytes", len(e))
	}

	msg = newMsg(5000)
	_, err := Fit(&msg, 4000)
	if !errors.Is(err, ErrOversized) || !strings.Contains(err.Error(), "4000") {
		t.Fatalf("user headers alone too large: err %v, want ErrOversized naming the budget", err)
	}
	if err := CheckSize(&msg, 4000); !errors.Is(err, ErrOversized) {
		t.Fatalf("CheckSize: %v", err)
	}
	if trimmed, err := Fit(&msg, 0); trimmed || err != nil {
		t.Fatal("budget 0 means no limit")
	}
}

func TestBudgetsLeaveRoomForTheBroker(t *testing.T) {
	if b := HeaderBudget(131072); b != 131072-8-1024 {
		t.Errorf("HeaderBudget = %d", b)
	}
	if d := DelayedHeaderBudget(131072); d >= HeaderBudget(131072)-DelayLevels*256 || d < 100000 {
		t.Errorf("DelayedHeaderBudget = %d: must keep room for %d x-death entries and leave most of the frame", d, DelayLevels)
	}
	if HeaderBudget(0) != 0 || DelayedHeaderBudget(0) != 0 {
		t.Error("no frame limit means no budget")
	}
}

func TestCheckHeaders(t *testing.T) {
	deep := amqp.Table{"leaf": 1}
	for range 32 {
		deep = amqp.Table{"n": deep}
	}
	if err := CheckHeaders(deep); err != nil {
		t.Errorf("32 deep: %v", err)
	}
	if err := CheckHeaders(amqp.Table{"n": deep}); !errors.Is(err, ErrUnreadableHeaders) {
		t.Errorf("33 deep: %v", err)
	}
	wide := amqp.Table{}
	for i := range MaxHeaderEntries + 1 {
		wide[strings.Repeat("k", 1+i%5)+string(rune(i))] = i
	}
	if err := CheckHeaders(wide); !errors.Is(err, ErrUnreadableHeaders) {
		t.Errorf("%d entries: %v", len(wide), err)
	}
	if err := CheckHeaders(amqp.Table{"a": make([]any, MaxHeaderEntries+1)}); !errors.Is(err, ErrUnreadableHeaders) {
		t.Errorf("long array: %v", err)
	}
}
