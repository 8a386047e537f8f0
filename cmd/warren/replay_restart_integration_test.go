//go:build integration

package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/internal/testbroker"
)

// TestReplayAcrossABrokerRestartReplaysExactlyOnce stops and starts the
// (private) broker in the middle of `warren dlq replay --all` over 2,000
// dead letters, then runs the replay again until the dead-letter queue is
// empty: every dead letter must be in the queue exactly once, none lost.
// The SIGKILL case is TestReplayKilledReplaysExactlyOnce.
func TestReplayAcrossABrokerRestartReplaysExactlyOnce(t *testing.T) {
	const n = 2000
	node, _ := privateNode(t)
	url := node.URL()
	conn := dialNode(t, url)
	q := "replay-restart-" + randomHex(4)
	dlq := warren.DeadLetterQueue(q)
	t.Cleanup(func() {
		if ch, err := conn.Channel(); err == nil {
			for _, name := range []string{q, dlq, admin.JournalQueue(q)} {
				_, _ = ch.QueueDelete(name, false, false, false)
			}
			_ = ch.Close()
		}
	})
	if r := runOn(t, url, time.Minute, nil, "topology", "declare", "--queue", q); r.code != 0 {
		t.Fatalf("topology declare: exit %d\n%s", r.code, r.stderr)
	}
	all := fillDLQ(t, conn, q, n, oneType)
	eventually(t, 30*time.Second, func() bool { return ready(t, conn, dlq) == n }, "dead letters not stored")

	p := startOn(t, url, nil, "dlq", "replay", "--queue", q, "--all", "--output", "json")
	eventually(t, 2*time.Minute, func() bool { return p.exited() || ready(t, conn, q) >= 300 }, "the replay to get going")
	if p.exited() {
		t.Fatalf("the replay ended before the restart (exit %d): %s", p.code, tail(p.log.String(), 500))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := node.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	code := p.wait(2 * time.Minute)
	t.Logf("the replay interrupted by the restart exited %d: %s", code, strings.TrimSpace(tail(p.log.String(), 300)))
	if err := conn.Await(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("after the restart: %d in %s, %d in %s", ready(t, conn, q), q, ready(t, conn, dlq), dlq)

	resumed := replayUntilEmpty(t, 3*time.Minute, func() cliResult {
		return runOn(t, url, 2*time.Minute, nil, "dlq", "replay", "--queue", q, "--all", "--output", "json")
	}, conn, dlq)
	eachOnce(t, conn, q, all)
	t.Logf("%d dead letters replayed once each across a broker restart; the rerun removed %d already replayed", n, resumed)
}

// TestReplayInterruptedBySIGINTReplaysExactlyOnce: Ctrl-C in the middle of
// `warren dlq replay --all` stops it (exit 1, with a summary of what it
// did), and the next run finishes the job: every dead letter in the queue
// exactly once.
func TestReplayInterruptedBySIGINTReplaysExactlyOnce(t *testing.T) {
	const n = 1500
	conn := testbroker.Dial(t)
	q := dlqQueue(t, conn)
	dlq := warren.DeadLetterQueue(q)
	all := fillDLQ(t, conn, q, n, oneType)
	eventually(t, 30*time.Second, func() bool { return ready(t, conn, dlq) == n }, "dead letters not stored")

	p := startWarren(t, nil, "dlq", "replay", "--queue", q, "--all")
	eventually(t, time.Minute, func() bool { return p.exited() || ready(t, conn, q) >= 200 }, "the replay to get going")
	if p.exited() {
		t.Fatalf("the replay ended before the interrupt (exit %d)", p.code)
	}
	p.signal(os.Interrupt)
	if code := p.wait(30 * time.Second); code != 1 {
		t.Fatalf("replay after SIGINT: exit %d, want 1; stderr:\n%s", code, tail(p.log.String(), 1000))
	}
	if !strings.Contains(p.log.String(), "replayed") {
		t.Errorf("no summary after SIGINT:\n%s", tail(p.log.String(), 1000))
	}
	r := warrenRun(t, 2*time.Minute, nil, "dlq", "replay", "--queue", q, "--all", "--output", "json")
	if r.code != 0 {
		t.Fatalf("replay after the interrupt: exit %d\n%s", r.code, r.stderr)
	}
	if got := ready(t, conn, dlq); got != 0 {
		t.Fatalf("%d dead letters left after the second run", got)
	}
	eachOnce(t, conn, q, all)
}
