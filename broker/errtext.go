package broker

import (
	"fmt"
	"strconv"

	amqp "github.com/rabbitmq/amqp091-go"
)

// unnest undoes amqp091-go's habit of closing a connection with an
// *amqp.Error whose Reason is the text of another *amqp.Error (its frame
// reader does so with ErrFrameTooLarge), which prints the exception twice:
// `Exception (501) Reason: "Exception (501) Reason: \"frame size exceeds
// negotiated frame_max\""`. The outer error keeps its code and gets the
// inner reason; any other error is returned as it is.
func unnest(err error) error {
	ae, ok := err.(*amqp.Error)
	if !ok {
		return err
	}
	var code int
	var quoted string
	if n, _ := fmt.Sscanf(ae.Reason, "Exception (%d) Reason: %s", &code, &quoted); n != 2 || code != ae.Code {
		return err
	}
	prefix := fmt.Sprintf("Exception (%d) Reason: ", code)
	inner, uerr := strconv.Unquote(ae.Reason[len(prefix):])
	if uerr != nil {
		return err
	}
	out := *ae
	out.Reason = inner
	return &out
}
