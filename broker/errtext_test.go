package broker

import (
	"crypto/x509"
	"errors"
	"fmt"
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

func TestAccessErrorReadsTheRefusal(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want AccessError
	}{
		{"permission", classify(&amqp.Error{Code: amqp.AccessRefused, Reason: "ACCESS_REFUSED - read access to queue 'q' in vhost 'v' refused for user 'p'"}, OpConsume, "consume q"),
			AccessError{Refused: RefusedPermission, User: "p", VHost: "v", Permission: "read", Kind: "queue", Name: "q"}},
		{"permission, 3.10 text", classify(&amqp.Error{Code: amqp.AccessRefused, Reason: "ACCESS_REFUSED - access to exchange 'x' in vhost '/' refused for user 'u'"}, OpPublish, "publish"),
			AccessError{Refused: RefusedPermission, User: "u", VHost: "/", Kind: "exchange", Name: "x"}},
		{"permission, unknown text", classify(&amqp.Error{Code: amqp.AccessRefused, Reason: "ACCESS_REFUSED - no"}, OpBind, "bind q"),
			AccessError{Refused: RefusedPermission}},
		{"vhost missing", classifyDial(&amqp.Error{Code: amqp.NotAllowed, Reason: "NOT_ALLOWED - vhost no-such not found"}),
			AccessError{Refused: VHostNotFound, VHost: "no-such"}},
		{"vhost refused", classifyDial(&amqp.Error{Code: amqp.NotAllowed, Reason: "NOT_ALLOWED - access to vhost 'v' refused for user 'u'"}),
			AccessError{Refused: RefusedVHost, User: "u", VHost: "v"}},
		{"credentials", classifyDial(fmt.Errorf("dial: %w", amqp.ErrCredentials)), AccessError{Refused: RefusedLogin}},
		{"no vhost reply", classifyDial(amqp.ErrVhost), AccessError{Refused: RefusedLogin}},
		{"raw amqp error", fmt.Errorf("x: %w", &amqp.Error{Code: amqp.AccessRefused, Reason: "ACCESS_REFUSED - write access to exchange 'e' in vhost 'v' refused for user 'w'"}),
			AccessError{Refused: RefusedPermission, User: "w", VHost: "v", Permission: "write", Kind: "exchange", Name: "e"}},
	} {
		got := AccessOf(c.err)
		if got == nil {
			t.Errorf("%s: AccessOf(%v) = nil", c.name, c.err)
			continue
		}
		if !errors.Is(c.err, ErrAccessRefused) && c.name != "raw amqp error" {
			t.Errorf("%s: does not match ErrAccessRefused", c.name)
		}
		if got.Err == nil || got.Error() == "" {
			t.Errorf("%s: no cause", c.name)
		}
		got.Err = nil
		if *got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, *got, c.want)
		}
	}
	for _, none := range []error{errors.New("other"), classifyDial(errors.New("connection refused")),
		classify(&amqp.Error{Code: amqp.NotFound, Reason: "NOT_FOUND"}, OpInspect, "inspect q")} {
		if got := AccessOf(none); got != nil {
			t.Errorf("AccessOf(%v) = %+v, want nil", none, got)
		}
	}
	// The text is unchanged by the classification.
	if got, want := classifyDial(amqp.ErrCredentials).Error(), "broker: access refused: "+amqp.ErrCredentials.Error(); got != want {
		t.Errorf("text %q, want %q", got, want)
	}
}

func TestClassifyDialTLS(t *testing.T) {
	cause := fmt.Errorf("dial: %w", x509.UnknownAuthorityError{})
	err := classifyDial(cause)
	if !errors.Is(err, ErrTLS) || !errors.Is(err, cause) || err.Error() != cause.Error() {
		t.Errorf("classifyDial(%v) = %v: want ErrTLS with the same text", cause, err)
	}
	for _, other := range []error{errors.New("connection refused"), amqp.ErrCredentials} {
		if errors.Is(classifyDial(other), ErrTLS) {
			t.Errorf("%v matched ErrTLS", other)
		}
	}
}
