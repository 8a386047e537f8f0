package testbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// URL is the broker the integration tests use: $WARREN_TEST_URL, or the
// local default.
func URL() string {
	if u := os.Getenv("WARREN_TEST_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// Dial connects to the test broker with a connection named after the test.
// When the broker is unreachable the test fails under CI=true and is
// skipped otherwise.
func Dial(t testing.TB) *broker.Conn {
	t.Helper()
	return DialNamed(t, broker.Config{Name: "test " + t.Name()})
}

var unsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// Queue returns a queue name unique to this test and run. The queue and its
// dead-letter queue are deleted when the test ends.
func Queue(t testing.TB, c *broker.Conn) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "test-" + strings.Trim(unsafe.ReplaceAllString(t.Name(), "-"), "-")
	if len(name) > 120 {
		name = name[:120]
	}
	name += "-" + hex.EncodeToString(b[:])
	t.Cleanup(func() { DeleteQueue(t, c, name) })
	return name
}

// DeleteQueue deletes name, its dead-letter queue and its replay journal,
// ignoring absent ones. When c is closed or down (the test may have closed
// it by now) it uses a fresh connection.
func DeleteQueue(t testing.TB, c *broker.Conn, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, q := range []string{name, warren.DeadLetterQueue(name), warren.DeadLetterQueue(name) + ".replayed"} {
		_, err := broker.DeleteQueue(ctx, c, q, broker.DeleteOptions{})
		if errors.Is(err, broker.ErrClosed) || errors.Is(err, broker.ErrNotConnected) {
			dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
			fresh, derr := broker.Dial(dctx, URL(), broker.Config{Name: "test cleanup", DialRetries: -1})
			dcancel()
			if derr != nil {
				t.Logf("cleanup of %s: %v", q, derr)
				return
			}
			defer fresh.Close()
			c = fresh
			_, err = broker.DeleteQueue(ctx, c, q, broker.DeleteOptions{})
		}
		if err != nil {
			t.Logf("cleanup of %s: %v", q, err)
		}
	}
}

// Context returns a context that ends with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// DialNamed is Dial with a connection name of the caller's choosing, for
// CloseConnection. Options in cfg other than Name are kept.
func DialNamed(t testing.TB, cfg broker.Config) *broker.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if cfg.DialRetries == 0 {
		cfg.DialRetries = 2
	}
	c, err := broker.Dial(ctx, URL(), cfg)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("broker unreachable under CI=true: %v", err)
		}
		t.Skipf("broker unreachable (set CI=true to fail instead): %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// CloseConnection makes the broker close every client connection named
// name (as `rabbitmqctl close_connection` does), and returns how many it
// closed. It needs rabbitmqctl on PATH and the right to run it.
func CloseConnection(t testing.TB, name string) int {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", "-q", "list_connections", "pid", "client_properties", "--no-table-headers").CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl list_connections: %v: %s", err, out)
	}
	n := 0
	want := `{"connection_name","` + name + `"}`
	for _, line := range strings.Split(string(out), "\n") {
		pid, props, ok := strings.Cut(line, "\t")
		if !ok || !strings.Contains(props, want) {
			continue
		}
		if out, err := exec.Command("rabbitmqctl", "-q", "close_connection", strings.TrimSpace(pid), "closed by test").CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl close_connection: %v: %s", err, out)
		}
		n++
	}
	return n
}
