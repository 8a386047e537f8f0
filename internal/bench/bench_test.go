package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentilesNearestRank(t *testing.T) {
	lat := make([]int64, 100)
	for i := range lat {
		lat[len(lat)-1-i] = int64(i+1) * int64(time.Millisecond) // 100..1 ms, unsorted
	}
	p50, p95, p99, pmax := percentiles(lat)
	if p50 != 50*time.Millisecond || p95 != 95*time.Millisecond || p99 != 99*time.Millisecond || pmax != 100*time.Millisecond {
		t.Errorf("got p50 %s p95 %s p99 %s max %s", p50, p95, p99, pmax)
	}
	if lat[0] != 100*int64(time.Millisecond) {
		t.Error("percentiles sorted its input")
	}
	if a, b, c, d := percentiles(nil); a|b|c|d != 0 {
		t.Error("empty input: want zeros")
	}
	one := []int64{7}
	if a, _, c, d := percentiles(one); a != 7 || c != 7 || d != 7 {
		t.Errorf("one sample: %d %d %d", a, c, d)
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	err := Options{Mode: "soak", Jobs: -1, Size: 8, Producers: -1, Batch: -1, Concurrency: -1, Prefetch: 70000,
		QueueType: "stream", HandlerLatency: -1, Rate: -1, RetryDelay: 100 * time.Millisecond, IdleSettle: -1}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"Mode", "Jobs", "Size", "Producers", "Batch", "Concurrency", "Prefetch", "QueueType", "HandlerLatency", "Rate", "RetryDelay", "IdleSettle"} {
		if !strings.Contains(err.Error(), "bench: "+want+" ") {
			t.Errorf("no problem named for %s in:\n%v", want, err)
		}
	}
	if err := (Options{}).Validate(); err != nil {
		t.Errorf("zero Options: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.Mode != ModeE2E || o.Jobs != DefaultJobs || o.Size != 256 || o.Producers != DefaultProducers || o.Batch != 1 ||
		o.Concurrency != 10 || o.Prefetch != 100 || o.QueueType != "quorum" || o.Rate != 0 || o.Logger == nil {
		t.Errorf("defaults: %+v", o)
	}
	r := Options{Mode: ModeRetry, Concurrency: 64}.withDefaults()
	if r.Jobs != DefaultRetryJobs || r.Rate != DefaultRetryRate || r.Prefetch != 128 {
		t.Errorf("retry defaults: %+v", r)
	}
}

func TestPayloadHeaderRoundTrip(t *testing.T) {
	b := newPayload(32)
	putHeader(b, 12345, -42)
	seq, stamp, ok := readHeader(b)
	if !ok || seq != 12345 || stamp != -42 {
		t.Errorf("got %d %d %v", seq, stamp, ok)
	}
	if _, _, ok := readHeader(b[:15]); ok {
		t.Error("short payload accepted")
	}
}

func TestRecorderCountsEachJobOnceAndFinishes(t *testing.T) {
	r := newRecorder(3, 0)
	body := func(seq uint64) []byte {
		b := newPayload(16)
		putHeader(b, seq, r.now())
		return b
	}
	r.handle(body(0))
	r.handle(body(0))             // a redelivery
	r.handle(body(99))            // not a job of this run
	r.handle([]byte("too short")) // not a job at all
	r.handle(body(1))
	select {
	case <-r.finished:
		t.Fatal("finished early")
	default:
	}
	r.record(2, -time.Millisecond) // ModeRetry may record a negative lateness
	select {
	case <-r.finished:
	default:
		t.Fatal("not finished")
	}
	if r.done.Load() != 3 || r.dup.Load() != 3 {
		t.Errorf("done %d dup %d", r.done.Load(), r.dup.Load())
	}
	if r.lat[2] != int64(-time.Millisecond) || r.lat[0] < 0 || r.first.Load() == 0 || r.last.Load() < r.first.Load() {
		t.Errorf("lat %v first %d last %d", r.lat, r.first.Load(), r.last.Load())
	}
	if err := r.wait(context.Background(), nil); err != nil {
		t.Errorf("wait after finish: %v", err)
	}
}

func TestRecorderWaitFailsWhenTheConsumerFails(t *testing.T) {
	r := newRecorder(1, 0)
	failed := make(chan error, 1)
	failed <- errors.New("channel closed")
	if err := r.wait(context.Background(), failed); err == nil || !strings.Contains(err.Error(), "channel closed") {
		t.Errorf("got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.wait(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v", err)
	}
}

func TestPacerSpacesJobs(t *testing.T) {
	p := newPacer(1000) // 1 ms apart
	start := time.Now()
	if err := p.wait(context.Background(), 20); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Errorf("job 20 at 1000/s started after %s, want about 20ms", d)
	}
	unlimited := newPacer(0)
	if err := unlimited.wait(context.Background(), 1<<40); err != nil {
		t.Error(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newPacer(1).wait(ctx, 100); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v", err)
	}
}

func TestProduceStampsEveryJobOnce(t *testing.T) {
	pub := &fakePublisher{seen: map[uint64]int{}}
	o := Options{Jobs: 1000, Producers: 7, Batch: 3}.withDefaults()
	rec := newRecorder(o.Jobs, 0)
	var published countingInt
	if err := produce(context.Background(), o, pub, rec, &published.Int64); err != nil {
		t.Fatal(err)
	}
	if len(pub.seen) != o.Jobs || published.Load() != int64(o.Jobs) {
		t.Fatalf("published %d distinct of %d (counted %d)", len(pub.seen), o.Jobs, published.Load())
	}
	for seq, n := range pub.seen {
		if n != 1 || seq >= uint64(o.Jobs) {
			t.Fatalf("job %d published %d times", seq, n)
		}
	}
	if pub.maxBatch != 3 {
		t.Errorf("largest batch %d, want 3", pub.maxBatch)
	}

	failing := &fakePublisher{seen: map[uint64]int{}, fail: errors.New("nacked")}
	err := produce(context.Background(), o, failing, newRecorder(o.Jobs, 0), &published.Int64)
	if err == nil || !strings.Contains(err.Error(), "nacked") {
		t.Errorf("failing publisher: got %v", err)
	}
}

type fakePublisher struct {
	mu       sync.Mutex
	seen     map[uint64]int
	maxBatch int
	fail     error
}

func (p *fakePublisher) publish(_ context.Context, bodies [][]byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.maxBatch = max(p.maxBatch, len(bodies))
	for _, b := range bodies {
		seq, _, ok := readHeader(b)
		if !ok || len(b) != 256 {
			return errors.New("bad payload")
		}
		p.seen[seq]++
	}
	return nil
}

func (p *fakePublisher) close() error { return nil }

func sampleReport(client string, scale float64) Report {
	return Report{
		Client: client, Mode: ModeE2E, Jobs: 100, Size: 256, Producers: 4, Batch: 1, Concurrency: 10, Prefetch: 20, QueueType: "quorum",
		PublishPerSec: 1000 * scale, ConsumePerSec: 900 * scale,
		LatencyP50: time.Duration(scale * float64(time.Millisecond)), LatencyP95: 2 * time.Millisecond,
		LatencyP99: 3 * time.Millisecond, LatencyMax: 4 * time.Millisecond,
		PeakRSSBytes: 10 << 20, AllocsPerJob: 50 * scale, BytesPerJob: 1000, CPUPerJob: 20 * time.Microsecond, Duration: time.Second,
	}
}

func TestResultJSONHasTheDocumentedKeys(t *testing.T) {
	w, b := sampleReport("warren", 0.9), sampleReport("bare", 1)
	res := Result{Report: w, Baseline: &b, Ratio: Ratios(w, b), Rounds: 1, Environment: Environment{CPUs: 2}}
	out, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	for _, k := range []string{"publish_per_sec", "consume_per_sec", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
		"latency_max_ms", "peak_rss_bytes", "allocs_per_job", "bytes_per_job", "cpu_us_per_job", "baseline", "ratio",
		"environment", "concurrency", "prefetch", "mode"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, out)
		}
	}
	if m["latency_p99_ms"] != 3.0 || m["publish_per_sec"] != 900.0 {
		t.Errorf("values: %s", out)
	}
	ratio := m["ratio"].(map[string]any)
	if ratio["publish_per_sec"] != 0.9 || ratio["latency_p95_ms"] != 1.0 {
		t.Errorf("ratio: %v", ratio)
	}
	base := m["baseline"].(map[string]any)
	if base["client"] != "bare" || base["latency_p50_ms"] != 1.0 {
		t.Errorf("baseline: %v", base)
	}

	var back Report
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if back != w {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, w)
	}
}

