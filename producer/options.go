package producer

import (
	"time"
)

// Option changes one enqueue.
type Option func(*options)

type options struct {
	id          string
	delay       time.Duration
	processAt   time.Time
	maxAttempts int
	headers     map[string]any
	contentType string
}

// WithID sets the task ID instead of a new UUIDv7. Use it for idempotency:
// the ID stays the same across retries and replays, and a handler can use it
// to recognise a task it has already done.
func WithID(id string) Option { return func(o *options) { o.id = id } }

// WithDelay makes the task wait d on the broker before it reaches its queue.
// Delays are rounded to whole seconds; the maximum is broker.MaxDelay.
func WithDelay(d time.Duration) Option {
	return func(o *options) { o.delay = d; o.processAt = time.Time{} }
}

// WithProcessAt makes the task wait on the broker until t.
func WithProcessAt(t time.Time) Option { return func(o *options) { o.processAt = t; o.delay = 0 } }

// WithMaxAttempts caps how many times the task runs, the first run
// included. It overrides the worker's retry policy for this task.
func WithMaxAttempts(n int) Option { return func(o *options) { o.maxAttempts = n } }

// WithHeaders adds AMQP headers. Names starting with "x-" or "warren-" are
// reserved and refused.
func WithHeaders(h map[string]any) Option {
	return func(o *options) {
		if o.headers == nil {
			o.headers = make(map[string]any, len(h))
		}
		for k, v := range h {
			o.headers[k] = v
		}
	}
}

// WithContentType sets the AMQP content type; the default is
// "application/json".
func WithContentType(ct string) Option { return func(o *options) { o.contentType = ct } }
