package admin

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
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
		got, err := ParseTime(c.in, now)
		if c.bad {
			if err == nil {
				t.Errorf("ParseTime(%q) accepted: %v", c.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(c.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}
