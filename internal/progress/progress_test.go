package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBar(t *testing.T) {
	var b bytes.Buffer
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	bar := newBar(&b, 0, func() time.Time { return now })
	bar.Draw("one")
	if b.String() != "\r\x1b[Kone" {
		t.Fatalf("drew %q", b.String())
	}
	b.Reset()
	now = now.Add(Every / 2)
	bar.Draw("two")
	if b.Len() != 0 {
		t.Errorf("redrawn within %s: %q", Every, b.String())
	}
	bar.width = 20
	now = now.Add(Every)
	bar.Draw(strings.Repeat("x", 50))
	if line := strings.TrimPrefix(b.String(), "\r\x1b[K"); len([]rune(line)) != 19 {
		t.Errorf("a bar on a 20-column terminal: %q", line)
	}
	b.Reset()
	bar.Clear()
	bar.Clear()
	if b.String() != "\r\x1b[K" {
		t.Errorf("clear wrote %q", b.String())
	}
}

func TestNilBarAndNoTerminal(t *testing.T) {
	var b bytes.Buffer
	bar := New(&b) // not a terminal
	if bar != nil {
		t.Fatal("a bar on a buffer")
	}
	bar.Draw("x")
	bar.Clear()
	if b.Len() != 0 {
		t.Errorf("a nil bar wrote %q", b.String())
	}
}

func TestGauge(t *testing.T) {
	for _, tt := range []struct {
		frac float64
		want string
	}{
		{0, "[          ]   0%"},
		{0.5, "[=====     ]  50%"},
		{1.5, "[==========] 100%"},
	} {
		if got := Gauge(tt.frac, 10); got != tt.want {
			t.Errorf("Gauge(%g) = %q, want %q", tt.frac, got, tt.want)
		}
	}
}
