package main

import (
	"strings"
	"testing"
	"time"

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

func TestWriteGroups(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	got := groupsJSON([]admin.Group{
		{Key: "dial tcp <addr>: connection refused", Count: 2, ExampleID: "1", OldestFailure: t0, NewestFailure: t0.Add(time.Hour)},
		{Key: "(no error: delivery_limit)", Count: 1, ExampleID: "4"},
		{Key: "panic: <x>", Count: 1, ExampleID: "5", Example: "panic: boom\ngoroutine 1 [running]:"},
	})
	if got[2].Example != "panic: boom …" {
		t.Errorf("example %q, want its first line", got[2].Example)
	}
	if got[0].OldestFail == nil || !got[0].OldestFail.Equal(t0) || got[1].OldestFail != nil || got[1].NewestFail != nil {
		t.Fatalf("groupsJSON: %+v", got)
	}
	var b strings.Builder
	if err := writeGroups(&b, "table", "error", got); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "COUNT") || !strings.Contains(b.String(), "2      2025-03-01T12:00:00Z") {
		t.Errorf("table:\n%s", b.String())
	}
	b.Reset()
	if err := writeGroups(&b, "json", "error", got); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"first_failed_at": "2025-03-01T12:00:00Z"`) || strings.Count(b.String(), "first_failed_at") != 1 {
		t.Errorf("json:\n%s", b.String())
	}
}
