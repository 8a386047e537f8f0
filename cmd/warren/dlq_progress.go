package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/internal/progress"
)

// barLabels name the counts of a bar: "replayed", "not selected", "failed".
type barLabels struct{ done, skipped, failed string }

// withProgress returns ctx with a progress bar on stderr when stderr is a
// terminal (ctx unchanged otherwise), and a function that erases the bar;
// call it before printing the summary.
func (a *app) withProgress(ctx context.Context, labels barLabels) (context.Context, func()) {
	bar := progress.New(a.stderr)
	if bar == nil {
		return ctx, func() {}
	}
	start := time.Now()
	return admin.WithProgress(ctx, func(p admin.Progress) { bar.Draw(labels.line(p, time.Since(start))) }), bar.Clear
}

// line is the bar's text for p, elapsed into the pass.
func (l barLabels) line(p admin.Progress, elapsed time.Duration) string {
	var s strings.Builder
	if p.Total > 0 {
		fmt.Fprintf(&s, "%s %d/%d", progress.Gauge(float64(p.Read)/float64(p.Total), 24), p.Read, p.Total)
	} else {
		fmt.Fprintf(&s, "%d", p.Read)
	}
	fmt.Fprintf(&s, "  %s %d", l.done, p.Done)
	if p.Skipped > 0 && l.skipped != "" {
		fmt.Fprintf(&s, ", %d %s", p.Skipped, l.skipped)
	}
	if p.Failed > 0 && l.failed != "" {
		fmt.Fprintf(&s, ", %d %s", p.Failed, l.failed)
	}
	if el := elapsed.Seconds(); el > 0 && p.Read > 0 {
		rate := float64(p.Read) / el
		fmt.Fprintf(&s, "  %.0f/s", rate)
		if left := p.Total - p.Read; left > 0 && p.Total > 0 {
			fmt.Fprintf(&s, "  ETA %s", (time.Duration(float64(left)/rate) * time.Second).Round(time.Second))
		}
	}
	return s.String()
}
