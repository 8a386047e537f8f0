//go:build integration && unix

package worker_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

var execQuiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// execEnv is a queue with a producer, and a pool running an Exec handler.
type execEnv struct {
	conn  *broker.Conn
	queue string
	prod  *producer.Producer
	dir   string // the handler's scratch directory
}

func newExecEnv(t *testing.T) *execEnv {
	t.Helper()
	conn := testbroker.Dial(t)
	q := testbroker.Queue(t, conn)
	ctx := testbroker.Context(t, 30*time.Second)
	p, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: execQuiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return &execEnv{conn: conn, queue: q, prod: p, dir: t.TempDir()}
}

// run starts a pool with an Exec handler of script (sh -c, with the
// scratch directory as $1) and returns a function that stops it and
// returns Run's error.
func (e *execEnv) run(t *testing.T, script string, cfg worker.Config) (stop func() error) {
	t.Helper()
	h, err := worker.Exec([]string{"sh", "-c", script, "sh", e.dir}, worker.ExecConfig{Logger: execQuiet})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Queues = []string{e.queue}
	cfg.Logger = execQuiet
	pool, err := worker.New(e.conn, h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	stopped := false
	var runErr error
	stop = func() error {
		if stopped {
			return runErr
		}
		stopped = true
		cancel()
		select {
		case runErr = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return 30s after its context ended")
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// pids reads the process IDs the handler wrote to $1/pids.
func (e *execEnv) pids(t *testing.T) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "pids"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("pids file: %v", err)
		}
		out = append(out, n)
	}
	return out
}

// running reports whether pid is a live process (a zombie is not).
func running(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

func until(t *testing.T, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(format, args...)
		}
		<-tick.C
	}
}

func (e *execEnv) getDead(t *testing.T, d time.Duration) amqp.Delivery {
	t.Helper()
	ch, err := e.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var m amqp.Delivery
	until(t, d, func() bool {
		var ok bool
		m, ok, err = ch.Get(warren.DeadLetterQueue(e.queue), true)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}, "nothing in %s after %s", warren.DeadLetterQueue(e.queue), d)
	return m
}

// The whole process group of a command past its handler timeout is killed,
// and the run counts as a failed attempt whose error says so.
func TestExecHandlerTimeoutKillsGroupAndCountsAsFailure(t *testing.T) {
	e := newExecEnv(t)
	e.run(t, `echo $$ >> "$1/pids"; sleep 60 & echo $! >> "$1/pids"; echo working >&2; sleep 60`,
		worker.Config{HandlerTimeout: 500 * time.Millisecond, Retry: retry.Policy{MaxAttempts: 1}})
	ctx := testbroker.Context(t, 10*time.Second)
	id, err := e.prod.Enqueue(ctx, e.queue, "slow", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	m := e.getDead(t, 20*time.Second)
	if m.MessageId != id {
		t.Fatalf("dead letter %s, want %s", m.MessageId, id)
	}
	msg := broker.HeaderString(m.Headers, warren.HeaderError)
	for _, want := range []string{"handler timeout", "killed", "working"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if r := broker.HeaderString(m.Headers, warren.HeaderDeadReason); r != string(warren.ReasonExhausted) {
		t.Errorf("reason %q", r)
	}
	pids := e.pids(t)
	if len(pids) != 2 {
		t.Fatalf("pids %v, want the command's and its child's", pids)
	}
	for _, pid := range pids {
		until(t, 5*time.Second, func() bool { return !running(pid) }, "process %d of the timed-out command still runs", pid)
	}
}

// A command still running when the shutdown timeout ends is killed with
// its group, and its task goes back to the queue without counting an attempt.
func TestExecCutOffByShutdownIsRequeued(t *testing.T) {
	e := newExecEnv(t)
	stop := e.run(t, `echo $$ >> "$1/pids"; sleep 60 & echo $! >> "$1/pids"; wait`,
		worker.Config{ShutdownTimeout: 200 * time.Millisecond})
	ctx := testbroker.Context(t, 10*time.Second)
	id, err := e.prod.Enqueue(ctx, e.queue, "slow", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	until(t, 20*time.Second, func() bool { return len(e.pids(t)) == 2 }, "the command did not start")
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %s to return with a 200ms shutdown timeout", d)
	}
	for _, pid := range e.pids(t) {
		until(t, 5*time.Second, func() bool { return !running(pid) }, "process %d still runs after the pool stopped", pid)
	}
	ch, err := e.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var m amqp.Delivery
	until(t, 10*time.Second, func() bool {
		var ok bool
		m, ok, err = ch.Get(e.queue, true)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}, "the cut-off task is not back in the queue")
	if m.MessageId != id {
		t.Fatalf("got %s, want %s", m.MessageId, id)
	}
	if task, err := broker.Decode(&m, e.queue); err != nil || task.Attempt != 1 {
		t.Errorf("attempt %d (%v), want 1: a cut-off run does not count", task.Attempt, err)
	}
	if st, err := broker.Inspect(ctx, e.conn, warren.DeadLetterQueue(e.queue)); err != nil || st.Ready != 0 {
		t.Errorf("dead-letter queue: %+v, %v", st, err)
	}
}
