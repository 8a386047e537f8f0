package testnode

import (
	"context"
	"os"
	"sync"
	"testing"
)

// Lazy starts one node for a whole test binary, the first time a test asks
// for it. Close it from TestMain after m.Run.
type Lazy struct {
	// Options shape the node. Options.Logf is ignored: progress goes to
	// the log of the test that started the node.
	Options Options
	// Setup, when set, runs once right after the node starts (certificates
	// already in place, users to create...). Its error fails the start.
	Setup func(ctx context.Context, n *Node) error

	once sync.Once
	node *Node
	err  error
}

// Get returns the node, starting it on first use. Without RabbitMQ, or when
// the node does not start, the test is skipped, or fails under CI=true.
func (l *Lazy) Get(t testing.TB) *Node {
	t.Helper()
	l.once.Do(func() {
		if l.err = Available(); l.err != nil {
			return
		}
		opts := l.Options
		opts.Logf = t.Logf
		ctx := context.Background()
		l.node, l.err = Start(ctx, opts)
		if l.err == nil && l.Setup != nil {
			if l.err = l.Setup(ctx, l.node); l.err != nil {
				_ = l.node.Close()
				l.node = nil
			}
		}
		if l.node != nil {
			l.node.cluster.logf = func(string, ...any) {} // t.Logf must not outlive t
		}
	})
	if l.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("private RabbitMQ node unavailable under CI=true: %v", l.err)
		}
		t.Skipf("private RabbitMQ node unavailable (set CI=true to fail instead): %v", l.err)
	}
	return l.node
}

// Close stops and removes the node, if it was started.
func (l *Lazy) Close() {
	l.once.Do(func() {}) // no start after Close
	if l.node != nil {
		_ = l.node.Close()
	}
}

// New starts a node for one test and closes it when the test ends. Prefer
// a Lazy shared by the test binary: each start costs several seconds.
func New(t testing.TB, opts Options) *Node {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("private RabbitMQ node unavailable under CI=true: %v", err)
		}
		t.Skipf("private RabbitMQ node unavailable: %v", err)
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	n, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("testnode: close: %v", err)
		}
	})
	return n
}
