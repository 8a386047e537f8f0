//go:build integration

package admin

import (
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// TestBench100K fills a dead-letter queue with 100,000 small dead letters
// and times List, Get of the last one, a dry run and Replay --all. It runs
// only with WARREN_BENCH_100K=1 (it takes minutes):
//
//	WARREN_BENCH_100K=1 go test -tags integration -run TestBench100K -v -timeout 30m ./admin/
func TestBench100K(t *testing.T) {
	if os.Getenv("WARREN_BENCH_100K") != "1" {
		t.Skip("set WARREN_BENCH_100K=1 to run the 100,000 dead-letter benchmark")
	}
	const n = 100_000
	b := setup(t, broker.QueueOptions{})
	b.ctx = testbroker.Context(t, 25*time.Minute)

	start := time.Now()
	all := publishDead(t, b, n, typeAB)
	t.Logf("fill: %d dead letters in %s (%.0f/s)", n, time.Since(start).Round(time.Millisecond), rate(n, start))

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start = time.Now()
	dls := list(t, b, Filter{})
	t.Logf("List: %d in %s (%.0f/s)", len(dls), time.Since(start).Round(time.Millisecond), rate(len(dls), start))
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("List: heap grew by %.1f MiB holding the result", float64(after.HeapAlloc-before.HeapAlloc)/(1<<20))
	if len(dls) != n || !slices.Equal(ids(dls[:10]), all[:10]) || dls[n-1].ID != all[n-1] {
		t.Fatalf("List returned %d, first %v", len(dls), ids(dls[:10]))
	}
	dls = nil

	start = time.Now()
	if _, err := b.adm.Get(b.ctx, b.q, all[n-1]); err != nil {
		t.Fatal(err)
	}
	t.Logf("Get of the last: %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	res, err := b.adm.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{DryRun: true})
	if err != nil || res.Replayed != n {
		t.Fatalf("dry run: %d, %v", res.Replayed, err)
	}
	t.Logf("Replay dry run: %s (%.0f/s)", time.Since(start).Round(time.Millisecond), rate(n, start))

	start = time.Now()
	res, err = b.adm.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{})
	if err != nil || res.Replayed != n {
		t.Fatalf("Replay: %+v, %v", res.Replayed, err)
	}
	t.Logf("Replay --all: %d in %s (%.0f/s)", res.Replayed, time.Since(start).Round(time.Millisecond), rate(n, start))
	if got := ready(t, b, b.q); got != n {
		t.Fatalf("queue holds %d, want %d", got, n)
	}
	if got := ready(t, b, b.dlq); got != 0 {
		t.Fatalf("DLQ holds %d, want 0", got)
	}
}

func rate(n int, since time.Time) float64 { return float64(n) / time.Since(since).Seconds() }