func TestMedianTakesEachFigureOnItsOwn(t *testing.T) {
	a, b, c := sampleReport("warren", 1), sampleReport("warren", 3), sampleReport("warren", 2)
	b.Redelivered = 2
	m := Median([]Report{a, b, c})
	if m.PublishPerSec != 2000 || m.LatencyP50 != 2*time.Millisecond || m.AllocsPerJob != 100 || m.Redelivered != 2 {
		t.Errorf("median: %+v", m)
	}
	even := Median([]Report{a, b})
	if even.PublishPerSec != 2000 {
		t.Errorf("even median: %v", even.PublishPerSec)
	}
	if one := Median([]Report{a}); one != a {
		t.Error("median of one")
	}
}

func TestWriteTable(t *testing.T) {
	w, b := sampleReport("warren", 0.9), sampleReport("bare", 1)
	var buf bytes.Buffer
	if err := WriteTable(&buf, w, &b); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"figure", "warren/bare", "publish msg/s", "900", "1,000", "0.90", "latency p99 ms", "3.00", "peak RSS MiB", "10.0", "client CPU µs/job"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	buf.Reset()
	w.Mode = ModePublish
	if err := WriteTable(&buf, w, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "consume") || strings.Contains(buf.String(), "latency") || strings.Contains(buf.String(), "bare") {
		t.Errorf("publish mode without baseline:\n%s", buf.String())
	}
}

func TestGroupThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -12345: "-12,345"} {
		if got := groupThousands(n); got != want {
			t.Errorf("%d: got %q want %q", n, got, want)
		}
	}
}

func TestProcStatus(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	resetPeakRSS()
	rss, peak := currentRSS(), peakRSS()
	if rss <= 0 || peak < rss/2 {
		t.Errorf("rss %d peak %d", rss, peak)
	}
	if procStatus("NoSuchField") != 0 {
		t.Error("unknown field")
	}
	if processCPU() <= 0 {
		t.Error("no CPU time")
	}
}

type countingInt struct{ atomic.Int64 }
