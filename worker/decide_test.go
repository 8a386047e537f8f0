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
	tests := []struct {
		name   string
		task   *warren.Task
		a      attempt
		want   decision
		errHas string // decision.err's text must contain this ("" checks errors.Is(err, a's error))
	}{
		{name: "success", task: task("t", 1, 0), a: attempt{}, want: decision{action: actAck}},
		{name: "success on the last attempt", task: task("t", 5, 5), a: attempt{}, want: decision{action: actAck}},
		{name: "already done", task: task("t", 1, 0), a: attempt{err: fmt.Errorf("dedup: %w", ErrAlreadyDone)},
			want: decision{action: actSkip}},
		{name: "already done during shutdown", task: task("t", 1, 0),
			a: attempt{err: fmt.Errorf("%w: %w", ErrAlreadyDone, context.Canceled), shutdown: true}, want: decision{action: actSkip}},
		{name: "cancelled by shutdown", task: task("t", 5, 5), a: attempt{err: fmt.Errorf("wrapped: %w", context.Canceled), shutdown: true},
			want: decision{action: actRequeue}},
		{name: "cancelled without shutdown is a failure", task: task("t", 1, 0), a: attempt{err: context.Canceled},
			want: decision{action: actRetry, delay: 2500 * time.Millisecond}},
		{name: "other failure during shutdown is a failure", task: task("t", 1, 0), a: attempt{err: boom, shutdown: true},
			want: decision{action: actRetry, delay: 2500 * time.Millisecond}},
		{name: "unknown type", task: task("t", 1, 0), a: attempt{err: fmt.Errorf("mux: %w", ErrUnknownType)},
			want: decision{action: actDeadLetter, reason: warren.ReasonUnknownType}},
		{name: "malformed", task: task("", 1, 0), a: attempt{malformed: boom},
			want: decision{action: actDeadLetter, reason: warren.ReasonMalformed}},
		{name: "unreadable", task: task("t", 1, 0), a: attempt{unreadable: "header table nested 40 deep"},
			want: decision{action: actReject, reason: warren.ReasonUnreadable}, errHas: "unreadable message: header table nested 40 deep"},
		{name: "unreadable wins over malformed", task: task("", 1, 0), a: attempt{unreadable: "too many entries", malformed: boom},
			want: decision{action: actReject, reason: warren.ReasonUnreadable}, errHas: "too many entries"},
		{name: "permanent", task: task("t", 1, 0), a: attempt{err: retry.Permanent(boom)},
			want: decision{action: actDeadLetter, reason: warren.ReasonPermanent}},
		{name: "permanent past the cap stays permanent", task: task("t", 5, 0), a: attempt{err: retry.Permanent(boom)},
			want: decision{action: actDeadLetter, reason: warren.ReasonPermanent}},
		{name: "exhausted by the task's cap", task: task("t", 3, 3), a: attempt{err: boom},
			want: decision{action: actDeadLetter, reason: warren.ReasonExhausted}},
		{name: "the task's cap overrides the policy's", task: task("t", 6, 8), a: attempt{err: boom},
			want: decision{action: actRetry, delay: 30500 * time.Millisecond}},
		{name: "exhausted by the policy", task: task("t", 5, 0), a: attempt{err: boom},
			want: decision{action: actDeadLetter, reason: warren.ReasonExhausted}},
		{name: "retry with backoff", task: task("t", 2, 0), a: attempt{err: boom},
			want: decision{action: actRetry, delay: 4500 * time.Millisecond}},
		{name: "retry after the handler's delay", task: task("t", 2, 0), a: attempt{err: retry.After(7*time.Second, boom)},
			want: decision{action: actRetry, delay: 7 * time.Second}},
		{name: "retry after a negative delay is at once", task: task("t", 2, 0), a: attempt{err: retry.After(-time.Second, boom)},
			want: decision{action: actRetry, delay: 0}},
		{name: "the handler's delay does not outlive the cap", task: task("t", 5, 0), a: attempt{err: retry.After(time.Second, boom)},
			want: decision{action: actDeadLetter, reason: warren.ReasonExhausted}},
		{name: "per-type policy exhausts", task: task("once", 1, 0), a: attempt{err: boom},
			want: decision{action: actDeadLetter, reason: warren.ReasonExhausted}},
		{name: "per-type policy backs off", task: task("quick", 6, 0), a: attempt{err: boom},
			want: decision{action: actRetry, delay: 6 * time.Second}},
		{name: "per-type policy yields to the task's cap", task: task("quick", 2, 2), a: attempt{err: boom},
			want: decision{action: actDeadLetter, reason: warren.ReasonExhausted}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decide(tc.task, tc.a, policy, byType)
			if got.action != tc.want.action || got.reason != tc.want.reason || got.delay != tc.want.delay {
				t.Errorf("decide = {%s %q %s}, want {%s %q %s}", got.action, got.reason, got.delay, tc.want.action, tc.want.reason, tc.want.delay)
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
		d := decide(tk, attempt{err: errors.New("x")}, retry.Policy{}, nil)
		if d.action != actRetry || d.delay < retry.DefaultMin || d.delay > 4*retry.DefaultBase {
			t.Fatalf("zero policy, attempt 3: %s after %s, want a retry within [1s, 4s]", d.action, d.delay)
		}
	}
	d := decide(&warren.Task{Type: "t", Attempt: retry.DefaultMaxAttempts}, attempt{err: errors.New("x")}, retry.Policy{}, nil)
	if d.action != actDeadLetter || d.reason != warren.ReasonExhausted {
		t.Errorf("zero policy at attempt %d: %s %q, want dead-letter exhausted", retry.DefaultMaxAttempts, d.action, d.reason)
	}
}
