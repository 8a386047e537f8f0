package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/internal/progress"
)

// barLabels name the counts of a bar: "replayed", "not selected", "failed".
type barLabels struct{ done, skipped, failed string }

// pass runs fn, one pass over a dead-letter queue, with a progress bar
// labelled by labels on stderr when it is a terminal (none when labels are
// zero), and erases the bar before it returns. If lockQueue is busy, the
// pass fails with a clear message, or with wait, waits for the lock
// (admin.WithLockWait) until ctx ends.
func (a *app) pass(ctx context.Context, labels barLabels, wait bool, lockQueue string, fn func(ctx context.Context) error) error {
	if bar := progress.New(a.stderr); bar != nil && labels.done != "" {
		defer bar.Clear()
		start := time.Now()
		ctx = admin.WithProgress(ctx, func(p admin.Progress) { bar.Draw(labels.line(p, time.Since(start))) })
	}
	if wait {
		ctx = admin.WithLockWait(ctx, func(dlq string) {
			fmt.Fprintf(a.stderr, "waiting for the operation running on %s to end…\n", dlq)
		})
	}
	err := fn(ctx)
	if errors.Is(err, admin.ErrBusy) {
		return &busyError{dlq: lockQueue, err: err}
	}
	return err
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
