package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"
)

// RoundsConfig tunes RunRounds. The zero value runs Warren once.
type RoundsConfig struct {
	// Rounds is how many times each client runs. 0 means 1.
	Rounds int
	// Baseline also runs the workload with bare amqp091-go, and fills the
	// Result's Baseline and Ratio.
	Baseline bool
	// CPUProfile and MemProfile, when set, are file name prefixes: each
	// client's runs write a CPU (allocation) profile to PREFIX-warren.pprof
	// and PREFIX-bare.pprof.
	CPUProfile, MemProfile string
	// Progress, if set, gives the Options.Progress of each run, labelled
	// "warren MODE" or "bare MODE", and a function called when it ends.
	Progress func(label string) (update func(done, total int), end func())
}

// RunRounds runs o c.Rounds times, and with c.Baseline the bare client as
// often, the two taking turns going first, so that neither always meets a
// broker warmed up (or worn out) by the other. Each figure of the Result is
// the median of the rounds; with more than one round, Runs holds them all.
func RunRounds(ctx context.Context, o Options, c RoundsConfig) (Result, error) {
	c.Rounds = cmp.Or(c.Rounds, 1)
	mode := cmp.Or(o.Mode, ModeE2E)
	env := Describe(o.URL)
	run := func(client string, fn func(context.Context, Options) (Report, error)) (Report, error) {
		o := o
		if c.Progress != nil {
			update, end := c.Progress(client + " " + mode)
			defer end()
			o.Progress = update
		}
		rep, err := c.profiled(client, func() (Report, error) { return fn(ctx, o) })
		if err != nil {
			return rep, fmt.Errorf("bench: %s: %w", client, err)
		}
		return rep, nil
	}
	var warrens, bares, runs []Report
	for i := range c.Rounds {
		order := []string{"warren"}
		if c.Baseline {
			order = append(order, "bare")
			if i%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
		}
		for _, client := range order {
			fn := Run
			if client == "bare" {
				fn = RunBaseline
			}
			rep, err := run(client, fn)
			if err != nil {
				return Result{}, err
			}
			runs = append(runs, rep)
			if client == "bare" {
				bares = append(bares, rep)
			} else {
				warrens = append(warrens, rep)
			}
		}
	}
	res := Result{Report: Median(warrens), Rounds: c.Rounds, Environment: env}
	if c.Rounds > 1 {
		res.Runs = runs
	}
	if c.Baseline {
		b := Median(bares)
		res.Baseline = &b
		res.Ratio = Ratios(res.Report, b)
	}
	return res, nil
}

// profiled runs one client's run under the CPU and allocation profilers
// that c asks for.
func (c RoundsConfig) profiled(client string, run func() (Report, error)) (Report, error) {
	if c.CPUProfile != "" {
		file, err := os.Create(c.CPUProfile + "-" + client + ".pprof")
		if err != nil {
			return Report{}, err
		}
		defer file.Close()
		if err := pprof.StartCPUProfile(file); err != nil {
			return Report{}, err
		}
		defer pprof.StopCPUProfile()
	}
	if c.MemProfile != "" {
		old := runtime.MemProfileRate
		runtime.MemProfileRate = 4096
		defer func() { runtime.MemProfileRate = old }()
		// Forget what was allocated before this run.
		runtime.GC()
	}
	rep, err := run()
	if c.MemProfile != "" && err == nil {
		runtime.GC()
		file, ferr := os.Create(c.MemProfile + "-" + client + ".pprof")
		if ferr != nil {
			return rep, ferr
		}
		defer file.Close()
		if werr := pprof.Lookup("allocs").WriteTo(file, 0); werr != nil {
			return rep, werr
		}
	}
	return rep, err
}

// WriteText writes res as warren bench prints it: the workload, the
// environment, then the table of figures (see WriteTable).
func WriteText(w io.Writer, res Result) error {
	r := res.Report
	fmt.Fprintf(w, "warren bench: %s, %s of %d bytes on a %s queue, %s",
		r.Mode, plural(r.Jobs, "job", "jobs"), r.Size, r.QueueType, plural(r.Producers, "producer", "producers"))
	if r.Batch > 1 {
		fmt.Fprintf(w, " × batch %d", r.Batch)
	}
	fmt.Fprintf(w, ", concurrency %d, prefetch %d", r.Concurrency, r.Prefetch)
	if r.HandlerLatencyMS > 0 {
		fmt.Fprintf(w, ", handler %s", time.Duration(r.HandlerLatencyMS*float64(time.Millisecond)))
	}
	if r.Rate > 0 {
		fmt.Fprintf(w, ", rate %g/s", r.Rate)
	}
	fmt.Fprintln(w)
	e := res.Environment
	broker := "broker version unknown"
	if e.BrokerVersion != "" {
		broker = cmp.Or(e.BrokerProduct, "broker") + " " + e.BrokerVersion
	}
	fmt.Fprintf(w, "%s, %s %s/%s, %d CPUs", broker, e.GoVersion, e.OS, e.Arch, e.CPUs)
	if res.Rounds > 1 {
		fmt.Fprintf(w, "; medians of %d rounds", res.Rounds)
	}
	fmt.Fprint(w, "\n\n")
	if err := WriteTable(w, r, res.Baseline); err != nil {
		return err
	}
	if r.Mode == ModeRetry {
		fmt.Fprintln(w, "\nretry late by: how long after its due time (the failure plus the delay) each retry started")
	}
	if r.Redelivered > 0 || (res.Baseline != nil && res.Baseline.Redelivered > 0) {
		fmt.Fprintln(w, "\nnote: some jobs were delivered more than once")
	}
	return nil
}

// ProgressLine is the progress bar of a run labelled label: jobs done of total.
func ProgressLine(label string, done, total int) string {
	const width = 30
	filled := 0
	if total > 0 {
		filled = min(done*width/total, width)
	}
	return fmt.Sprintf("%-14s [%s%s] %d/%d", label, strings.Repeat("=", filled), strings.Repeat(" ", width-filled), done, total)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
