//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// fillDLQ stores n dead letters dl-00000… in q's dead-letter queue, as a
// worker would, with publisher confirms. Dead letter i failed i hours ago
// with "dial tcp 10.0.0.<i%7>:5432: connection refused".
func fillDLQ(t *testing.T, conn *broker.Conn, q string, n int, typ func(i int) string) []string {
	t.Helper()
	ctx := testbroker.Context(t, 2*time.Minute)
	pub, err := broker.NewPublisher(conn, 256)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ids := make([]string, n)
	pend := make([]*broker.Pending, n)
	now := time.Now()
	for i := range n {
		ids[i] = fmt.Sprintf("dl-%05d", i)
		msg := broker.Encode(&warren.Task{ID: ids[i], Type: typ(i), Queue: q, Payload: []byte(`{"n":` + fmt.Sprint(i) + `}`), Attempt: 2, EnqueuedAt: now.Add(-time.Hour)})
		msg.Headers[warren.HeaderDeadReason] = string(warren.ReasonExhausted)
		msg.Headers[warren.HeaderError] = fmt.Sprintf("dial tcp 10.0.0.%d:5432: connection refused", i%7)
		msg.Headers[warren.HeaderFailedAt] = now.Add(-time.Duration(i) * time.Hour).UnixMilli()
		if pend[i], err = pub.Publish(ctx, "", warren.DeadLetterQueue(q), msg); err != nil {
			t.Fatal(err)
		}
	}
	for _, pd := range pend {
		if err := pd.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func oneType(int) string { return "job" }

// dlqQueue declares a Warren queue for a dlq test, with cleanup of its
// replay journal too.
func dlqQueue(t *testing.T, conn *broker.Conn) string {
	t.Helper()
	q := testbroker.Queue(t, conn)
	t.Cleanup(func() { testbroker.DeleteQueue(t, conn, admin.JournalQueue(q)) })
	if r := warrenRun(t, 30*time.Second, nil, "topology", "declare", "--queue", q); r.code != 0 {
		t.Fatalf("topology declare: exit %d\n%s", r.code, r.stderr)
	}
	return q
}

// TestReplayKilledReplaysExactlyOnce SIGKILLs `warren dlq replay --all` at
// several points of a 2,000 dead-letter replay, then runs it to the end:
// every dead letter must be replayed exactly once, none lost.
func TestReplayKilledReplaysExactlyOnce(t *testing.T) {
	const n = 2000
	conn := testbroker.Dial(t)
	q := dlqQueue(t, conn)
	dlq := warren.DeadLetterQueue(q)
	all := fillDLQ(t, conn, q, n, oneType)
	eventually(t, 30*time.Second, func() bool { return ready(t, conn, dlq) == n }, "dead letters not stored")

	kills := 0
	for _, at := range []int{150, 600, 1100, 1600} {
		p := startWarren(t, nil, "dlq", "replay", "--queue", q, "--all", "--output", "json")
		eventually(t, 60*time.Second, func() bool { return p.exited() || ready(t, conn, q) >= at }, "replay to reach %d", at)
		if p.exited() {
			// Busy (the lock of the run killed before may linger a moment) or done.
			t.Logf("replay exited %d before %d: %s", p.code, at, strings.TrimSpace(tail(p.log.String(), 300)))
			continue
		}
		p.signal(syscall.SIGKILL)
		p.wait(10 * time.Second)
		kills++
		t.Logf("killed at %d replayed (target holds %d)", at, ready(t, conn, q))
	}
	if kills < 2 {
		t.Fatalf("only %d runs were killed mid-replay", kills)
	}

	resumed := replayUntilEmpty(t, 2*time.Minute, func() cliResult {
		return warrenRun(t, time.Minute, nil, "dlq", "replay", "--queue", q, "--all", "--output", "json")
	}, conn, dlq)
	t.Logf("%d kills; the final runs removed %d dead letters already replayed", kills, resumed)
	eachOnce(t, conn, q, all)
	if got := ready(t, conn, dlq); got != 0 {
		t.Errorf("%s holds %d", dlq, got)
	}
}

// replayUntilEmpty runs replay (a dlq replay --all --output json) again
// while another holds the lock ("busy"), until dlq is empty, and returns
// how many dead letters the runs found already replayed (Resumed).
func replayUntilEmpty(t *testing.T, d time.Duration, replay func() cliResult, conn *broker.Conn, dlq string) (resumed int) {
	t.Helper()
	eventually(t, d, func() bool {
		r := replay()
		if r.code != 0 {
			if strings.Contains(r.stderr, "busy") {
				return false
			}
			t.Fatalf("replay: exit %d\n%s", r.code, r.stderr)
		}
		var res replayJSON
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("replay output: %v\n%s", err, r.stdout)
		}
		resumed += res.Resumed
		t.Logf("replay: replayed %d, resumed %d", res.Replayed, res.Resumed)
		return ready(t, conn, dlq) == 0
	}, "the DLQ to empty")
	return resumed
}

// eachOnce checks that q holds every task of all exactly once, and nothing else.
func eachOnce(t *testing.T, conn *broker.Conn, q string, all []string) {
	t.Helper()
	seen := make(map[string]int, len(all))
	for _, m := range getAll(t, conn, q) {
		seen[m.MessageId]++
	}
	for _, id := range all {
		if seen[id] != 1 {
			t.Errorf("task %s is in %s %d times", id, q, seen[id])
		}
	}
	if len(seen) != len(all) {
		t.Errorf("%s holds %d distinct tasks, want %d", q, len(seen), len(all))
	}
}

func TestDLQSelectorsAndGroupBy(t *testing.T) {
	conn := testbroker.Dial(t)
	q := dlqQueue(t, conn)
	dlq := warren.DeadLetterQueue(q)
	fillDLQ(t, conn, q, 30, func(i int) string { return []string{"a", "b", "c"}[i%3] })
	eventually(t, 30*time.Second, func() bool { return ready(t, conn, dlq) == 30 }, "dead letters not stored")
	ok := func(r cliResult) cliResult {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		return r
	}

	r := ok(warrenRun(t, 30*time.Second, nil, "dlq", "list", "--queue", q, "--group-by", "error", "--output", "json"))
	var groups []struct {
		Key   string `json:"key"`
		Count int    `json:"count"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &groups); err != nil || len(groups) != 1 || groups[0].Count != 30 ||
		groups[0].Key != "dial tcp <addr>: connection refused" {
		t.Fatalf("--group-by error: %v\n%s", err, r.stdout)
	}
	r = ok(warrenRun(t, 30*time.Second, nil, "dlq", "list", "--queue", q, "--group-by", "type"))
	if rows := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(rows) != 4 || !strings.HasPrefix(rows[1], "10 ") {
		t.Fatalf("--group-by type table:\n%s", r.stdout)
	}

	idsOf := func(out string) []string {
		var ids []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var dl struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal([]byte(line), &dl); err != nil {
				t.Fatalf("ndjson line %q: %v", line, err)
			}
			ids = append(ids, dl.ID)
		}
		return ids
	}
	r = ok(warrenRun(t, 30*time.Second, nil, "dlq", "list", "--queue", q, "--since", "9h30m", "--output", "ndjson"))
	if got := idsOf(r.stdout); len(got) != 10 || got[0] != "dl-00000" || got[9] != "dl-00009" {
		t.Fatalf("--since 9h30m: %v", got)
	}
	until := time.Now().Add(-25*time.Hour - 30*time.Minute).UTC().Format(time.RFC3339)
	r = ok(warrenRun(t, 30*time.Second, nil, "dlq", "list", "--queue", q, "--until", until, "--output", "ndjson"))
	if got := idsOf(r.stdout); len(got) != 4 || got[0] != "dl-00026" {
		t.Fatalf("--until %s: %v", until, got)
	}
	r = ok(warrenRun(t, 30*time.Second, nil, "dlq", "list", "--queue", q, "--error", `10\.0\.0\.3:`, "--type", "a", "--output", "ndjson"))
	if got := idsOf(r.stdout); len(got) != 2 || got[0] != "dl-00003" || got[1] != "dl-00024" {
		t.Fatalf("--error and --type: %v", got)
	}

	r = ok(warrenRun(t, 30*time.Second, nil, "dlq", "replay", "--queue", q, "--error", `10\.0\.0\.3:`, "--limit", "3"))
	if got := strings.Fields(r.stdout); len(got) != 3 || got[0] != "dl-00003" || got[2] != "dl-00017" {
		t.Fatalf("replay --error --limit 3: %v\n%s", got, r.stderr)
	}
	r = ok(warrenRun(t, 30*time.Second, nil, "dlq", "purge", "--queue", q, "--since", "4h30m", "--yes", "--output", "json"))
	var purged purgeJSON
	if err := json.Unmarshal([]byte(r.stdout), &purged); err != nil || purged.Purged != 4 || len(purged.IDs) != 4 {
		t.Fatalf("purge --since: %v\n%s", err, r.stdout)
	}
	if n := ready(t, conn, dlq); n != 30-3-4 { // dl-00003, replayed, was among the last 5h
		t.Fatalf("%d dead letters left", n)
	}
}

func TestDLQBusyAndWait(t *testing.T) {
	conn := testbroker.Dial(t)
	q := dlqQueue(t, conn)
	dlq := warren.DeadLetterQueue(q)
	fillDLQ(t, conn, q, 5, oneType)
	eventually(t, 30*time.Second, func() bool { return ready(t, conn, dlq) == 5 }, "dead letters not stored")
	// Hold the lock as another warren command would: its exclusive lock queue.
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	lock := "warren.lock." + dlq
	if _, err := ch.QueueDeclare(lock, false, true, true, false, amqp.Table{"x-queue-type": "classic"}); err != nil {
		t.Fatal(err)
	}
	r := warrenRun(t, 30*time.Second, nil, "dlq", "replay", "--queue", q, "--all")
	if r.code != 1 || !strings.Contains(r.stderr, "another replay or purge is running on "+dlq+"; try again when it ends") {
		t.Fatalf("replay while busy: exit %d\n%s", r.code, r.stderr)
	}
	p := startWarren(t, nil, "dlq", "replay", "--queue", q, "--all", "--wait", "--rate", "50/s")
	p.waitLog(30*time.Second, "waiting for the operation running on "+dlq)
	if _, err := ch.QueueDelete(lock, false, false, false); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("replay --wait: exit %d\n%s", code, p.log.String())
	}
	if !strings.Contains(p.log.String(), "replayed 5 dead letters") || ready(t, conn, q) != 5 {
		t.Fatalf("replay --wait:\n%s", p.log.String())
	}
}

// The --output json summaries of the dlq passes, as a script reads them.
type (
	replayJSON struct {
		Replayed, Resumed, Failed, Unreadable int
		IDs                                   []string
	}
	purgeJSON struct {
		Purged int
		IDs    []string
	}
	exportJSON struct {
		File                                   string
		Exported, Removed, Skipped, Unreadable int
	}
	importJSON struct {
		Queue                                 string
		Records, Imported, Duplicates, Failed int
	}
)
