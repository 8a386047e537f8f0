//go:build integration

package admin

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// TestBench100K fills a dead-letter queue with 100,000 small dead letters
// and times List, a count by error fingerprint (what dlq list --group-by
// error does), Export to a file, Export with Remove, Import of the file
// into the emptied queue, Import of it again (every record a duplicate)
// and Replay of all. It runs only with WARREN_BENCH_100K=1 (it takes
// minutes); WARREN_BENCH_N sets another number of dead letters:
//
//	WARREN_BENCH_100K=1 go test -tags integration -run TestBench100K -v -timeout 40m ./admin/
//	WARREN_BENCH_100K=1 WARREN_BENCH_N=20000 go test -tags integration -run TestBench100K -v ./admin/
func TestBench100K(t *testing.T) {
	if os.Getenv("WARREN_BENCH_100K") != "1" {
		t.Skip("set WARREN_BENCH_100K=1 to run the 100,000 dead-letter benchmark")
	}
	n := 100_000
	if s := os.Getenv("WARREN_BENCH_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 10 {
			t.Fatalf("WARREN_BENCH_N=%q: want a number of dead letters, at least 10", s)
		}
		n = v
	}
	b := setup(t, broker.QueueOptions{})
	b.ctx = testbroker.Context(t, 35*time.Minute)
	timed := func(what string, count int, fn func()) {
		t.Helper()
		start := time.Now()
		fn()
		t.Logf("%-28s %7d in %9s (%6.0f/s)", what+":", count, time.Since(start).Round(time.Millisecond), rate(count, start))
	}

	var all []string
	timed("fill", n, func() { all = publishDead(t, b, n, typeAB) })

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var dls []DeadLetter
	timed("List", n, func() { dls = list(t, b, Filter{}) })
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("List: heap grew by %.1f MiB holding the result", float64(after.HeapAlloc-before.HeapAlloc)/(1<<20))
	if len(dls) != n || !slices.Equal(ids(dls[:10]), all[:10]) || dls[n-1].ID != all[n-1] {
		t.Fatalf("List returned %d, first %v", len(dls), ids(dls[:10]))
	}
	dls = nil

	groups := map[string]int{}
	timed("group by error fingerprint", n, func() {
		if err := b.adm.Each(b.ctx, b.q, Filter{}, func(dl DeadLetter) error { groups[Fingerprint(dl.Error)]++; return nil }); err != nil {
			t.Fatal(err)
		}
	})
	if len(groups) != 1 {
		t.Fatalf("%d groups, want 1 (boom <n>)", len(groups))
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "dead.ndjson")
	export := func(path string, f Filter, o ExportOptions) ExportResult {
		fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		res, err := b.adm.Export(b.ctx, b.q, f, fh, o)
		if err != nil {
			t.Fatalf("Export: %+v, %v", res, err)
		}
		return res
	}
	timed("Export", n, func() {
		if res := export(file, Filter{}, ExportOptions{}); res.Exported != n {
			t.Fatalf("Export: %+v", res)
		}
	})
	if st, err := os.Stat(file); err == nil {
		t.Logf("Export: %.1f MiB, %d bytes a record", float64(st.Size())/(1<<20), st.Size()/int64(n))
	}
	if got := ready(t, b, b.dlq); got != n {
		t.Fatalf("DLQ holds %d after Export, want %d", got, n)
	}
	timed("Export with Remove", n, func() {
		if res := export(filepath.Join(dir, "removed.ndjson"), Filter{All: true}, ExportOptions{Remove: true}); res.Removed != n {
			t.Fatalf("Export with Remove: %+v", res)
		}
	})
	if got := ready(t, b, b.dlq); got != 0 {
		t.Fatalf("DLQ holds %d after Export with Remove, want 0", got)
	}

	importFile := func() ImportResult {
		fh, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		res, err := b.adm.Import(b.ctx, b.q, fh, ImportOptions{})
		if err != nil {
			t.Fatalf("Import: %+v, %v", res, err)
		}
		return res
	}
	timed("Import (empty queue)", n, func() {
		if res := importFile(); res.Imported != n {
			t.Fatalf("Import: %+v", res)
		}
	})
	waitCount(t, b, b.dlq, n)
	timed("Import again (duplicates)", n, func() {
		if res := importFile(); res.Imported != 0 || res.Duplicates != n {
			t.Fatalf("Import again: %+v", res)
		}
	})

	timed("Replay --all", n, func() {
		res, err := b.adm.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{})
		if err != nil || res.Replayed != n {
			t.Fatalf("Replay: %+v, %v", res.Replayed, err)
		}
	})
	if got := ready(t, b, b.q); got != n {
		t.Fatalf("queue holds %d, want %d", got, n)
	}
	if got := ready(t, b, b.dlq); got != 0 {
		t.Fatalf("DLQ holds %d, want 0", got)
	}
}

func rate(n int, since time.Time) float64 { return float64(n) / time.Since(since).Seconds() }
