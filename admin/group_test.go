package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
)

func TestGrouper(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	dls := []DeadLetter{
		{ID: "1", Type: "a", Error: "dial tcp 10.0.0.7:5432: connection refused", FailedAt: t0},
		{ID: "2", Type: "b", Error: "timeout after 30s"},
		{ID: "3", Type: "a", Error: "dial tcp 10.0.0.9:5432: connection refused", FailedAt: t0.Add(time.Hour)},
		{ID: "4", Type: "a", Reason: warren.ReasonDeliveryLimit},
		{ID: "5", Type: "b", Error: "line one\nline two " + strings.Repeat("x", 300)},
	}
	add := func(g *Grouper) *Grouper {
		for _, dl := range dls {
			g.Add(g.Key(dl.Type, dl.Error, string(dl.Reason)), dl.ID, dl.Error, dl.FailedAt)
		}
		return g
	}
	got := add(NewGrouper(ByError)).Groups()
	if len(got) != 4 || got[0].Key != "dial tcp <addr>: connection refused" || got[0].Count != 2 || got[0].ExampleID != "1" ||
		got[0].Example != "dial tcp 10.0.0.7:5432: connection refused" ||
		!got[0].OldestFailure.Equal(t0) || !got[0].NewestFailure.Equal(t0.Add(time.Hour)) || got[1].Key != "timeout after <n>s" ||
		!got[1].OldestFailure.IsZero() || got[2].Key != "(no error: delivery_limit)" || !strings.HasPrefix(got[3].Example, "line one\nline two ") {
		t.Fatalf("groups by error: %+v", got)
	}
	if got := add(NewGrouper(ByType)).Groups(); len(got) != 2 || got[0].Key != "a" || got[0].Count != 3 || got[0].Example != "" || got[1].Count != 2 {
		t.Fatalf("groups by type: %+v", got)
	}
	if got := NewGrouper(ByError).Groups(); got == nil || len(got) != 0 {
		t.Fatalf("no groups: %#v, want an empty slice", got)
	}
}
