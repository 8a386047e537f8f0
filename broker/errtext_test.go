package broker

import (
	"errors"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestUnnest(t *testing.T) {
	nested := &amqp.Error{Code: amqp.FrameError, Reason: amqp.ErrFrameTooLarge.Error()}
	got := unnest(nested)
	if want := `Exception (501) Reason: "frame size exceeds negotiated frame_max"`; got.Error() != want {
		t.Errorf("unnest = %s, want %s", got, want)
	}
	var ae *amqp.Error
	if !errors.As(got, &ae) || ae.Code != amqp.FrameError {
		t.Errorf("unnest lost the code: %#v", got)
	}
	if strings.Count(got.Error(), "Exception") != 1 {
		t.Errorf("still nested: %s", got)
	}
	// The reader's 501 around a 502 (a field it cannot read).
	mixed := unnest(&amqp.Error{Code: amqp.FrameError, Reason: (&amqp.Error{Code: amqp.SyntaxError, Reason: "invalid field or value inside of a frame"}).Error()})
	if want := `Exception (501) Reason: "invalid field or value inside of a frame (502)"`; mixed.Error() != want {
		t.Errorf("unnest = %s, want %s", mixed, want)
	}
	for _, keep := range []error{
		errors.New("plain"),
		&amqp.Error{Code: 530, Reason: "NOT_ALLOWED - vhost x not found"},
		&amqp.Error{Code: 501, Reason: `Exception (501) Reason: not quoted`},
	} {
		if got := unnest(keep); got != keep {
			t.Errorf("unnest(%v) = %v, want it unchanged", keep, got)
		}
	}
}
