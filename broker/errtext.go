package broker

import (
	"fmt"
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
