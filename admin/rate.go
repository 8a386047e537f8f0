package admin

import (
	"context"
	"fmt"
	"time"
)

// bucket is a token bucket: take waits until a token is there. Tokens
// come at rate per second, up to burst stored. Its clock is injected.
type bucket struct {
	rate   float64 // tokens a second
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
}

func newBucket(rate float64, now func() time.Time, sleep func(context.Context, time.Duration) error) *bucket {
	burst := max(1, rate/10) // at most a tenth of a second's worth at once
	return &bucket{rate: rate, burst: burst, tokens: 1, last: now(), now: now, sleep: sleep}
}

// take waits for one token, or returns ctx's error.
func (b *bucket) take(ctx context.Context) error {
	for {
		now := b.now()
		if el := now.Sub(b.last); el > 0 {
			b.tokens = min(b.burst, b.tokens+el.Seconds()*b.rate)
		}
		b.last = now
		if b.tokens >= 1 {
			b.tokens--
			return nil
		}
		wait := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
		if err := b.sleep(ctx, max(wait, time.Microsecond)); err != nil {
			return err
		}
	}
}

// sleepCtx sleeps for d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("admin: replay rate limit: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}
