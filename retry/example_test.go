package retry_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/warrenq/warren/retry"
)

// The delay before the next attempt is drawn from [Min, Ceiling(attempt)].
// A fixed Rand makes it deterministic: 0.5 picks the middle of the range.
func ExamplePolicy_Backoff() {
	p := retry.Policy{
		Base: time.Second,
		Cap:  10 * time.Second,
		Rand: func() float64 { return 0.5 },
	}
	for attempt := 1; attempt <= 6; attempt++ {
		fmt.Printf("after attempt %d: ceiling %s, backoff %s\n", attempt, p.Ceiling(attempt), p.Backoff(attempt))
	}
	// Output:
	// after attempt 1: ceiling 1s, backoff 1s
	// after attempt 2: ceiling 2s, backoff 1.5s
	// after attempt 3: ceiling 4s, backoff 2.5s
	// after attempt 4: ceiling 8s, backoff 4.5s
	// after attempt 5: ceiling 10s, backoff 5.5s
	// after attempt 6: ceiling 10s, backoff 5.5s
}

// Decide is what a worker applies to a failed attempt.
func ExamplePolicy_Decide() {
	p := retry.Policy{MaxAttempts: 3, Rand: func() float64 { return 0 }}
	transient := errors.New("smtp: connection refused")

	fmt.Printf("%+v\n", p.Decide(1, 0, transient))
	fmt.Printf("%+v\n", p.Decide(3, 0, transient)) // the last allowed attempt
	fmt.Printf("%+v\n", p.Decide(3, 5, transient)) // the producer allowed 5
	fmt.Printf("%+v\n", p.Decide(1, 0, retry.Permanent(transient)))
	fmt.Printf("%+v\n", p.Decide(1, 0, retry.After(30*time.Second, transient)))
	// Output:
	// {Retry:true Delay:1s Permanent:false}
	// {Retry:false Delay:0s Permanent:false}
	// {Retry:true Delay:1s Permanent:false}
	// {Retry:false Delay:0s Permanent:true}
	// {Retry:true Delay:30s Permanent:false}
}

// A handler returns retry.Permanent for a failure no retry can fix. It
// survives wrapping with %w, and errors.As recovers it with its cause.
func ExamplePermanent() {
	errBadInput := errors.New("recipient address is empty")
	err := fmt.Errorf("email:send task 42: %w", retry.Permanent(errBadInput))

	var perm *retry.PermanentError
	if errors.As(err, &perm) {
		fmt.Println("permanent:", perm.Err)
	}
	fmt.Println(retry.IsPermanent(err), errors.Is(err, errBadInput))
	// Output:
	// permanent: recipient address is empty
	// true true
}

// After asks for a specific delay, for example from a rate limiter's
// Retry-After, instead of the policy's backoff.
func ExampleAfter() {
	err := fmt.Errorf("call API: %w", retry.After(90*time.Second, errors.New("429 Too Many Requests")))
	if d, ok := retry.DelayOf(err); ok {
		fmt.Println("retry in", d)
	}
	// Output:
	// retry in 1m30s
}
