//go:build integration

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

func exists(t *testing.T, conn *broker.Conn, queue string) bool {
	t.Helper()
	_, err := broker.Inspect(context.Background(), conn, queue)
	if errors.Is(err, broker.ErrQueueNotFound) {
		return false
	}
	if err != nil {
		t.Fatalf("inspect %s: %v", queue, err)
	}
	return true
}

// deleteAlso deletes queue when the test ends, for queues a regression
// would leave behind.
func deleteAlso(t *testing.T, conn *broker.Conn, queue string) {
	t.Cleanup(func() {
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		defer ch.Close()
		_, _ = ch.QueueDelete(queue, false, false, false)
	})
}

// A worker consuming a dead-letter queue declares no dead-letter queue for
// it: no Q.dlq.dlq, before or after a task fails there.
func TestWorkerOnDeadLetterQueueDeclaresNoDLQOfItsOwn(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	dlq := warren.DeadLetterQueue(q)
	deleteAlso(t, conn, dlq+".dlq")
	if r := warrenRun(t, 30*time.Second, nil, "topology", "declare", "--queue", q); r.code != 0 {
		t.Fatalf("topology declare: exit %d\n%s", r.code, r.stderr)
	}
	publishDeadLetter(t, conn, q, "dl-ok", "archive", "boom")
	publishDeadLetter(t, conn, q, "dl-bad", "fail", "boom")
	dir := t.TempDir()
	h := filepath.Join(dir, "h.sh")
	if err := os.WriteFile(h, []byte("#!/bin/sh\ncat >/dev/null\n[ \"$WARREN_TASK_TYPE\" = archive ] && exit 0\necho still bad >&2\nexit 65\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	w := startWarren(t, nil, "worker", "--queue", dlq, "--exec", h)
	w.waitLog(30*time.Second, `msg="job succeeded"`, "task_id=dl-ok")
	w.waitLog(30*time.Second, "cannot go on", "task_id=dl-bad")
	// Held, not published back to the tail of the queue it came from,
	// where the same worker would run it again at once, again and again.
	if n := w.log.count("still bad"); n != 1 {
		t.Errorf("dl-bad ran %d times, want once", n)
	}
	w.signal(os.Interrupt)
	if code := w.wait(30 * time.Second); code != 0 {
		t.Fatalf("worker on %s: exit %d", dlq, code)
	}
	if n := w.log.count("still bad"); n != 1 {
		t.Errorf("dl-bad ran %d times, want once", n)
	}
	if exists(t, conn, dlq+".dlq") {
		t.Errorf("%s.dlq exists: a worker on a dead-letter queue declared one for it", dlq)
	}
	// The failed dead letter is back in the dead-letter queue, whole.
	m := getOne(t, conn, dlq, 10*time.Second)
	if m.MessageId != "dl-bad" || m.Headers[warren.HeaderError] != "boom" {
		t.Errorf("%s holds %s with error %v", dlq, m.MessageId, m.Headers[warren.HeaderError])
	}
}

// A vhost that does not exist is reported as such, not as "access refused".
func TestMissingVhostSaysSo(t *testing.T) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	vhost := "no-such-vhost-" + hex.EncodeToString(b[:])
	url := strings.TrimSuffix(testbroker.URL(), "/") + "/" + vhost
	r := warrenRun(t, 30*time.Second, nil, "--url", url, "queues", "--queue", "q")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, `vhost "`+vhost+`" does not exist`) || strings.Contains(strings.ToLower(r.stderr), "access refused") {
		t.Errorf("missing vhost reported as:\n%s", r.stderr)
	}
}

// enqueue --from-file: a line's "queue" that does not exist fails that
// line and is not created (a typo must not create a queue nobody
// consumes); one declared beforehand takes its task. A payload over the
// limit names the flag, not a Go field.
func TestFromFileLineQueues(t *testing.T) {
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	other := testbroker.Queue(t, conn)
	typo := q + "-typo"
	deleteAlso(t, conn, typo)
	deleteAlso(t, conn, warren.DeadLetterQueue(typo))
	if r := warrenRun(t, 30*time.Second, nil, "topology", "declare", "--queue", other); r.code != 0 {
		t.Fatalf("topology declare: exit %d\n%s", r.code, r.stderr)
	}
	in := `{"type":"a"}
{"type":"b","queue":"` + other + `"}
{"type":"c","queue":"` + typo + `"}
{"type":"d","payload":"` + strings.Repeat("x", 2000) + `"}
`
	r := warrenRun(t, 30*time.Second, strings.NewReader(in), "enqueue", "--queue", q, "--from-file", "-", "--max-payload-size", "1KiB")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (two lines failed)\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "line 3: queue "+typo+" does not exist") {
		t.Errorf("line 3 (missing queue) not reported:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "line 4:") || !strings.Contains(r.stderr, "--max-payload-size") || strings.Contains(r.stderr, "Config.") {
		t.Errorf("line 4 (too large) not reported with the flag:\n%s", r.stderr)
	}
	if exists(t, conn, typo) {
		t.Errorf("queue %s was created from a line", typo)
	}
	if n := ready(t, conn, q); n != 1 {
		t.Errorf("%d tasks in %s, want 1", n, q)
	}
	eventually(t, 10*time.Second, func() bool { return ready(t, conn, other) == 1 }, "the line for %s did not arrive", other)
}
