package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/fleet"
)

// permissionsHint points at the documentation of the permissions each role needs.
const permissionsHint = "the broker user lacks a permission for this; docs/operations.md (Least privilege) lists what each role needs"

// dialError adds to a failed connection what to check.
func dialError(err error) error {
	switch ac := broker.AccessOf(err); {
	case ac != nil && ac.Refused == broker.VHostNotFound:
		// Not a permission problem, whatever the broker's reply code says.
		return &explained{err: err, msg: fmt.Sprintf("broker: vhost %q does not exist on the broker: check the vhost (the URL's path, %%2F for /) or create it (rabbitmqctl add_vhost %s)", ac.VHost, ac.VHost)}
	case ac != nil && ac.Refused == broker.RefusedVHost:
		return fmt.Errorf("%w (access refused to the vhost: check the vhost in the URL, and that the user has permissions on it: rabbitmqctl set_permissions -p VHOST USER CONFIGURE WRITE READ)", err)
	case ac != nil:
		return fmt.Errorf("%w (check the user and password in --url, --url-file or WARREN_URL)", err)
	case errors.Is(err, broker.ErrTLS):
		return fmt.Errorf("%w (the TLS handshake failed: --tls-ca must name the CA that signed the broker's certificate, the URL's host must be named in that certificate, and the port must be the broker's amqps listener)", err)
	}
	return fmt.Errorf("%w (is RabbitMQ running there? set --url or WARREN_URL)", err)
}

// explain rewrites a command's error where the cause needs saying plainly:
// a permission the broker refused (ACCESS_REFUSED) reads "access refused".
func explain(err error) error {
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	ac := broker.AccessOf(err)
	if ac == nil || ac.Refused == broker.VHostNotFound || ac.Refused == broker.RefusedLogin {
		return err // none, or explained at connect (dialError)
	}
	msg := err.Error()
	var b strings.Builder
	b.WriteString("access refused")
	if ac.Kind != "" {
		fmt.Fprintf(&b, ": user '%s' may not use %s '%s' in vhost '%s' for this", ac.User, ac.Kind, ac.Name, ac.VHost)
	}
	if hint := accessHint(err); hint != "" {
		b.WriteString("; " + hint)
	}
	fmt.Fprintf(&b, " (%s)\n  cause: %s", permissionsHint, msg)
	return &explained{err: err, msg: b.String()}
}

// accessHint names the permission the refused operation needs, from the
// operation the error carries (broker.OpError).
func accessHint(err error) string {
	if ac := broker.AccessOf(err); ac != nil && ac.Kind == "queue" && strings.HasPrefix(ac.Name, fleet.PausePrefix) {
		return "pausing and resuming a queue need the configure permission on warren.paused.<queue>"
	}
	switch broker.OpOf(err) {
	case broker.OpLock:
		return "dlq commands need the configure permission on warren.lock.<queue>.dlq and <queue>.dlq, and read on <queue>.dlq"
	case broker.OpConsume:
		return "consuming needs the read permission on the queue"
	case broker.OpDeclare, broker.OpBind:
		return "declaring needs the configure permission (and write and read on the exchanges involved); " +
			"a producer or worker without it runs with --no-declare once an operator has run warren topology declare"
	case broker.OpPublish:
		return "publishing needs the write permission on the exchange (amq.default for the default exchange)"
	}
	return ""
}

// scrubWriter removes the broker password from everything written to w:
// each write is one log record.
type scrubWriter struct {
	w     io.Writer
	scrub func(string) string
}

func (s *scrubWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(s.w, s.scrub(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
