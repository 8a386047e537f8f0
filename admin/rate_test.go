package admin

import (
	"context"
	"errors"
	"testing"
	"time"
)

// fakeClock advances only when the bucket sleeps.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) sleep(_ context.Context, d time.Duration) error {
	c.t = c.t.Add(d)
	return nil
}

func TestBucketRate(t *testing.T) {
	for _, rate := range []float64{1, 50, 1000} {
		c := &fakeClock{t: time.Unix(0, 0)}
		b := newBucket(rate, c.now, c.sleep)
		start := c.t
		n := int(rate * 10)
		for range n {
			if err := b.take(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		got := float64(n-1) / c.t.Sub(start).Seconds() // the first token is there at once
		if got < rate*0.95 || got > rate*1.05 {
			t.Errorf("rate %v: took %d in %s (%.1f/s)", rate, n, c.t.Sub(start), got)
		}
	}
}

func TestBucketBurstAfterIdle(t *testing.T) {
	c := &fakeClock{t: time.Unix(0, 0)}
	b := newBucket(100, c.now, c.sleep)
	c.t = c.t.Add(time.Hour) // idle: the bucket fills to its burst (10), no more
	start := c.t
	for range 10 {
		_ = b.take(context.Background())
	}
	if c.t != start {
		t.Errorf("the burst waited %s", c.t.Sub(start))
	}
	_ = b.take(context.Background())
	if c.t.Sub(start) != 10*time.Millisecond {
		t.Errorf("the 11th waited %s, want 10ms", c.t.Sub(start))
	}
}

func TestBucketCancelled(t *testing.T) {
	b := newBucket(1, time.Now, sleepCtx)
	_ = b.take(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.take(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("take on a cancelled context: %v", err)
	}
}
