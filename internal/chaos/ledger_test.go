package chaos

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestParseRecord(t *testing.T) {
	r, err := ParseRecord("1700000000000000000 confirmed p1-000001 42 0190abcd-ef")
	if err != nil {
		t.Fatal(err)
	}
	want := Record{At: time.Unix(0, 1700000000000000000), Event: EvConfirmed, Key: "p1-000001", PID: 42, Detail: "0190abcd-ef"}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v, want %+v", r, want)
	}
	r, err = ParseRecord("1 enqerr k 7 producer: enqueue k: broker: nacked")
	if err != nil || r.Detail != "producer: enqueue k: broker: nacked" {
		t.Errorf("detail with spaces: %+v, %v", r, err)
	}
	r, err = ParseRecord("1 up - 7")
	if err != nil || r.Key != "" || r.Detail != "" {
		t.Errorf("no key: %+v, %v", r, err)
	}
	for _, bad := range []string{"", "1 up -", "x up - 7", "1 up - x"} {
		if _, err := ParseRecord(bad); err == nil {
			t.Errorf("ParseRecord(%q) succeeded", bad)
		}
	}
}

func TestLedgerWriterAndReaderSkipAHalfWrittenLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.ledger")
	w, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(EvStart, "k1", "dc=0\nredelivered=false"); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(EvDone, "k1", ""); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	// A SIGKILL in the middle of a write leaves no newline.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	_, _ = f.WriteString("123 done k2")
	_ = f.Close()
	recs, err := ReadLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Detail != "dc=0 redelivered=false" || recs[1].Event != EvDone || recs[1].PID != os.Getpid() {
		t.Fatalf("records %+v", recs)
	}
}

func writeLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := f.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestIndexFollowsAppendedLines(t *testing.T) {
	dir := t.TempDir()
	w1 := filepath.Join(dir, "worker1.1.ledger")
	w2 := filepath.Join(dir, "worker2.1.ledger")
	p := filepath.Join(dir, "producer1.ledger")
	writeLines(t, p, "100 confirmed a 9 a", "101 confirmed b 9 b", "102 confirmed c 9 c")
	writeLines(t, w1, "100 up - 1 worker", "110 start a 1 dc=0", "111 start b 1 dc=0", "112 start c 1 dc=0", "120 done a 1")
	x := NewIndex(dir)
	if err := x.Refresh(); err != nil {
		t.Fatal(err)
	}
	if got := x.Running(1); !reflect.DeepEqual(got, []string{"b", "c"}) {
		t.Errorf("Running(1) = %v", got)
	}
	if c, d := x.Counts(); c != 3 || d != 1 {
		t.Errorf("Counts = %d, %d", c, d)
	}
	if n := x.Unfinished(); n != 2 {
		t.Errorf("Unfinished = %d", n)
	}
	// Worker 1 dies; worker 2 completes c and b; a half line is not read yet.
	writeLines(t, w2, "130 up - 2 worker", "140 start c 2 dc=1", "150 done c 2")
	f, _ := os.OpenFile(w2, os.O_APPEND|os.O_WRONLY, 0)
	_, _ = f.WriteString("160 done b 2")
	_ = f.Close()
	if err := x.Refresh(); err != nil {
		t.Fatal(err)
	}
	if got := x.Running(1); !reflect.DeepEqual(got, []string{"b"}) {
		t.Errorf("Running(1) after c was completed elsewhere = %v", got)
	}
	writeLines(t, w2, "")
	if err := x.Refresh(); err != nil {
		t.Fatal(err)
	}
	if got := x.Running(1); len(got) != 0 {
		t.Errorf("Running(1) after b was completed elsewhere = %v", got)
	}
	if at, ok := x.DoneAfter("c", time.Unix(0, 135)); !ok || at != time.Unix(0, 150) {
		t.Errorf("DoneAfter(c, 135) = %v, %v", at, ok)
	}
	if _, ok := x.DoneAfter("a", time.Unix(0, 135)); ok {
		t.Error("DoneAfter(a, 135): a was done at 120")
	}
	if at, ok := x.FirstAfter(2, EvDone, time.Unix(0, 145)); !ok || at != time.Unix(0, 150) {
		t.Errorf("FirstAfter(2, done, 145) = %v, %v", at, ok)
	}
	if _, ok := x.FirstAfter(2, EvReconnect, time.Unix(0, 0)); ok {
		t.Error("FirstAfter(reconnect): none written")
	}
	if _, ok := x.Last(2, EvUp); !ok {
		t.Error("Last(2, up) not found")
	}
	if n := x.DoneBetween(time.Unix(0, 100), time.Unix(0, 155)); n != 2 {
		t.Errorf("DoneBetween = %d, want 2", n)
	}
	if n := x.ConfirmedBetween(time.Unix(0, 100), time.Unix(0, 102)); n != 2 {
		t.Errorf("ConfirmedBetween = %d, want 2", n)
	}
	if x.DoneBy("c", 2) != 1 || x.DoneBy("c", 1) != 0 {
		t.Error("DoneBy")
	}
}

