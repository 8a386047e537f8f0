package retry

import (
	"errors"
	"time"
)

// PermanentError marks a failure that no retry can fix. Build one with Permanent.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string {
	if e.Err == nil {
		return "permanent failure"
	}
	return e.Err.Error()
}

func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that the task goes straight to its dead-letter
// queue, whatever attempts it has left. Permanent(nil) is still a failure.
func Permanent(err error) error { return &PermanentError{Err: err} }

// IsPermanent reports whether err, or anything it wraps, was made with Permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// AfterError asks for the next attempt after a given delay. Build one with After.
type AfterError struct {
	Delay time.Duration
	Err   error
}

func (e *AfterError) Error() string {
	if e.Err == nil {
		return "retry requested after " + e.Delay.String()
	}
	return e.Err.Error()
}

func (e *AfterError) Unwrap() error { return e.Err }

// After wraps err so that the next attempt comes after d instead of the
// policy's backoff. It still counts as an attempt: when attempts run out the
// task is dead-lettered.
func After(d time.Duration, err error) error { return &AfterError{Delay: d, Err: err} }

// DelayOf returns the delay asked for with After, if err carries one.
func DelayOf(err error) (time.Duration, bool) {
	var a *AfterError
	if errors.As(err, &a) {
		return a.Delay, true
	}
	return 0, false
}

// RetryAfter is DelayOf.
//
// Deprecated: use DelayOf; retry.RetryAfter stutters.
func RetryAfter(err error) (time.Duration, bool) { return DelayOf(err) }
