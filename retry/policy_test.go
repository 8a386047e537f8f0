package retry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func fixed(v float64) func() float64 { return func() float64 { return v } }

func TestCeilingGrowsExponentiallyToCap(t *testing.T) {
	p := Policy{Base: time.Second, Cap: 10 * time.Second, Min: -1}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := p.Ceiling(i + 1); got != w {
			t.Errorf("Ceiling(%d) = %s, want %s", i+1, got, w)
		}
	}
	// A huge attempt number must not overflow.
	if got := p.Ceiling(1 << 30); got != 10*time.Second {
		t.Errorf("Ceiling(huge) = %s, want the cap", got)
	}
}

func TestBackoffIsFullJitterBetweenMinAndCeiling(t *testing.T) {
	p := Policy{Base: 4 * time.Second, Cap: time.Hour, Min: time.Second}
	if got := p.WithDefaults(); got.Min != time.Second {
		t.Fatalf("Min = %s", got.Min)
	}
	p.Rand = fixed(0)
	if got := p.Backoff(3); got != time.Second {
		t.Errorf("Backoff with rand 0 = %s, want the floor 1s", got)
	}
	p.Rand = fixed(0.5)
	// ceiling(3) = 16s; 1s + 0.5*(15s) = 8.5s
	if got := p.Backoff(3); got != 8500*time.Millisecond {
		t.Errorf("Backoff with rand 0.5 = %s, want 8.5s", got)
	}
	p.Rand = fixed(0.999999)
	if got := p.Backoff(3); got > 16*time.Second || got < 15*time.Second {
		t.Errorf("Backoff with rand ~1 = %s, want just under 16s", got)
	}
}

func TestBackoffSpreadsWithRealRandomness(t *testing.T) {
	p := Policy{Base: time.Second, Cap: time.Minute}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := p.Backoff(6) // ceiling 32s
		if d < time.Second || d > 32*time.Second {
			t.Fatalf("Backoff(6) = %s, outside [1s, 32s]", d)
		}
		seen[d.Round(time.Second)] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct delays in 200 draws: jitter is not working", len(seen))
	}
}

func TestDecide(t *testing.T) {
	p := Policy{MaxAttempts: 3, Base: time.Second, Cap: time.Minute, Rand: fixed(0)}
	boom := errors.New("boom")
	cases := []struct {
		name         string
		attempt, max int
		err          error
		retry, perm  bool
		delay        time.Duration
	}{
		{"first failure retries", 1, 0, boom, true, false, time.Second},
		{"second failure retries", 2, 0, boom, true, false, time.Second},
		{"last attempt exhausts", 3, 0, boom, false, false, 0},
		{"producer cap overrides policy", 2, 2, boom, false, false, 0},
		{"producer cap can raise it", 3, 5, boom, true, false, time.Second},
		{"permanent never retries", 1, 0, Permanent(boom), false, true, 0},
		{"wrapped permanent", 1, 0, fmt.Errorf("ctx: %w", Permanent(boom)), false, true, 0},
		{"after sets the delay", 1, 0, After(42*time.Second, boom), true, false, 42 * time.Second},
		{"after still counts attempts", 3, 0, After(time.Second, boom), false, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := p.Decide(c.attempt, c.max, c.err)
			if d.Retry != c.retry || d.Permanent != c.perm || (c.retry && d.Delay != c.delay) {
				t.Errorf("Decide(%d, %d, %v) = %+v, want retry=%v permanent=%v delay=%s", c.attempt, c.max, c.err, d, c.retry, c.perm, c.delay)
			}
		})
	}
}

func TestDefaultsAndValidate(t *testing.T) {
	d := Policy{}.WithDefaults()
	if d.MaxAttempts != DefaultMaxAttempts || d.Base != DefaultBase || d.Cap != DefaultCap || d.Min != DefaultMin {
		t.Errorf("defaults = %+v", d)
	}
	err := Policy{MaxAttempts: -1, Base: 2 * time.Hour, Cap: time.Hour}.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad policy")
	}
	for _, want := range []string{"MaxAttempts", "Base (2h0m0s) cannot exceed Cap"} {
		if !contains(err.Error(), want) {
			t.Errorf("Validate error %q lacks %q", err, want)
		}
	}
	if err := (Policy{}).Validate(); err != nil {
		t.Errorf("zero policy invalid: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestPermanentAndAfterUnwrap(t *testing.T) {
	base := errors.New("root cause")
	if !errors.Is(Permanent(base), base) {
		t.Error("Permanent does not unwrap")
	}
	if !errors.Is(After(time.Second, base), base) {
		t.Error("After does not unwrap")
	}
	if IsPermanent(base) || IsPermanent(nil) {
		t.Error("IsPermanent true for a plain error")
	}
	if Permanent(nil).Error() == "" {
		t.Error("Permanent(nil) has no message")
	}
}

func TestInfraRetrierRetriesOnlyTransient(t *testing.T) {
	transient := errors.New("transient")
	fatal := errors.New("fatal")
	r := Infra(3, time.Millisecond, func(err error) bool { return errors.Is(err, transient) })
	calls := 0
	err := r.Run(func() error { calls++; return transient })
	if !errors.Is(err, transient) || calls != 4 {
		t.Errorf("transient: err=%v calls=%d, want 4 calls", err, calls)
	}
	calls = 0
	err = r.Run(func() error { calls++; return fatal })
	if !errors.Is(err, fatal) || calls != 1 {
		t.Errorf("fatal: err=%v calls=%d, want 1 call", err, calls)
	}
}

func TestBreakerOpensAfterFailures(t *testing.T) {
	b := Breaker(2, time.Hour)
	boom := errors.New("boom")
	for range 2 {
		_ = b.Run(func() error { return boom })
	}
	if err := b.Run(func() error { return nil }); !errors.Is(err, ErrBreakerOpen) {
		t.Errorf("after 2 failures Run = %v, want ErrBreakerOpen", err)
	}
}

// A negative Min means no floor, through every method: WithDefaults must
// not turn it into 0, which a second WithDefaults (Backoff calls Ceiling)
// would read as "use DefaultMin" and put a 1 s floor back.
func TestNegativeMinMeansNoFloor(t *testing.T) {
	p := Policy{Base: 10 * time.Millisecond, Min: -1, Rand: func() float64 { return 0.5 }}
	if got := p.Ceiling(1); got != 10*time.Millisecond {
		t.Errorf("Ceiling(1) = %s, want 10ms", got)
	}
	if got := p.Backoff(1); got != 5*time.Millisecond {
		t.Errorf("Backoff(1) = %s, want 5ms (half of the 10ms ceiling, no floor)", got)
	}
	d := p.Decide(1, 3, errors.New("boom"))
	if !d.Retry || d.Delay != 5*time.Millisecond {
		t.Errorf("Decide = %+v, want a retry after 5ms", d)
	}
	if once, twice := p.WithDefaults(), p.WithDefaults().WithDefaults(); once.Min != twice.Min || once.Base != twice.Base {
		t.Errorf("WithDefaults is not idempotent: %+v then %+v", once, twice)
	}
}