func recs(lines ...string) []Record {
	var out []Record
	for _, l := range lines {
		r, err := ParseRecord(l)
		if err != nil {
			panic(err)
		}
		out = append(out, r)
	}
	return out
}

func TestComputeTally(t *testing.T) {
	rs := recs(
		"1 confirmed s-000001 9 s-000001",
		"1 confirmed s-000002 9 s-000002",
		"1 confirmed s-000003 9 s-000003",
		"1 confirmed s-000004 9 s-000004",
		"1 confirmed s-poison-0 9 s-poison-0",
		"1 enqerr s-000005 9 nacked",
		"2 gaveup s-000005 9",
		"1 enqerr s-000006 9 nacked",
		"2 gaveup s-000006 9",
		"2 done s-000001 1",
		"3 done s-000001 2", // duplicate
		"2 start s-000002 1 dc=0",
		"2 start s-000003 1 dc=0", // dead-lettered by the delivery limit, never done
		"2 poison s-poison-0 1 dc=0",
		"3 poison s-poison-0 2 dc=1",
		"2 done s-000005 1",        // given up by the producer, stored anyway
		"2 start s-000007 1 dc=0",  // never confirmed (producer still trying), never done: lost
		"9 exit - 9 republished=2", // producer counters
		"9 exit - 1 voided=3 redelivered=4",
	)
	dead := map[string]DeadLetter{
		"s-poison-0": {Key: "s-poison-0", Reason: "delivery_limit", Copies: 1},
		"s-000003":   {Key: "s-000003", Reason: "delivery_limit", Copies: 1},
	}
	queued := map[string]int{"s-000004": 1}
	tl := Compute(rs, dead, queued)
	if tl.Confirmed != 5 || tl.ConfirmedPoison != 1 {
		t.Errorf("confirmed %d (%d poison)", tl.Confirmed, tl.ConfirmedPoison)
	}
	if tl.Completed != 2 || tl.Duplicates != 1 || tl.DuplicateKeys != 1 {
		t.Errorf("completed %d, duplicates %d on %d", tl.Completed, tl.Duplicates, tl.DuplicateKeys)
	}
	if tl.DeadLettered != 2 || tl.PoisonDeadLettered != 1 || tl.HealthyDeadLettered != 1 {
		t.Errorf("dead %d (%d poison, %d healthy)", tl.DeadLettered, tl.PoisonDeadLettered, tl.HealthyDeadLettered)
	}
	if want := []string{"s-000002", "s-000004", "s-000007"}; !reflect.DeepEqual(tl.Lost, want) {
		t.Errorf("lost %v, want %v", tl.Lost, want)
	}
	if want := []string{"s-000004"}; !reflect.DeepEqual(tl.StillQueued, want) {
		t.Errorf("still queued %v", tl.StillQueued)
	}
	if tl.Unconfirmed != 2 || tl.UnconfirmedCompleted != 1 || tl.EnqueueErrors != 2 {
		t.Errorf("unconfirmed %d (%d completed), %d enqueue errors", tl.Unconfirmed, tl.UnconfirmedCompleted, tl.EnqueueErrors)
	}
	if tl.PoisonDeaths != 2 || tl.DeathsPerPoison["s-poison-0"] != 2 {
		t.Errorf("poison deaths %d %v", tl.PoisonDeaths, tl.DeathsPerPoison)
	}
	if tl.Republished != 2 || tl.Voided != 3 || tl.Redelivered != 4 {
		t.Errorf("counters %+v", tl)
	}
	f := tl.Failures()
	if len(f) != 1 || !strings.Contains(f[0], "3 jobs neither completed nor dead-lettered (1 of them still on the queue)") {
		t.Errorf("failures %q", f)
	}
	var buf bytes.Buffer
	tl.Print(&buf, "")
	for _, want := range []string{"enqueued (confirmed)", "lost                               3", "(1 poison, 1 healthy by the delivery limit"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("printed ledger lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestComputeFailsOnPoisonNotDeadLettered(t *testing.T) {
	tl := Compute(recs("1 confirmed s-poison-0 9 x", "2 poison s-poison-0 1 dc=0"), nil, nil)
	f := tl.Failures()
	if len(f) != 2 || !strings.Contains(f[1], "poison jobs not in the dead-letter queue: s-poison-0") {
		t.Errorf("failures %q", f)
	}
}

func TestComputeCleanRun(t *testing.T) {
	tl := Compute(recs("1 confirmed a 9 a", "2 done a 1"), map[string]DeadLetter{}, nil)
	if len(tl.Failures()) != 0 || tl.Completed != 1 {
		t.Errorf("%+v", tl)
	}
	sum := tl.Add(tl)
	if sum.Confirmed != 2 || sum.Completed != 2 {
		t.Errorf("Add: %+v", sum)
	}
}

func TestRecoverySummary(t *testing.T) {
	faults := []FaultResult{
		{Kind: "kill-node", Metrics: []Metric{{Name: "back", D: 2 * time.Second, OK: true}}},
		{Kind: "kill-node", Metrics: []Metric{{Name: "back", D: 4 * time.Second, OK: true}}},
		{Kind: "kill-node", Metrics: []Metric{{Name: "back", D: 3 * time.Second, OK: true}}},
		{Kind: "kill-worker", Metrics: []Metric{{Name: "orphans", Note: "no job was running"}}},
	}
	var buf bytes.Buffer
	RecoverySummary(&buf, faults, "")
	out := buf.String()
	if !strings.Contains(out, "3    3.00s    4.00s") || !strings.Contains(out, "0      n/a      n/a") {
		t.Errorf("summary:\n%s", out)
	}
	buf.Reset()
	PrintFaults(&buf, faults, "")
	if !strings.Contains(buf.String(), "n/a  (no job was running)") {
		t.Errorf("faults:\n%s", buf.String())
	}
}

func TestDeathReasonIsTheLatest(t *testing.T) {
	h := amqp.Table{
		"x-first-death-reason": "expired",
		"x-death": []any{
			amqp.Table{"reason": "delivery_limit", "queue": "q"},
			amqp.Table{"reason": "expired", "queue": "warren.delay.0"},
		},
	}
	if got := deathReason(h); got != "delivery_limit" {
		t.Errorf("deathReason = %q, want delivery_limit", got)
	}
	if got := deathReason(amqp.Table{"warren-dead-reason": "permanent_error"}); got != "permanent_error" {
		t.Errorf("deathReason = %q, want permanent_error", got)
	}
}

func TestSumDelayLevelsCountsWhatWaitsForTheDeadLetterWorker(t *testing.T) {
	// rabbitmqctl list_queues name messages --formatter json, as 3.10.8
	// prints it: warren.delay.0 holds 29 messages none of which is ready
	// (dead-lettered, waiting for the target's confirm).
	out := "Timeout: 60.0 seconds ...\n" + `[
{"name":"warren.unroutable","messages":0},
{"name":"chaos-cluster","messages":5},
{"name":"warren.delay.0","messages":29},
{"name":"warren.delay.13","messages":2},
{"name":"chaos-cluster.dlq","messages":7}
]`
	n, err := sumDelayLevels(out)
	if err != nil {
		t.Fatal(err)
	}
	if n != 31 {
		t.Fatalf("sumDelayLevels = %d, want 31 (the warren.delay.* queues only)", n)
	}
	if _, err := sumDelayLevels("Error: unable to perform an operation on node"); err == nil {
		t.Fatal("sumDelayLevels accepted output without JSON")
	}
}
