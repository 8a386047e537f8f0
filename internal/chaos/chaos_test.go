//go:build chaos

package chaos_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/chaos"
	"github.com/warrenq/warren/internal/testnode"
)

// Knobs, from the environment:
//
//	CHAOS_JOBS        healthy jobs over all scenarios (default 2000)
//	CHAOS_DURATION    how long each scenario enqueues and injects faults (default 45s)
//	CHAOS_SCENARIOS   comma-separated: single,cluster,partition (default), or
//	                  poison (the blast radius of a poison job under the
//	                  library's defaults); partition needs root (network namespaces)
//	CHAOS_REPORT      also write the ledger to this file
//	CHAOS_KEEP=1      keep the run directory (ledgers, agent and node logs) even on success
func TestChaos(t *testing.T) {
	jobs := envInt(t, "CHAOS_JOBS", 2000)
	dur := envDuration(t, "CHAOS_DURATION", 45*time.Second)
	names := strings.Split(envString("CHAOS_SCENARIOS", "single,cluster,partition"), ",")

	if err := testnode.Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v; the chaos suite needs rabbitmq-server", err)
		}
		t.Skip(err)
	}

	// Leave time to stop the nodes before go test's own -timeout panics:
	// a panic skips every cleanup and would leave Erlang VMs behind.
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-90*time.Second))
		defer cancel()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	chaos.SweepStale(t.Logf)
	chaos.SweepNets(t.Logf)
	dir, err := os.MkdirTemp("", chaos.DirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := buildAgent(t, ctx, dir)

	var results []*chaos.Result
	perScenario := jobs / len(names)
	for _, name := range names {
		sc, ok := scenario(strings.TrimSpace(name), perScenario, dur)
		if !ok {
			t.Fatalf("CHAOS_SCENARIOS: unknown scenario %q (want single, cluster, partition or poison)", name)
		}
		if sc.Partitions && os.Geteuid() != 0 {
			if os.Getenv("CI") == "true" {
				t.Fatalf("scenario %s needs root (network namespaces)", sc.Name)
			}
			t.Logf("scenario %s skipped: it needs root (network namespaces)", sc.Name)
			continue
		}
		sdir := filepath.Join(dir, sc.Name)
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("scenario %s: %d jobs, %s, run directory %s", sc.Name, sc.Jobs, sc.Duration, sdir)
		res, err := chaos.Run(ctx, sc, chaos.Env{AgentBin: bin, Dir: sdir, Logf: t.Logf})
		if err != nil {
			keep(dir)
			t.Fatalf("scenario %s could not run: %v (run directory kept: %s)", sc.Name, err, dir)
		}
		results = append(results, res)
	}

	var report bytes.Buffer
	printReport(&report, results, jobs, dur)
	fmt.Print(report.String())
	if path := os.Getenv("CHAOS_REPORT"); path != "" {
		if err := os.WriteFile(path, report.Bytes(), 0o644); err != nil {
			t.Errorf("CHAOS_REPORT: %v", err)
		}
	}
	failed := false
	for _, res := range results {
		for _, f := range res.Failures() {
			failed = true
			t.Errorf("%s: %s", res.Scenario.Name, f)
		}
	}
	if failed || os.Getenv("CHAOS_KEEP") == "1" {
		keep(dir)
		t.Logf("run directory kept: %s", dir)
	} else {
		_ = os.RemoveAll(dir)
	}
}

