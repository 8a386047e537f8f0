package dashboard

import (
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/warrenq/warren/admin"
)

func TestSummarize(t *testing.T) {
	in := interner{}
	long := strings.Repeat("é", 400) // 800 bytes
	dl := admin.DeadLetter{ID: "t-1", Type: "email", Queue: "q", Reason: "permanent",
		Error: "dial tcp 10.0.0.7:5432: connection refused\n" + long, Attempts: 3, MaxAttempts: 5,
		FailedAt: time.Unix(100, 0), Payload: []byte(`{"body":"` + long + `"}`)}
	s := summarize(dl, in)
	if !s.ErrorTruncated || len(s.Error) > maxIndexError || !utf8.ValidString(s.Error) {
		t.Errorf("error kept: %d bytes, truncated %v, valid %v", len(s.Error), s.ErrorTruncated, utf8.ValidString(s.Error))
	}
	if s.Fingerprint != admin.Fingerprint(dl.Error) || s.Fingerprint != "dial tcp <addr>: connection refused" {
		t.Errorf("fingerprint %q, want admin.Fingerprint's", s.Fingerprint)
	}
	if !s.PreviewCut || len(s.Preview) > maxIndexPreview || strings.HasPrefix(s.Preview, "base64:") {
		t.Errorf("preview: %d bytes, cut %v: %q", len(s.Preview), s.PreviewCut, s.Preview)
	}
	bin := summarize(admin.DeadLetter{ID: "b", Payload: []byte{0xff, 0xfe, 0}}, in)
	if bin.Preview != "base64://7+AA==" && !strings.HasPrefix(bin.Preview, "base64:") {
		t.Errorf("binary preview %q, want base64:", bin.Preview)
	}
	noErr := summarize(admin.DeadLetter{ID: "c", Reason: admin.ReasonDeliveryLimit}, in)
	if noErr.Fingerprint != "(no error: delivery_limit)" {
		t.Errorf("no-error key %q", noErr.Fingerprint)
	}
	s2 := summarize(admin.DeadLetter{ID: "t-2", Type: "email", Queue: "q"}, in)
	if unsafe.StringData(s2.Type) != unsafe.StringData(s.Type) || unsafe.StringData(s2.Queue) != unsafe.StringData(s.Queue) {
		t.Error("equal types and queues are not shared between summaries")
	}
}

func testEntries() []deadSummary {
	in := interner{}
	var out []deadSummary
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		typ := "a"
		if i%2 == 1 {
			typ = "b"
		}
		errText := fmt.Sprintf("timeout after %dms", i)
		if i >= 7 {
			errText = "card declined"
		}
		out = append(out, summarize(admin.DeadLetter{ID: fmt.Sprintf("id-%d", i), Type: typ, Error: errText,
			FailedAt: base.Add(time.Duration(i) * time.Hour)}, in))
	}
	return out
}

func TestDeadQuery(t *testing.T) {
	es := testEntries()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		q    deadQuery
		want int
	}{
		{deadQuery{}, 10},
		{deadQuery{Types: map[string]bool{"a": true}}, 5},
		{deadQuery{IDs: map[string]bool{"id-1": true, "id-9": true, "nope": true}}, 2},
		{deadQuery{Error: regexp.MustCompile(`^card`)}, 3},
		{deadQuery{Since: base.Add(2 * time.Hour), Until: base.Add(4 * time.Hour)}, 2},
		{deadQuery{Types: map[string]bool{"b": true}, Error: regexp.MustCompile(`timeout`)}, 3},
	} {
		got, exact := tc.q.filter(es)
		if len(got) != tc.want || !exact {
			t.Errorf("filter(%+v) = %d (exact %v), want %d", tc.q, len(got), exact, tc.want)
		}
	}
	es[0].ErrorTruncated = true
	if _, exact := (deadQuery{Error: regexp.MustCompile(`x`)}).filter(es); exact {
		t.Error("a regexp tried on a truncated error counted as exact")
	}
}

// TestIndexGroups checks that the index groups as admin.Group does:
// fingerprints, largest first, ties in order of appearance, the example
// and the failure span.
func TestIndexGroups(t *testing.T) {
	es := testEntries()
	all, _ := deadQuery{}.filter(es)
	gs := groups(all, admin.ByError)
	if len(gs) != 2 || gs[0].Key != "timeout after <n>ms" || gs[0].Count != 7 || gs[0].ExampleID != "id-0" ||
		gs[1].Key != "card declined" || gs[1].Count != 3 || gs[1].ExampleID != "id-7" {
		t.Fatalf("groups by error = %+v", gs)
	}
	if !gs[1].OldestFailure.Equal(es[7].FailedAt) || !gs[1].NewestFailure.Equal(es[9].FailedAt) {
		t.Errorf("failure span %v..%v", gs[1].OldestFailure, gs[1].NewestFailure)
	}
	gt := groups(all, admin.ByType)
	if len(gt) != 2 || gt[0].Key != "a" || gt[0].Count != 5 || gt[1].Key != "b" || gt[0].Example != "" {
		t.Errorf("groups by type = %+v", gt)
	}
	if g := groups(nil, admin.ByType); g == nil || len(g) != 0 {
		t.Errorf("no entries: %v, want []", g)
	}
}

// TestUnholdRemoves checks that an action's removed IDs leave the index,
// one summary per ID, so that it matches the broker's count again.
func TestUnholdRemoves(t *testing.T) {
	x := newDeadIndex(nil, nil, deadIndexConfig{})
	x.mu.Lock()
	qi := x.queue("q")
	qi.entries, qi.count, qi.built, qi.holds = testEntries(), 10, true, 1
	x.mu.Unlock()
	released := qi.released
	x.unhold(qi, []string{"id-1", "id-3"}, false)
	if len(qi.entries) != 8 || qi.count != 8 || qi.dirty {
		t.Errorf("after removing 2: %d entries, count %d, dirty %v", len(qi.entries), qi.count, qi.dirty)
	}
	select {
	case <-released:
	default:
		t.Error("waiters not released")
	}
	qi.holds = 1
	x.unhold(qi, []string{"id-404"}, false)
	if !qi.dirty {
		t.Error("removing an ID the index lacks did not mark it dirty")
	}
}

// TestIndexEntryBytes measures the memory of the index per dead letter
// (typical: a UUID, a short error, a small JSON payload), for the
// documentation in deadindex.go.
func TestIndexEntryBytes(t *testing.T) {
	const n = 20_000
	in := interner{}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	es := make([]deadSummary, 0, n)
	for i := range n {
		es = append(es, summarize(admin.DeadLetter{
			ID: fmt.Sprintf("0193c9a4-7f2e-7d3c-9b1a-%012d", i), Type: "email:send", Queue: "emails", Reason: "permanent",
			Error:    fmt.Sprintf("smtp 550 mailbox unavailable for user %d@example.com", i),
			Payload:  []byte(fmt.Sprintf(`{"to":"user%d@example.com","template":"welcome"}`, i)),
			FailedAt: time.Now(), EnqueuedAt: time.Now(), Attempts: 3,
		}, in))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("index: %.0f bytes per typical dead letter (fixed part %d)", per, sizeofSummary)
	if per > 1024 {
		t.Errorf("%.0f bytes per entry, over the documented bound", per)
	}
	runtime.KeepAlive(es)
}
