//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// fillDLQ stores n dead letters dl-00000… in q's dead-letter queue, as a
// worker would, with publisher confirms.
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
		msg.Headers[warren.HeaderFailedAt] = now.Add(-time.Duration(i) * time.Second).UnixMilli()
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

	resumed := 0
	eventually(t, 2*time.Minute, func() bool {
		r := warrenRun(t, time.Minute, nil, "dlq", "replay", "--queue", q, "--all", "--output", "json")
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
		t.Logf("final run: replayed %d, resumed %d", res.Replayed, res.Resumed)
		return ready(t, conn, dlq) == 0
	}, "the DLQ to empty")
	t.Logf("%d kills; the final runs removed %d dead letters already replayed", kills, resumed)

	seen := make(map[string]int, n)
	for _, m := range getAll(t, conn, q) {
		seen[m.MessageId]++
	}
	for _, id := range all {
		if seen[id] != 1 {
			t.Errorf("task %s is in %s %d times", id, q, seen[id])
		}
	}
	if len(seen) != n {
		t.Errorf("%s holds %d distinct tasks, want %d", q, len(seen), n)
	}
	if got := ready(t, conn, dlq); got != 0 {
		t.Errorf("%s holds %d", dlq, got)
	}
}
