package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/warrenq/warren/admin"
)

// dlqBar draws the progress of a long dlq command (replay, purge, export,
// import) on one line of a terminal, at most every progressEvery.
type dlqBar struct {
	w       io.Writer
	labels  barLabels
	width   int // columns of the terminal; 0 if unknown
	start   time.Time
	last    time.Time
	shown   bool
	now     func() time.Time
	current admin.Progress
}

// barLabels name the counts of a bar: "replayed", "not selected", "failed".
type barLabels struct{ done, skipped, failed string }

// withProgress returns ctx with a progress bar on stderr when stderr is a
// terminal (ctx unchanged otherwise), and a function that erases the bar;
// call it before printing the summary.
func (a *app) withProgress(ctx context.Context, labels barLabels) (context.Context, func()) {
	f, ok := a.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return ctx, func() {}
	}
	b := &dlqBar{w: a.stderr, labels: labels, start: time.Now(), now: time.Now}
	if w, _, err := term.GetSize(int(f.Fd())); err == nil {
		b.width = w
	}
	return admin.WithProgress(ctx, b.update), b.clear
}

func (b *dlqBar) update(p admin.Progress) {
	b.current = p
	now := b.now()
	if now.Sub(b.last) < progressEvery {
		return
	}
	b.last = now
	line := b.line(p, now)
	if b.width > 1 && len([]rune(line)) >= b.width {
		line = string([]rune(line)[:b.width-1]) // a wrapped line cannot be redrawn
	}
	fmt.Fprintf(b.w, "\r\x1b[K%s", line)
	b.shown = true
}

// line is the bar's text for p.
func (b *dlqBar) line(p admin.Progress, now time.Time) string {
	const width = 24
	var s strings.Builder
	if p.Total > 0 {
		frac := min(float64(p.Read)/float64(p.Total), 1)
		n := int(frac * width)
		fmt.Fprintf(&s, "[%s%s] %3.0f%% %d/%d", strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100, p.Read, p.Total)
	} else {
		fmt.Fprintf(&s, "%d", p.Read)
	}
	fmt.Fprintf(&s, "  %s %d", b.labels.done, p.Done)
	if p.Skipped > 0 && b.labels.skipped != "" {
		fmt.Fprintf(&s, ", %d %s", p.Skipped, b.labels.skipped)
	}
	if p.Failed > 0 && b.labels.failed != "" {
		fmt.Fprintf(&s, ", %d %s", p.Failed, b.labels.failed)
	}
	el := now.Sub(b.start).Seconds()
	if el > 0 && p.Read > 0 {
		rate := float64(p.Read) / el
		fmt.Fprintf(&s, "  %.0f/s", rate)
		if left := p.Total - p.Read; left > 0 && p.Total > 0 {
			fmt.Fprintf(&s, "  ETA %s", (time.Duration(float64(left)/rate) * time.Second).Round(time.Second))
		}
	}
	return s.String()
}

func (b *dlqBar) clear() {
	if b.shown {
		fmt.Fprint(b.w, "\r\x1b[K")
		b.shown = false
	}
}
