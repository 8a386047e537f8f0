package retry

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/warrenq/warren/internal/check"
)

// Defaults for a zero Policy.
const (
	DefaultMaxAttempts = 10
	DefaultBase        = time.Second
	DefaultCap         = time.Hour
	DefaultMin         = time.Second
)

// Policy is exponential backoff with full jitter: the delay before attempt
// n+1 is drawn uniformly from [Min, min(Cap, Base·2^(n-1))]. A Policy is a
// value; the zero Policy uses the defaults. It is safe for concurrent use
// when Rand is (the default is).
type Policy struct {
	// MaxAttempts is how many times a task runs at most, the first run
	// included. 0 means DefaultMaxAttempts (10). 1 means never retry.
	MaxAttempts int
	// Base is the backoff ceiling after the first attempt. 0 means 1s.
	Base time.Duration
	// Cap bounds every delay. 0 means 1h.
	Cap time.Duration
	// Min is the floor under the jittered delay, so that a retry never
	// hot-loops. 0 means 1s; negative means no floor.
	Min time.Duration
	// Rand returns a float in [0,1). nil means math/rand/v2's Float64.
	Rand func() float64
}

// WithDefaults returns p with each zero field set to its default. It is
// idempotent: a negative Min (no floor) stays negative.
func (p Policy) WithDefaults() Policy {
	p.MaxAttempts = cmp.Or(p.MaxAttempts, DefaultMaxAttempts)
	p.Base = cmp.Or(p.Base, DefaultBase)
	p.Cap = cmp.Or(p.Cap, DefaultCap)
	p.Min = cmp.Or(p.Min, DefaultMin)
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	return p
}

// Validate reports every problem with p at once.
func (p Policy) Validate() error {
	errs := []error{
		check.NotNegative("retry: MaxAttempts", p.MaxAttempts),
		check.NotNegative("retry: Base", p.Base),
		check.NotNegative("retry: Cap", p.Cap),
	}
	if p.Cap > 0 && p.Base > p.Cap {
		errs = append(errs, fmt.Errorf("retry: Base (%s) cannot exceed Cap (%s)", p.Base, p.Cap))
	}
	return errors.Join(errs...)
}

// Ceiling returns the upper bound of the delay after the given failed
// attempt (1-based): min(Cap, Base·2^(attempt-1)), never below Min.
func (p Policy) Ceiling(attempt int) time.Duration {
	p = p.WithDefaults()
	if attempt < 1 {
		attempt = 1
	}
	d := p.Base
	for i := 1; i < attempt && d < p.Cap; i++ {
		d *= 2
	}
	d = min(d, p.Cap)
	return max(d, p.Min)
}

// Backoff returns the delay before the next attempt after the given failed
// attempt (1-based), with full jitter between Min and Ceiling(attempt).
func (p Policy) Backoff(attempt int) time.Duration {
	p = p.WithDefaults()
	hi := p.Ceiling(attempt)
	lo := min(max(p.Min, 0), hi)
	return lo + time.Duration(p.Rand()*float64(hi-lo))
}

// Decision is what a worker does with a failed attempt.
type Decision struct {
	// Retry is true when the task runs again after Delay.
	Retry bool
	// Delay is the wait before the next attempt, when Retry.
	Delay time.Duration
	// Permanent is true when the error itself forbade retries.
	Permanent bool
}

// Decide applies p to a failed attempt. maxAttempts overrides
// p.MaxAttempts when positive (the producer's per-task cap).
func (p Policy) Decide(attempt, maxAttempts int, err error) Decision {
	p = p.WithDefaults()
	if IsPermanent(err) {
		return Decision{Permanent: true}
	}
	limit := p.MaxAttempts
	if maxAttempts > 0 {
		limit = maxAttempts
	}
	if attempt >= limit {
		return Decision{}
	}
	if d, ok := DelayOf(err); ok {
		return Decision{Retry: true, Delay: max(d, 0)}
	}
	return Decision{Retry: true, Delay: p.Backoff(attempt)}
}
