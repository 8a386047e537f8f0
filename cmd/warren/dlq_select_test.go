package main

import (
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
)

func TestParseWhen(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{"", time.Time{}, false},
		{"2h", now.Add(-2 * time.Hour), false},
		{"90m", now.Add(-90 * time.Minute), false},
		{"3d", now.Add(-72 * time.Hour), false},
		{"1d12h", now.Add(-36 * time.Hour), false},
		{"2025-02-28T10:00:00Z", time.Date(2025, 2, 28, 10, 0, 0, 0, time.UTC), false},
		{"2025-02-28T10:00:00+01:00", time.Date(2025, 2, 28, 9, 0, 0, 0, time.UTC), false},
		{"-2h", time.Time{}, true},
		{"yesterday", time.Time{}, true},
		{"2025-02-28", time.Time{}, true},
	} {
		got, err := parseWhen(c.in, now)
		if c.bad {
			if err == nil {
				t.Errorf("parseWhen(%q) accepted: %v", c.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(c.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestGrouper(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	dls := []admin.DeadLetter{
		{ID: "1", Type: "a", Error: "dial tcp 10.0.0.7:5432: connection refused", FailedAt: t0},
		{ID: "2", Type: "b", Error: "timeout after 30s"},
		{ID: "3", Type: "a", Error: "dial tcp 10.0.0.9:5432: connection refused", FailedAt: t0.Add(time.Hour)},
		{ID: "4", Type: "a", Reason: warren.ReasonDeliveryLimit},
	}
	g := newGrouper("error")
	for _, dl := range dls {
		g.add(dl)
	}
	got := g.sorted()
	if len(got) != 3 || got[0].Key != "dial tcp <addr>: connection refused" || got[0].Count != 2 || got[0].ExampleID != "1" ||
		!got[0].OldestFail.Equal(t0) || !got[0].NewestFail.Equal(t0.Add(time.Hour)) || got[1].Key != "timeout after <n>s" ||
		got[2].Key != "(no error: delivery_limit)" {
		t.Fatalf("groups by error: %+v", got)
	}
	var b strings.Builder
	if err := writeGroups(&b, "table", "error", got); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "COUNT") || !strings.Contains(b.String(), "2      2025-03-01T12:00:00Z") {
		t.Errorf("table:\n%s", b.String())
	}
	g = newGrouper("type")
	for _, dl := range dls {
		g.add(dl)
	}
	if got := g.sorted(); len(got) != 2 || got[0].Key != "a" || got[0].Count != 3 {
		t.Fatalf("groups by type: %+v", got)
	}
}
