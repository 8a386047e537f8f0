package admin

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/warrenq/warren/internal/termtext"
)

// The text forms below are what `warren dlq list`, `dlq show` and `queues`
// print. Every string that comes from a task or the broker is escaped for
// a terminal (internal/termtext): a hostile task cannot rewrite the screen.

// maxErrorColumn bounds the ERROR column of WriteTable, in runes.
const maxErrorColumn = 72

// WriteTable writes dead letters as aligned columns: ID, type, attempts,
// age (since first enqueued, at now), failure time, reason and the first
// line of the error.
func WriteTable(w io.Writer, dls []DeadLetter, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tATTEMPTS\tAGE\tFAILED-AT\tREASON\tERROR")
	for _, dl := range dls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			cell(dl.ID), cell(dl.Type), attempts(dl), age(dl.EnqueuedAt, now), timestamp(dl.FailedAt),
			cell(string(dl.Reason)), cell(firstLine(strings.TrimPrefix(dl.Error, "worker: "), maxErrorColumn)))
	}
	return tw.Flush()
}

// WriteText writes dl in full: its fields, error, history, stack and payload.
func (dl DeadLetter) WriteText(w io.Writer, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, termtext.Line(v))
		}
	}
	row("ID", dl.ID)
	row("Type", dl.Type)
	row("Queue", dl.Queue)
	row("Reason", string(dl.Reason))
	row("Attempts", attempts(dl))
	if !dl.EnqueuedAt.IsZero() {
		row("Enqueued at", timestamp(dl.EnqueuedAt)+" ("+age(dl.EnqueuedAt, now)+" ago)")
	}
	row("Failed at", timestamp(dl.FailedAt))
	row("Worker", dl.WorkerHost)
	if dl.Duration > 0 {
		row("Duration", dl.Duration.String())
	}
	if dl.ReplayCount > 0 {
		row("Replays", fmt.Sprint(dl.ReplayCount))
	}
	row("Content type", dl.ContentType)
	if err := tw.Flush(); err != nil {
		return err
	}
	if dl.Error != "" {
		fmt.Fprintf(w, "\nError:\n%s\n", indent(termtext.Text(dl.Error)))
	}
	if len(dl.History) > 0 {
		fmt.Fprintln(w, "\nHistory:")
		for _, h := range dl.History {
			fmt.Fprintf(w, "  attempt %d at %s on %s (%s): %s\n", h.Attempt, timestamp(h.FailedAt), termtext.Line(h.Worker), h.Duration, termtext.Line(firstLine(h.Error, 200)))
		}
	}
	if dl.Stack != "" {
		fmt.Fprintf(w, "\nStack:\n%s\n", indent(termtext.Text(dl.Stack)))
	}
	_, err := fmt.Fprintf(w, "\nPayload (%d bytes):\n%s\n", len(dl.Payload), indent(termtext.Text(Printable(dl.Payload))))
	return err
}

// WriteGroups writes groups as aligned columns, the key (by) last.
func WriteGroups(w io.Writer, by GroupBy, groups []Group) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "COUNT\tFIRST-FAILED\tLAST-FAILED\tEXAMPLE-ID\t%s\n", strings.ToUpper(string(by)))
	for _, g := range groups {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", g.Count, timestamp(g.OldestFailure), timestamp(g.NewestFailure), cell(g.ExampleID), cell(firstLine(g.Key, maxErrorColumn)))
	}
	return tw.Flush()
}

// WriteQueues writes the depths of queues as aligned columns; a count
// that is unknown (-1) is "?", and a queue that does not exist says so.
// STATE is "paused" or "running" (workers may take its tasks; it says
// nothing of whether any do).
func WriteQueues(w io.Writer, queues []QueueInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tSTATE\tREADY\tUNACKED\tCONSUMERS\tDEAD\tDELAYED\tHELD")
	for _, q := range queues {
		if !q.Exists {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t%d\t%d\t%s\t(no such queue)\n", termtext.Line(q.Name), q.DeadLetters, q.Delayed, known(q.DelayedHeld))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\t%s\n", termtext.Line(q.Name), q.State(), q.Ready, known(q.Unacked), q.Consumers, q.DeadLetters, q.Delayed, known(q.DelayedHeld))
	}
	return tw.Flush()
}

// State is "paused" or "running", as `warren queues` and the dashboard
// show it.
func (q QueueInfo) State() string {
	if q.Paused {
		return "paused"
	}
	return "running"
}

// known prints a count that is -1 when unknown.
func known(n int) string {
	if n < 0 {
		return "?"
	}
	return fmt.Sprint(n)
}

func attempts(dl DeadLetter) string {
	if dl.Attempts == 0 {
		return "-"
	}
	if dl.MaxAttempts > 0 {
		return fmt.Sprintf("%d/%d", dl.Attempts, dl.MaxAttempts)
	}
	return fmt.Sprint(dl.Attempts)
}

// age is a short duration like 3d4h, 5m, 12s.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// cell makes s safe for a table cell: escaped for a terminal, one line,
// no tabs, "-" when empty.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, termtext.Line(s))
}

// firstLine returns the first non-empty line of s, cut to n runes.
func firstLine(s string, n int) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = strings.TrimSpace(s[:i]) + " …"
	}
	if utf8.RuneCountInString(s) > n {
		r := []rune(s)
		s = string(r[:n-1]) + "…"
	}
	return s
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}
