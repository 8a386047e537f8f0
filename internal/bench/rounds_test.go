package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func benchResult(baseline bool) Result {
	w := Report{Client: "warren", Mode: "e2e", Jobs: 20000, Size: 256, Producers: 256, Batch: 1, Concurrency: 10, Prefetch: 20,
		QueueType: "quorum", PublishPerSec: 9000, ConsumePerSec: 8000, LatencyP50: 5 * time.Millisecond, LatencyP95: 9 * time.Millisecond,
		LatencyP99: 12 * time.Millisecond, LatencyMax: 20 * time.Millisecond, PeakRSSBytes: 20 << 20, AllocsPerJob: 100, BytesPerJob: 5000,
		CPUPerJob: 30 * time.Microsecond}
	res := Result{Report: w, Rounds: 3, Environment: Environment{GoVersion: "go1.26", OS: "linux", Arch: "amd64", CPUs: 2,
		BrokerProduct: "RabbitMQ", BrokerVersion: "3.10.8"}}
	if baseline {
		b := w
		b.Client, b.PublishPerSec, b.ConsumePerSec = "bare", 10000, 8000
		res.Baseline = &b
		res.Ratio = Ratios(w, b)
	}
	return res
}

func TestBenchTextOutput(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteText(&buf, benchResult(true)); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"e2e, 20000 jobs of 256 bytes on a quorum queue, 256 producers, concurrency 10, prefetch 20",
		"RabbitMQ 3.10.8", "medians of 3 rounds", "warren/bare", "publish msg/s", "9,000", "10,000", "0.90", "1.00", "latency p99 ms",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	buf.Reset()
	if err := WriteText(&buf, benchResult(false)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "bare") {
		t.Errorf("no baseline, yet:\n%s", buf.String())
	}
}

func TestProgressLine(t *testing.T) {
	if got := ProgressLine("warren e2e", 50, 100); !strings.HasPrefix(got, "warren e2e") || !strings.Contains(got, "50/100") || strings.Count(got, "=") != 15 {
		t.Errorf("got %q", got)
	}
	// More done than planned (redeliveries): the bar stays full.
	if got := ProgressLine("x", 150, 100); strings.Count(got, "=") != 30 {
		t.Errorf("got %q", got)
	}
}
