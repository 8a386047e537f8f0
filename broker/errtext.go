package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// unnest undoes amqp091-go's habit of closing a connection with an
// *amqp.Error whose Reason is the text of another *amqp.Error (its frame
// reader does so with what it cannot read), which prints the exception
// twice: `Exception (501) Reason: "Exception (501) Reason: \"frame size
// exceeds negotiated frame_max\""`. The outer error keeps its code, which
// callers classify by, and gets the inner reason, followed by the inner
// code when it differs (`invalid field or value inside of a frame (502)`).
// Any other error is returned as it is.
func unnest(err error) error {
	ae, ok := err.(*amqp.Error)
	if !ok {
		return err
	}
	var code int
	var rest string
	if n, _ := fmt.Sscanf(ae.Reason, "Exception (%d) Reason: %s", &code, &rest); n != 2 {
		return err
	}
	prefix := fmt.Sprintf("Exception (%d) Reason: ", code)
	if !strings.HasPrefix(ae.Reason, prefix) {
		return err
	}
	inner, uerr := strconv.Unquote(ae.Reason[len(prefix):])
	if uerr != nil {
		return err
	}
	if code != ae.Code {
		inner = fmt.Sprintf("%s (%d)", inner, code)
	}
	out := *ae
	out.Reason = inner
	return &out
}

// Texts of RabbitMQ's refusals (3.10 to 4.x).
var (
	// ACCESS_REFUSED on a channel; older brokers leave out the permission.
	refusedRE = regexp.MustCompile(`(?:(configure|write|read) )?access to (queue|exchange) '([^']*)' in vhost '([^']*)' refused for user '([^']*)'`)
	// NOT_ALLOWED at connection.open: the user may not use the vhost.
	vhostRefusedRE = regexp.MustCompile(`access to vhost '([^']*)' refused for user '([^']*)'`)
	// NOT_ALLOWED at connection.open: the vhost does not exist.
	vhostMissingRE = regexp.MustCompile(`vhost (.*) not found`)
)

// accessError reads what the broker's refusal ae names, around err: a
// channel's ACCESS_REFUSED, or connection.open's NOT_ALLOWED.
func accessError(ae *amqp.Error, err error) *AccessError {
	out := &AccessError{Refused: RefusedPermission, Err: err}
	if ae.Code == amqp.NotAllowed {
		out.Refused = RefusedVHost
		if m := vhostMissingRE.FindStringSubmatch(ae.Reason); m != nil {
			out.Refused, out.VHost = VHostNotFound, m[1]
		} else if m := vhostRefusedRE.FindStringSubmatch(ae.Reason); m != nil {
			out.VHost, out.User = m[1], m[2]
		}
		return out
	}
	if m := refusedRE.FindStringSubmatch(ae.Reason); m != nil {
		out.Permission, out.Kind, out.Name, out.VHost, out.User = m[1], m[2], m[3], m[4], m[5]
	}
	return out
}

// classifyDial marks a failed connection: one the broker refused
// (credentials, the vhost) becomes an *AccessError matching
// ErrAccessRefused, a failed TLS handshake matches ErrTLS (its text
// unchanged); any other error is returned as it is.
func classifyDial(err error) error {
	// amqp091-go's ErrSASL, ErrCredentials and ErrVhost carry ACCESS_REFUSED too.
	var ae *amqp.Error
	switch {
	case errors.As(err, &ae) && ae.Code == amqp.NotAllowed:
		return accessError(ae, fmt.Errorf("%w: %w", ErrAccessRefused, err))
	case errors.As(err, &ae) && ae.Code == amqp.AccessRefused:
		return &AccessError{Refused: RefusedLogin, Err: fmt.Errorf("%w: %w", ErrAccessRefused, err)}
	case isTLSError(err):
		return &marked{err: err, as: ErrTLS}
	}
	return err
}

// isTLSError reports a failed certificate check or TLS handshake.
func isTLSError(err error) bool {
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		cerr x509.CertificateInvalidError
		rerr tls.RecordHeaderError
		aerr tls.AlertError
	)
	return errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr) ||
		errors.As(err, &rerr) || errors.As(err, &aerr) || strings.Contains(err.Error(), "tls: ")
}

// marked is err that also matches the sentinel as with errors.Is, with
// err's text.
type marked struct {
	err, as error
}

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.err, m.as} }
