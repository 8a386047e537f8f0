//go:build integration

package broker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// TestLockExcludesHoldersAndDiesWithItsConnection takes a lock and checks
// that a second holder on the same Conn and one on another connection
// both get ErrLocked, that Release frees it, and that closing the holder's
// connection frees it too.
func TestLockExcludesHoldersAndDiesWithItsConnection(t *testing.T) {
	a := testbroker.Dial(t)
	b := testbroker.Dial(t)
	ctx := testbroker.Context(t, 60*time.Second)
	name := "warren.lock." + testbroker.Queue(t, a)

	l, err := broker.TryLock(ctx, a, name)
	if err != nil {
		t.Fatal(err)
	}
	for who, c := range map[string]*broker.Conn{"same Conn": a, "other connection": b} {
		_, err := broker.TryLock(ctx, c, name)
		if !errors.Is(err, broker.ErrLocked) || broker.OpOf(err) != broker.OpLock {
			t.Fatalf("%s: TryLock = %v (op %q), want ErrLocked with OpLock", who, err, broker.OpOf(err))
		}
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	lb, err := broker.TryLock(ctx, b, name)
	if err != nil {
		t.Fatalf("TryLock after Release: %v", err)
	}
	if _, err := broker.TryLock(ctx, a, name); !errors.Is(err, broker.ErrLocked) {
		t.Fatalf("TryLock while b holds it = %v, want ErrLocked", err)
	}
	_ = lb // held until b closes
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		la, err := broker.TryLock(ctx, a, name)
		if err == nil {
			if err := la.Release(ctx); err != nil {
				t.Fatal(err)
			}
			break
		}
		if !errors.Is(err, broker.ErrLocked) || time.Now().After(deadline) {
			t.Fatalf("TryLock after the holder's connection closed = %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