// scenario returns the named scenario for jobs healthy jobs.
func scenario(name string, jobs int, dur time.Duration) (chaos.Scenario, bool) {
	sc := chaos.Scenario{
		Name:          name,
		Producers:     2,
		Workers:       3,
		Concurrency:   4,
		Prefetch:      8,
		DeliveryLimit: 3,
		Jobs:          jobs,
		Poison:        1 + int(dur/(5*time.Minute)),
		FlakyEvery:    10,
		Duration:      dur,
		MinSleep:      10 * time.Millisecond,
		MaxSleep:      250 * time.Millisecond,
		Hold:          8 * time.Second,
		Gap:           2 * time.Second,
		Settle:        2 * time.Minute,
	}
	switch name {
	case "single":
		sc.Nodes = 1
		sc.Faults = []string{
			chaos.FaultKillWorker, chaos.FaultTermWorker, chaos.FaultCloseConns, chaos.FaultKillWorker,
			chaos.FaultKillNode, chaos.FaultMixedConns, chaos.FaultMixedNode,
		}
	case "cluster":
		sc.Nodes = 3
		sc.Faults = []string{
			chaos.FaultStopNode, chaos.FaultKillNode, chaos.FaultStopMajority, chaos.FaultMixedConns,
			chaos.FaultKillWorker, chaos.FaultMixedLeader,
		}
	case "partition":
		// Each node in a network namespace of its own, agents on every
		// side, cluster_partition_handling = pause_minority; a cut
		// outlasts net_ticktime (10s).
		sc.Nodes = 3
		sc.Producers = 3
		sc.Partitions = true
		sc.Hold = 20 * time.Second
		// One cycle of these faults takes about 110s: producers enqueue
		// through all of it.
		sc.Duration = max(dur, 2*time.Minute)
		sc.Faults = []string{
			chaos.FaultPartitionLeader, chaos.FaultPartitionFollower, chaos.FaultFlapLink, chaos.FaultFreezeNode,
		}
	case "poison":
		// No scheduled fault: one poison job per producer among healthy
		// ones, with the library's defaults (prefetch, delivery limit 20),
		// to measure how many healthy jobs a poison job drags along.
		sc.Nodes = 1
		sc.Prefetch = 0
		sc.DeliveryLimit = 20
		sc.Faults = nil
	default:
		return sc, false
	}
	// Overrides for investigating one fault: CHAOS_FAULTS=stop-node,kill-node
	// replaces the cycle of every scenario; CHAOS_FLAKY_EVERY=n makes every
	// n-th job fail its first attempt.
	if v := os.Getenv("CHAOS_FAULTS"); v != "" {
		sc.Faults = strings.Split(v, ",")
	}
	if v := os.Getenv("CHAOS_FLAKY_EVERY"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			sc.FlakyEvery = n
		}
	}
	return sc, true
}

func printReport(w io.Writer, results []*chaos.Result, jobs int, dur time.Duration) {
	fmt.Fprintf(w, "\n==================== chaos ledger (CHAOS_JOBS=%d CHAOS_DURATION=%s, agents race-enabled: %v) ====================\n", jobs, dur, raceEnabled)
	var total chaos.Tally
	var faults []chaos.FaultResult
	for _, r := range results {
		r.Print(w)
		total = total.Add(r.Tally)
		for _, f := range r.Faults {
			f.Kind = r.Scenario.Name + ": " + f.Kind
			faults = append(faults, f)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "== total")
	total.Print(w, "  ")
	fmt.Fprintln(w, "== time to recover, by fault")
	chaos.RecoverySummary(w, faults, "  ")
	verdict := "PASS: no confirmed job lost; every job completed or dead-lettered"
	for _, r := range results {
		if len(r.Failures()) > 0 {
			verdict = "FAIL: see the FAIL lines above"
		}
	}
	fmt.Fprintln(w, "== "+verdict)
}

func buildAgent(t *testing.T, ctx context.Context, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "chaos-agent")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/chaos-agent")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(bctx, goBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("built %s (race %v) in %s", bin, raceEnabled, time.Since(start).Round(time.Millisecond))
	return bin
}

func keep(dir string) {
	_ = os.WriteFile(filepath.Join(dir, "keep"), []byte("kept for inspection\n"), 0o644)
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 10 {
		t.Fatalf("%s=%q: want an integer of at least 10", name, v)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 5*time.Second {
		t.Fatalf("%s=%q: want a duration of at least 5s", name, v)
	}
	return d
}
