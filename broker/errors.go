package broker

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Sentinel errors a caller can branch on with errors.Is.
var (
	// ErrClosed: the connection or publisher is closed.
	ErrClosed = errors.New("broker: closed")
	// ErrUnroutable: the broker had no queue to route the message to
	// (for Warren, the queue does not exist).
	ErrUnroutable = errors.New("broker: message unroutable (no such queue?)")
	// ErrNacked: the broker refused the message (negative confirm), for
	// example because a queue is full or a quorum is unavailable.
	ErrNacked = errors.New("broker: message nacked by the broker")
	// ErrConfirmLost: the channel closed, or a confirm went missing, before
	// the broker confirmed the message. It may or may not have been stored.
	ErrConfirmLost = errors.New("broker: no confirm received (the message may or may not be stored)")
	// ErrQueueNotFound: a queue that must exist does not.
	ErrQueueNotFound = errors.New("broker: queue not found")
	// ErrQueueMismatch: a queue exists with other arguments than Warren asks for.
	ErrQueueMismatch = errors.New("broker: queue exists with different arguments")
	// ErrAccessRefused: the broker refused the credentials or the permission.
	ErrAccessRefused = errors.New("broker: access refused")
	// ErrTLS: the TLS handshake with the broker failed: its certificate is
	// not trusted or does not name the host, or no TLS listener is there.
	ErrTLS = errors.New("broker: TLS handshake failed")
	// ErrBlocked: the broker blocks publishing (a memory or disk alarm)
	// and the caller's context ended before it lifted the block.
	ErrBlocked = errors.New("broker: publishing blocked by a broker alarm")
	// ErrMalformed: a delivery is not a valid Warren task.
	ErrMalformed = errors.New("broker: malformed task message")
)

// RedactURL returns raw with any password replaced by "xxxxx", for logs and
// error messages. Unparseable input is reduced to its scheme, if any.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.Index(raw, "://"); i > 0 {
			return raw[:i] + "://(unparseable URL)"
		}
		return "(unparseable URL)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// Op names what Warren was doing with the broker when an operation
// failed, so that a caller (the CLI explaining a refused permission, say)
// can branch on it without reading the error's text.
type Op string

// The operations an OpError names.
const (
	OpChannel Op = "channel" // opening a channel, enabling confirms
	OpDeclare Op = "declare" // declaring a queue or exchange
	OpBind    Op = "bind"    // binding a queue or exchange
	OpInspect Op = "inspect" // a passive declare: does it exist, how many messages
	OpPublish Op = "publish" // publishing
	OpConsume Op = "consume" // consuming, or reading with basic.get
	OpLock    Op = "lock"    // taking a dead-letter queue's lock
	OpDelete  Op = "delete"  // deleting a queue
)

// OpError is a broker operation that failed: Op says which, and Err why
// (match it with errors.Is against ErrQueueNotFound, ErrAccessRefused and
// the other sentinels, or errors.As against *amqp.Error). Its text is
// Err's.
type OpError struct {
	Op  Op
	Err error
}

func (e *OpError) Error() string { return e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }

// OpOf returns the operation of the first OpError in err's chain, or "".
func OpOf(err error) Op {
	var oe *OpError
	if errors.As(err, &oe) {
		return oe.Op
	}
	return ""
}

// Refusal says what the broker refused, in an AccessError.
type Refusal int

// The refusals an AccessError names.
const (
	// RefusedLogin: the user name or password (or the SASL mechanism).
	RefusedLogin Refusal = iota + 1
	// RefusedVHost: the user may not use the vhost, or the broker refused
	// the connection to it for another reason (NOT_ALLOWED).
	RefusedVHost
	// VHostNotFound: the vhost does not exist.
	VHostNotFound
	// RefusedPermission: a permission on a queue or exchange (ACCESS_REFUSED
	// on a channel).
	RefusedPermission
)

// AccessError is a refusal by the broker, with what its reply names: the
// fields are empty where RabbitMQ's text does not say. It matches
// ErrAccessRefused with errors.Is; its text is Err's.
type AccessError struct {
	Refused    Refusal
	User       string // the user refused
	VHost      string // the vhost of the refusal
	Permission string // "configure", "write" or "read", when said
	Kind       string // "queue" or "exchange", for RefusedPermission
	Name       string // the queue or exchange, for RefusedPermission
	Err        error
}

func (e *AccessError) Error() string { return e.Err.Error() }
func (e *AccessError) Unwrap() error { return e.Err }

// AccessOf returns the first AccessError in err's chain or, failing that,
// one read from an ACCESS_REFUSED *amqp.Error in it, or a RefusedPermission
// naming nothing when err only matches ErrAccessRefused; nil when err is
// no refusal.
func AccessOf(err error) *AccessError {
	var ac *AccessError
	if errors.As(err, &ac) {
		return ac
	}
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.AccessRefused {
		return accessError(ae, err)
	}
	if errors.Is(err, ErrAccessRefused) {
		return &AccessError{Refused: RefusedPermission, Err: err}
	}
	return nil
}

// classify maps an *amqp.Error to one of our sentinels where one fits,
// wrapped around the broker's own text, in an OpError naming op.
func classify(err error, op Op, what string) error {
	return &OpError{Op: op, Err: classifyText(err, what)}
}

func classifyText(err error, what string) error {
	err = unnest(err)
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		return fmt.Errorf("broker: %s: %w", what, err)
	}
	switch ae.Code {
	case amqp.NotFound:
		return fmt.Errorf("%w: %s: %s", ErrQueueNotFound, what, ae.Reason)
	case amqp.PreconditionFailed:
		return fmt.Errorf("%w: %s: %s", ErrQueueMismatch, what, ae.Reason)
	case amqp.AccessRefused:
		return accessError(ae, fmt.Errorf("%w: %s: %s", ErrAccessRefused, what, ae.Reason))
	}
	return fmt.Errorf("broker: %s: %w", what, err)
}

// Transient reports whether err is worth retrying at the infrastructure
// level (a dropped connection, a refused dial, the broker's INTERNAL_ERROR),
// as opposed to a refusal that will recur (bad credentials, missing queue,
// bad arguments). RabbitMQ 3.10 answers basic.consume on a quorum queue
// declared a moment earlier with INTERNAL_ERROR at times.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrNotConnected) || errors.Is(err, ErrBlocked) {
		return true
	}
	if errors.Is(err, ErrAccessRefused) || errors.Is(err, ErrQueueNotFound) || errors.Is(err, ErrQueueMismatch) || errors.Is(err, ErrUnroutable) {
		return false
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return ae.Recover || ae.Code == amqp.ConnectionForced || ae.Code == amqp.ChannelError || ae.Code == amqp.FrameError || ae.Code == amqp.InternalError
	}
	return true
}
