package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// DeadLetter is one job found in the dead-letter queue at the end.
type DeadLetter struct {
	Key    string
	Reason string // x-first-death-reason, or warren-dead-reason
	Copies int
}

// Tally is the ledger of one scenario: what was enqueued, what became of it.
type Tally struct {
	Confirmed       int // distinct jobs whose Enqueue returned nil (poison included)
	ConfirmedPoison int
	// Completed counts distinct healthy jobs completed at least once.
	Completed int
	// Duplicates counts completions beyond each job's first, on DuplicateKeys jobs.
	Duplicates, DuplicateKeys int
	// DeadLettered counts distinct jobs found in the dead-letter queue.
	DeadLettered int
	// PoisonDeadLettered of them are poison jobs; HealthyDeadLettered are
	// healthy jobs dead-lettered by the delivery limit before any worker
	// completed them (their workers kept dying while holding them).
	PoisonDeadLettered, HealthyDeadLettered int
	// CompletedAndDeadLettered are healthy jobs completed and also dead-lettered
	// (a redelivered copy hit the limit after one worker had completed it).
	CompletedAndDeadLettered int
	// Lost lists jobs confirmed (or seen by a worker) that were neither
	// completed nor dead-lettered. StillQueued is the part of them found on
	// the queue at the end (not lost, but not done within the deadline).
	Lost, StillQueued []string
	// PoisonNotDeadLettered lists poison jobs that did not reach the DLQ.
	PoisonNotDeadLettered []string
	// Unconfirmed jobs were given up by their producer; UnconfirmedCompleted
	// of them were completed anyway (stored, but the confirm was lost).
	Unconfirmed, UnconfirmedCompleted int
	// CompletedNotConfirmed are completed jobs whose producer is still
	// retrying or never wrote a confirm (none expected).
	CompletedNotConfirmed int
	EnqueueErrors         int
	PoisonDeaths          int
	// DeathsPerPoison is the number of worker deaths of each poison job.
	DeathsPerPoison map[string]int
	// Producer and worker counters from the agents' exit lines (clean exits only).
	Republished, Voided, Redelivered, Requeued int
}

// IsPoison reports whether key names a poison job.
func IsPoison(key string) bool { return strings.Contains(key, "-poison-") }

// Compute builds the Tally of one scenario from its ledger records, the
// dead-letter queue and what was left on the queue.
func Compute(recs []Record, dead map[string]DeadLetter, queued map[string]int) Tally {
	var t Tally
	confirmed := map[string]bool{}
	gaveUp := map[string]bool{}
	done := map[string]int{}
	seen := map[string]bool{} // keys a worker saw: they exist on the broker
	t.DeathsPerPoison = map[string]int{}
	for _, r := range recs {
		switch r.Event {
		case EvConfirmed:
			confirmed[r.Key] = true
		case EvGaveUp:
			gaveUp[r.Key] = true
		case EvEnqErr:
			t.EnqueueErrors++
		case EvStart:
			seen[r.Key] = true
		case EvDone:
			seen[r.Key] = true
			done[r.Key]++
		case EvPoison:
			seen[r.Key] = true
			t.PoisonDeaths++
			t.DeathsPerPoison[r.Key]++
		case EvExit:
			for _, f := range strings.Fields(r.Detail) {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					continue
				}
				var n int
				_, _ = fmt.Sscan(v, &n)
				switch k {
				case "republished":
					t.Republished += n
				case "voided":
					t.Voided += n
				case "redelivered":
					t.Redelivered += n
				case "requeued":
					t.Requeued += n
				}
			}
		}
	}
	for k := range confirmed {
		t.Confirmed++
		if IsPoison(k) {
			t.ConfirmedPoison++
		}
		delete(gaveUp, k) // confirmed on a later try
	}
	for k := range gaveUp {
		t.Unconfirmed++
		if done[k] > 0 {
			t.UnconfirmedCompleted++
		}
	}
	for k, n := range done {
		t.Completed++
		if n > 1 {
			t.DuplicateKeys++
			t.Duplicates += n - 1
		}
		if !confirmed[k] && !gaveUp[k] {
			t.CompletedNotConfirmed++
		}
	}
	for k := range dead {
		t.DeadLettered++
		switch {
		case IsPoison(k):
			t.PoisonDeadLettered++
		case done[k] > 0:
			t.CompletedAndDeadLettered++
		default:
			t.HealthyDeadLettered++
		}
	}
	known := map[string]bool{}
	for k := range confirmed {
		known[k] = true
	}
	for k := range seen {
		known[k] = true
	}
	for k := range known {
		if done[k] > 0 {
			continue
		}
		if _, ok := dead[k]; ok {
			continue
		}
		t.Lost = append(t.Lost, k)
		if queued[k] > 0 {
			t.StillQueued = append(t.StillQueued, k)
		}
	}
	for k := range confirmed {
		if _, ok := dead[k]; IsPoison(k) && !ok {
			t.PoisonNotDeadLettered = append(t.PoisonNotDeadLettered, k)
		}
	}
	sort.Strings(t.Lost)
	sort.Strings(t.StillQueued)
	sort.Strings(t.PoisonNotDeadLettered)
	return t
}

