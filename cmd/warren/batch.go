package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenq/warren/internal/progress"
	"github.com/warrenq/warren/internal/termtext"
	"github.com/warrenq/warren/producer"
)

// enqueueFile enqueues one task per line of --from-file
// (producer.EnqueueStream), printing IDs, failed lines and a summary.
func (a *app) enqueueFile(ctx context.Context, cmd *cobra.Command, f *enqueueFlags) error {
	if cmd.Flags().Changed("content-type") && !producer.IsJSON(f.contentType) {
		return usagef("--content-type %q cannot be used with --from-file: NDJSON payloads are JSON", f.contentType)
	}
	base, qo, err := a.commonEnqueueOptions(f)
	if err != nil {
		return err
	}
	var in io.Reader = a.stdin
	var total int64 // input size for the progress bar, 0 when unknown
	if f.fromFile != "-" {
		file, err := os.Open(f.fromFile)
		if err != nil {
			return usagef("--from-file: %w", err)
		}
		defer file.Close()
		if st, err := file.Stat(); err == nil && st.Mode().IsRegular() {
			total = st.Size()
		}
		in = file
	}

	return a.withProducer(ctx, f, qo, func(p *producer.Producer) error { return a.stream(ctx, p, f, base, in, total) })
}

// stream enqueues the lines of in (total bytes, 0 when unknown) with p,
// base the options of every line.
func (a *app) stream(ctx context.Context, p *producer.Producer, f *enqueueFlags, base []producer.Option, in io.Reader, total int64) error {
	start := time.Now()
	out := bufio.NewWriter(a.stdout)
	defer out.Flush()
	bar := progress.New(a.stderr)
	tot, err := p.EnqueueStream(ctx, in, producer.StreamConfig{
		Queue: f.queue, Type: f.taskType, Options: base,
		OnLine: func(r producer.LineResult) {
			if r.Err == nil {
				if f.printIDs {
					fmt.Fprintln(out, termtext.Line(r.ID))
				}
				return
			}
			err := enqueueError(r.Err, r.Queue)
			if errors.Is(r.Err, producer.ErrUnroutable) && r.Queue != f.queue {
				err = fmt.Errorf("queue %s does not exist: only --queue is declared (declare it with: warren topology declare --queue %s)", r.Queue, r.Queue)
			}
			bar.Clear()
			fmt.Fprintf(a.stderr, "warren: line %d: %s\n", r.Line, termtext.Text(a.secrets.Redact(strings.TrimPrefix(err.Error(), "warren: "))))
		},
		OnBatch: func(t producer.StreamTotals) {
			if f.printIDs {
				_ = out.Flush()
			}
			bar.Draw(progressLine(t, total, time.Since(start)))
		},
	})
	elapsed := time.Since(start)
	bar.Clear()
	fmt.Fprintf(a.stderr, "enqueued %d, failed %d in %.2fs (%.0f/s)\n", tot.Enqueued, tot.Failed, elapsed.Seconds(), float64(tot.Enqueued)/max(elapsed.Seconds(), 1e-9))
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted after %s: %w", plural(tot.Enqueued, "task", "tasks"), ctx.Err())
	case err != nil:
		return fmt.Errorf("read %s: %w", f.fromFile, err)
	case tot.Failed > 0:
		return fmt.Errorf("%d of %d jobs failed", tot.Failed, tot.Enqueued+tot.Failed)
	}
	return nil
}

// progressLine is the bar of enqueue --from-file: how far into the input
// (of total bytes, 0 when unknown), the counts and the rate.
func progressLine(t producer.StreamTotals, total int64, elapsed time.Duration) string {
	counts := fmt.Sprintf("%d enqueued, %d failed, %.0f/s", t.Enqueued, t.Failed, float64(t.Enqueued)/max(elapsed.Seconds(), 1e-3))
	if total > 0 {
		return progress.Gauge(float64(t.Bytes)/float64(total), 30) + "  " + counts
	}
	return counts
}
