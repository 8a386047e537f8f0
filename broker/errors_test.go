package broker

import (
	"errors"
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"not connected", fmt.Errorf("declare: %w", ErrNotConnected), true},
		{"blocked", ErrBlocked, true},
		{"connection forced", &amqp.Error{Code: amqp.ConnectionForced, Reason: "CONNECTION_FORCED - shutdown"}, true},
		{"internal error from consume", fmt.Errorf("consume q: %w", &amqp.Error{Code: amqp.InternalError, Reason: "INTERNAL_ERROR"}), true},
		{"soft channel error", &amqp.Error{Code: amqp.ResourceLocked, Recover: true}, true},
		{"access refused", classify(&amqp.Error{Code: amqp.AccessRefused, Reason: "ACCESS_REFUSED"}, OpConsume, "consume q"), false},
		{"queue not found", classify(&amqp.Error{Code: amqp.NotFound, Reason: "NOT_FOUND - no queue 'q'"}, OpConsume, "consume q"), false},
		{"queue mismatch", classify(&amqp.Error{Code: amqp.PreconditionFailed, Reason: "PRECONDITION_FAILED - inequivalent arg"}, OpDeclare, "declare q"), false},
		{"unroutable", ErrUnroutable, false},
		{"a plain error", errors.New("dial tcp: connection refused"), true},
	} {
		if got := Transient(tc.err); got != tc.want {
			t.Errorf("Transient(%s: %v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestOpErrorKeepsTextAndSentinels(t *testing.T) {
	err := fmt.Errorf("worker: start: %w", classify(&amqp.Error{Code: amqp.AccessRefused, Reason: "ACCESS_REFUSED - no"}, OpBind, "bind q"))
	if OpOf(err) != OpBind {
		t.Errorf("OpOf = %q, want bind", OpOf(err))
	}
	if !errors.Is(err, ErrAccessRefused) {
		t.Error("the sentinel is lost")
	}
	if want := "worker: start: broker: access refused: bind q: ACCESS_REFUSED - no"; err.Error() != want {
		t.Errorf("text %q, want %q", err.Error(), want)
	}
	if OpOf(errors.New("other")) != "" {
		t.Error("OpOf of a plain error")
	}
}
