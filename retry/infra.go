package retry

import (
	"time"

	"github.com/eapache/go-resiliency/breaker"
	"github.com/eapache/go-resiliency/retrier"
)

// Infra returns a go-resiliency retrier for infrastructure work (dialling,
// declaring): n retries with exponential backoff from base, jittered by 25%,
// retrying only the errors that transient says are worth another try.
// Never use it for a task's handler.
func Infra(n int, base time.Duration, transient func(error) bool) *retrier.Retrier {
	r := retrier.New(retrier.ExponentialBackoff(n, base), classifier(transient))
	r.SetJitter(0.25)
	return r
}

type classifier func(error) bool

func (c classifier) Classify(err error) retrier.Action {
	switch {
	case err == nil:
		return retrier.Succeed
	case c == nil || c(err):
		return retrier.Retry
	default:
		return retrier.Fail
	}
}

// Breaker returns a go-resiliency circuit breaker that opens after failures
// consecutive infrastructure errors, stays open for open, and closes after
// one success in half-open state. While open, Run returns
// breaker.ErrBreakerOpen at once.
func Breaker(failures int, open time.Duration) *breaker.Breaker {
	return breaker.New(failures, 1, open)
}

// ErrBreakerOpen is returned by a Breaker's Run while it is open.
var ErrBreakerOpen = breaker.ErrBreakerOpen
