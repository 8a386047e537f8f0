package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/retry"
)

func TestDecide(t *testing.T) {
	boom := errors.New("boom")
	half := func() float64 { return 0.5 }
	// Backoff after attempt n with Rand at 0.5: halfway between Min (1s)
	// and the ceiling min(Cap, Base·2^(n-1)).
	policy := retry.Policy{MaxAttempts: 5, Base: 4 * time.Second, Cap: time.Minute, Rand: half}
	byType := map[string]retry.Policy{
		"once":  {MaxAttempts: 1},
		"quick": {MaxAttempts: 9, Base: 2 * time.Second, Cap: 11 * time.Second, Rand: half},
	}
	task := func(typ string, attempt, maxAttempts int) *warren.Task {
		return &warren.Task{ID: "id", Type: typ, Queue: "q", Attempt: attempt, MaxAttempts: maxAttempts}
	}
	on := func(queue string, t *warren.Task) *warren.Task { t.Queue = queue; return t }
	panicked := &PanicError{Value: "nil map", Stack: []byte("goroutine 7 [running]:")}
	timedOut := fmt.Errorf("worker: handler timeout after 1s: %w", context.DeadlineExceeded)
	tests := []struct {
		name      string
		task      *warren.Task
		a         attempt
		noDeclare bool // the pool runs with NoDeclare
		want      decision
		errHas    string // decision.err's text must contain this ("" checks errors.Is(err, a's error))
		breaks    string // what a wrong answer would do to a task
	}{
		{name: "success", task: task("t", 1, 0), a: attempt{}, want: decision{action: actAck},
			breaks: "a task that succeeded would run again or be lost"},
		{name: "success on the last attempt", task: task("t", 5, 5), a: attempt{}, want: decision{action: actAck},
			breaks: "a last attempt that succeeded would be dead-lettered"},
		{name: "success on a dead-letter queue", task: on("q.dlq", task("t", 5, 5)), a: attempt{}, want: decision{action: actAck},
			breaks: "a dead letter run by a worker would stay in its queue after it succeeded"},
		{name: "already done", task: task("t", 1, 0), a: attempt{err: fmt.Errorf("dedup: %w", ErrAlreadyDone)},
			want: decision{action: actSkip}, breaks: "a duplicate would be retried or counted as a success"},
		{name: "already done past the cap", task: task("t", 5, 5), a: attempt{err: ErrAlreadyDone},
			want: decision{action: actSkip}, breaks: "a duplicate on its last attempt would be dead-lettered"},
		{name: "already done during shutdown", task: task("t", 1, 0),
			a: attempt{err: fmt.Errorf("%w: %w", ErrAlreadyDone, context.Canceled), shutdown: true}, want: decision{action: actSkip},
			breaks: "a task already done would be handed back to run again"},
		{name: "cancelled by shutdown", task: task("t", 5, 5), a: attempt{err: fmt.Errorf("wrapped: %w", context.Canceled), shutdown: true},
			want: decision{action: actRequeue}, breaks: "a shutdown would cost the task an attempt (or dead-letter it)"},
		{name: "cancelled by shutdown on a dead-letter queue", task: on("q.dlq", task("t", 5, 5)),
			a: attempt{err: context.Canceled, shutdown: true}, want: decision{action: actRequeue},
			breaks: "a shutdown would hold a dead letter instead of handing it back"},
		{name: "cancelled without shutdown is a failure", task: task("t", 1, 0), a: attempt{err: context.Canceled},
			want:   decision{action: actRetry, delay: 2500 * time.Millisecond},
			breaks: "a handler that gives up with Canceled would be requeued at once, forever"},
		{name: "other failure during shutdown is a failure", task: task("t", 1, 0), a: attempt{err: boom, shutdown: true},
			want:   decision{action: actRetry, delay: 2500 * time.Millisecond},
			breaks: "a real failure during shutdown would not count as an attempt"},
		{name: "retry with backoff", task: task("t", 2, 0), a: attempt{err: boom},
			want: decision{action: actRetry, delay: 4500 * time.Millisecond}, breaks: "a failure with attempts left would not wait its backoff"},
		{name: "retry after the handler's delay", task: task("t", 2, 0), a: attempt{err: retry.After(7*time.Second, boom)},
			want: decision{action: actRetry, delay: 7 * time.Second}, breaks: "retry.After would be ignored"},
		{name: "retry after a negative delay is at once", task: task("t", 2, 0), a: attempt{err: retry.After(-time.Second, boom)},
			want: decision{action: actRetry, delay: 0}, breaks: "a negative delay would reach the delay levels"},
		{name: "the handler's delay does not outlive the cap", task: task("t", 5, 0), a: attempt{err: retry.After(time.Second, boom)},
			want: decision{action: actDeadLetter, reason: warren.ReasonExhausted}, breaks: "retry.After would retry forever"},
		{name: "handler timeout is retried", task: task("t", 1, 0), a: attempt{err: timedOut},
			want: decision{action: actRetry, delay: 2500 * time.Millisecond}, breaks: "a handler timeout would not be retried"},
		{name: "panic is retried", task: task("t", 1, 0), a: attempt{err: panicked},
			want: decision{action: actRetry, delay: 2500 * time.Millisecond}, breaks: "a panic would be treated unlike any other failure"},
		{name: "panic on the last attempt is exhausted", task: task("t", 5, 0), a: attempt{err: panicked},
			want:   decision{action: actDeadLetter, reason: warren.ReasonExhausted},
			breaks: "a task that panics every time would loop, or lose its stack (err must stay the *PanicError)"},
		{name: "retried on a dead-letter queue", task: on("q.dlq", task("t", 1, 0)), a: attempt{err: boom},
			want: decision{action: actRetry, delay: 2500 * time.Millisecond}, breaks: "a dead letter run again would not be retried"},
		{name: "retried under NoDeclare", task: task("t", 1, 0), a: attempt{err: boom}, noDeclare: true,
			want: decision{action: actRetry, delay: 2500 * time.Millisecond}, breaks: "NoDeclare would change retries"},
		{name: "unknown type", task: task("t", 1, 0), a: attempt{err: fmt.Errorf("mux: %w", ErrUnknownType)},
			want: decision{action: actDeadLetter, reason: warren.ReasonUnknownType}, breaks: "a type no handler knows would be retried"},
		{name: "malformed", task: task("", 1, 0), a: attempt{malformed: boom},
			want: decision{action: actDeadLetter, reason: warren.ReasonMalformed}, breaks: "a message that is no task would be run or lost"},
		{name: "malformed under NoDeclare is still dead-lettered", task: task("", 1, 0), a: attempt{malformed: boom}, noDeclare: true,
			want:   decision{action: actDeadLetter, reason: warren.ReasonMalformed},
			breaks: "NoDeclare would hold what Warren can dead-letter itself"},
		{name: "unreadable", task: task("t", 1, 0), a: attempt{unreadable: "header table nested 40 deep"},
			want: decision{action: actReject, reason: warren.ReasonUnreadable}, errHas: "unreadable message: header table nested 40 deep",
			breaks: "a message the client cannot read would be republished without its headers, or run"},
		{name: "unreadable wins over malformed", task: task("", 1, 0), a: attempt{unreadable: "too many entries", malformed: boom},
			want: decision{action: actReject, reason: warren.ReasonUnreadable}, errHas: "too many entries",
			breaks: "an unreadable message would be dead-lettered by Warren with its headers lost"},
		{name: "permanent", task: task("t", 1, 0), a: attempt{err: retry.Permanent(boom)},
			want: decision{action: actDeadLetter, reason: warren.ReasonPermanent}, breaks: "retry.Permanent would be retried"},
		{name: "permanent past the cap stays permanent", task: task("t", 5, 0), a: attempt{err: retry.Permanent(boom)},
			want: decision{action: actDeadLetter, reason: warren.ReasonPermanent}, breaks: "the dead letter would say exhausted"},
		{name: "permanent under NoDeclare is still dead-lettered", task: task("t", 1, 0), a: attempt{err: retry.Permanent(boom)}, noDeclare: true,
			want:   decision{action: actDeadLetter, reason: warren.ReasonPermanent},
			breaks: "NoDeclare would hold what Warren can dead-letter itself"},
		{name: "exhausted by the task's cap", task: task("t", 3, 3), a: attempt{err: boom},
			want: decision{action: actDeadLetter, reason: warren.ReasonExhausted}, breaks: "a task's MaxAttempts would be ignored"},
		{name: "the task's cap overrides the policy's", task: task("t", 6, 8), a: attempt{err: boom},
			want: decision{action: actRetry, delay: 30500 * time.Millisecond}, breaks: "a task's MaxAttempts could not raise the cap"},
		{name: "exhausted by the policy", task: task("t", 5, 0), a: attempt{err: boom},
			want: decision{action: actDeadLetter, reason: warren.ReasonExhausted}, breaks: "a failing task would retry forever"},
		{name: "per-type policy exhausts", task: task("once", 1, 0), a: attempt{err: boom},
			want: decision{action: actDeadLetter, reason: warren.ReasonExhausted}, breaks: "RetryByType would be ignored"},
		{name: "per-type policy backs off", task: task("quick", 6, 0), a: attempt{err: boom},
			want: decision{action: actRetry, delay: 6 * time.Second}, breaks: "RetryByType's backoff would be ignored"},
		{name: "per-type policy yields to the task's cap", task: task("quick", 2, 2), a: attempt{err: boom},
			want: decision{action: actDeadLetter, reason: warren.ReasonExhausted}, breaks: "RetryByType would override a task's MaxAttempts"},

		// Held: the delivery cannot go on and its queue has nowhere to
		// dead-letter it to.
		{name: "unreadable under NoDeclare is held", task: task("t", 1, 0), a: attempt{unreadable: "too deep"}, noDeclare: true,
			want: decision{action: actHold, reason: warren.ReasonUnreadable}, errHas: "too deep",
			breaks: "a reject on a queue without a dead-letter target would drop the message"},
		{name: "unreadable on a dead-letter queue is held", task: on("q.dlq", task("t", 1, 0)), a: attempt{unreadable: "too deep"},
			want: decision{action: actHold, reason: warren.ReasonUnreadable}, errHas: "too deep",
			breaks: "a dead-letter queue has no dead-letter target: a reject would drop the message"},
		{name: "malformed on a dead-letter queue is held", task: on("q.dlq", task("", 1, 0)), a: attempt{malformed: boom},
			want:   decision{action: actHold, reason: warren.ReasonMalformed},
			breaks: "dead-lettering into the queue consumed would deliver the message again at once, in a loop"},
		{name: "exhausted on a dead-letter queue is held", task: on("q.dlq", task("t", 5, 0)), a: attempt{err: boom},
			want:   decision{action: actHold, reason: warren.ReasonExhausted},
			breaks: "dead-lettering into the queue consumed would run the task again at once, in a loop"},
		{name: "permanent on a dead-letter queue is held", task: on("q.dlq", task("t", 1, 0)), a: attempt{err: retry.Permanent(boom)},
			want:   decision{action: actHold, reason: warren.ReasonPermanent},
			breaks: "dead-lettering into the queue consumed would run the task again at once, in a loop"},
		{name: "unknown type on a dead-letter queue is held", task: on("q.dlq", task("t", 1, 0)), a: attempt{err: ErrUnknownType},
			want:   decision{action: actHold, reason: warren.ReasonUnknownType},
			breaks: "dead-lettering into the queue consumed would run the task again at once, in a loop"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decide(tc.task, tc.a, &rules{retry: policy, byType: byType, noDeclare: tc.noDeclare})
			if got.action != tc.want.action || got.reason != tc.want.reason || got.delay != tc.want.delay {
				t.Errorf("decide = {%s %q %s}, want {%s %q %s}: else %s", got.action, got.reason, got.delay,
					tc.want.action, tc.want.reason, tc.want.delay, tc.breaks)
			}
			switch cause := cmpErr(tc.a); {
			case tc.errHas != "":
				if got.err == nil || !strings.Contains(got.err.Error(), tc.errHas) {
					t.Errorf("err = %v, want one containing %q", got.err, tc.errHas)
				}
			case cause == nil:
				if got.err != nil {
					t.Errorf("err = %v, want nil", got.err)
				}
			case !errors.Is(got.err, cause):
				t.Errorf("err = %v, want %v", got.err, cause)
			}
		})
	}
}

// cmpErr is the error a decision about a must carry.
func cmpErr(a attempt) error {
	if a.malformed != nil {
		return a.malformed
	}
	return a.err
}

func TestDecideDefaultPolicyUsesJitteredBackoff(t *testing.T) {
	tk := &warren.Task{Type: "t", Attempt: 3}
	for range 50 {
		d := decide(tk, attempt{err: errors.New("x")}, &rules{})
		if d.action != actRetry || d.delay < retry.DefaultMin || d.delay > 4*retry.DefaultBase {
			t.Fatalf("zero policy, attempt 3: %s after %s, want a retry within [1s, 4s]", d.action, d.delay)
		}
	}
	d := decide(&warren.Task{Type: "t", Attempt: retry.DefaultMaxAttempts}, attempt{err: errors.New("x")}, &rules{})
	if d.action != actDeadLetter || d.reason != warren.ReasonExhausted {
		t.Errorf("zero policy at attempt %d: %s %q, want dead-letter exhausted", retry.DefaultMaxAttempts, d.action, d.reason)
	}
}