// Add sums two tallies (for the total over scenarios).
func (t Tally) Add(o Tally) Tally {
	t.Confirmed += o.Confirmed
	t.ConfirmedPoison += o.ConfirmedPoison
	t.Completed += o.Completed
	t.Duplicates += o.Duplicates
	t.DuplicateKeys += o.DuplicateKeys
	t.DeadLettered += o.DeadLettered
	t.PoisonDeadLettered += o.PoisonDeadLettered
	t.HealthyDeadLettered += o.HealthyDeadLettered
	t.CompletedAndDeadLettered += o.CompletedAndDeadLettered
	t.Lost = append(append([]string(nil), t.Lost...), o.Lost...)
	t.StillQueued = append(append([]string(nil), t.StillQueued...), o.StillQueued...)
	t.PoisonNotDeadLettered = append(append([]string(nil), t.PoisonNotDeadLettered...), o.PoisonNotDeadLettered...)
	t.Unconfirmed += o.Unconfirmed
	t.UnconfirmedCompleted += o.UnconfirmedCompleted
	t.CompletedNotConfirmed += o.CompletedNotConfirmed
	t.EnqueueErrors += o.EnqueueErrors
	t.PoisonDeaths += o.PoisonDeaths
	t.Republished += o.Republished
	t.Voided += o.Voided
	t.Redelivered += o.Redelivered
	t.Requeued += o.Requeued
	return t
}

// Failures lists why the tally fails the run: lost jobs, poison jobs that
// were not dead-lettered.
func (t Tally) Failures() []string {
	var out []string
	if n := len(t.Lost); n > 0 {
		out = append(out, fmt.Sprintf("%d jobs neither completed nor dead-lettered (%d of them still on the queue): %s",
			n, len(t.StillQueued), sample(t.Lost, 10)))
	}
	if n := len(t.PoisonNotDeadLettered); n > 0 {
		out = append(out, fmt.Sprintf("%d poison jobs not in the dead-letter queue: %s", n, sample(t.PoisonNotDeadLettered, 10)))
	}
	return out
}

func sample(keys []string, n int) string {
	if len(keys) <= n {
		return strings.Join(keys, " ")
	}
	return strings.Join(keys[:n], " ") + fmt.Sprintf(" ... (%d more)", len(keys)-n)
}

// Print writes the tally as the ledger table.
func (t Tally) Print(w io.Writer, indent string) {
	row := func(label string, n int, note string) {
		if note != "" {
			note = "   " + note
		}
		fmt.Fprintf(w, "%s%-28s %7d%s\n", indent, label, n, note)
	}
	row("enqueued (confirmed)", t.Confirmed, fmt.Sprintf("(%d jobs + %d poison)", t.Confirmed-t.ConfirmedPoison, t.ConfirmedPoison))
	row("completed (unique)", t.Completed, "")
	row("duplicates", t.Duplicates, fmt.Sprintf("(extra completions, on %d jobs)", t.DuplicateKeys))
	row("dead-lettered", t.DeadLettered, fmt.Sprintf("(%d poison, %d healthy by the delivery limit, %d completed and dead-lettered)",
		t.PoisonDeadLettered, t.HealthyDeadLettered, t.CompletedAndDeadLettered))
	row("lost", len(t.Lost), stillQueuedNote(t))
	row("unconfirmed (given up)", t.Unconfirmed, fmt.Sprintf("(%d of them completed anyway)", t.UnconfirmedCompleted))
	row("enqueue errors (retried)", t.EnqueueErrors, fmt.Sprintf("(republished after a lost confirm: %d)", t.Republished))
	row("poison worker deaths", t.PoisonDeaths, deathsNote(t.DeathsPerPoison))
	row("voided runs", t.Voided, "(handler cancelled with its channel; clean exits only)")
}

func stillQueuedNote(t Tally) string {
	if len(t.StillQueued) == 0 {
		return ""
	}
	return fmt.Sprintf("(%d still on the queue)", len(t.StillQueued))
}

func deathsNote(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	counts := map[int]int{}
	for _, n := range m {
		counts[n]++
	}
	var ks []int
	for k := range counts {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%d job(s) x %d deaths", counts[k], k))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// Metric is one measured recovery time of a fault.
type Metric struct {
	Name string
	D    time.Duration
	OK   bool   // false: not measured (Note says why)
	Note string // e.g. the slowest agent
}

// FaultResult is one injected fault and how the system recovered.
type FaultResult struct {
	Kind    string
	At      time.Duration // since the scenario's start
	Target  string
	Metrics []Metric
	Note    string
}

// PrintFaults writes the fault table.
func PrintFaults(w io.Writer, faults []FaultResult, indent string) {
	for _, f := range faults {
		fmt.Fprintf(w, "%s%7.1fs  %-34s %s\n", indent, f.At.Seconds(), f.Kind, f.Target)
		for _, m := range f.Metrics {
			v := "n/a"
			if m.OK {
				v = fmtDur(m.D)
			}
			note := ""
			if m.Note != "" {
				note = "  (" + m.Note + ")"
			}
			fmt.Fprintf(w, "%s          %-40s %8s%s\n", indent, m.Name, v, note)
		}
		if f.Note != "" {
			fmt.Fprintf(w, "%s          %s\n", indent, f.Note)
		}
	}
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// RecoverySummary groups the recovery metrics by fault kind and metric
// name: count, median and max.
func RecoverySummary(w io.Writer, faults []FaultResult, indent string) {
	type key struct{ kind, name string }
	vals := map[key][]time.Duration{}
	var order []key
	for _, f := range faults {
		for _, m := range f.Metrics {
			k := key{f.Kind, m.Name}
			if _, ok := vals[k]; !ok {
				order = append(order, k)
				vals[k] = nil
			}
			if m.OK {
				vals[k] = append(vals[k], m.D)
			}
		}
	}
	fmt.Fprintf(w, "%s%-46s %-40s %5s %8s %8s\n", indent, "fault", "recovery", "n", "median", "max")
	for _, k := range order {
		v := vals[k]
		if len(v) == 0 {
			fmt.Fprintf(w, "%s%-46s %-40s %5d %8s %8s\n", indent, k.kind, k.name, 0, "n/a", "n/a")
			continue
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		fmt.Fprintf(w, "%s%-46s %-40s %5d %8s %8s\n", indent, k.kind, k.name, len(v), fmtDur(v[len(v)/2]), fmtDur(v[len(v)-1]))
	}
}
