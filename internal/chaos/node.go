package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/warrenq/warren/internal/testnode"
)

// DirPrefix starts the name of every run directory the suite creates under
// os.TempDir(); SweepStale looks for leftovers by it.
const DirPrefix = "warren-chaos-"

// DeadLetterRetry is the dead_letter_worker_publisher_confirm_timeout of
// the suite's nodes, the setting docs/reliability.md recommends (section
// 7): how long RabbitMQ 3.10's at-least-once dead-letter worker waits
// before it forwards again a message whose target refused it, or did not
// confirm it. The broker's default is 180s.
const DeadLetterRetry = 10 * time.Second

// DefaultAdvancedConfig is the advanced.config of the suite's nodes
// (NodeOptions).
var DefaultAdvancedConfig = fmt.Sprintf("[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, %d}]}].", DeadLetterRetry.Milliseconds())

// PartitionHandling is the cluster_partition_handling of nodes on a Net.
// A node that finds itself on the minority side of a partition pauses
// (closes its client listeners) until the partition heals, then restarts
// and rejoins by itself: clients on its side stop instead of working
// against a minority, and no manual restart is needed. It is the mode
// RabbitMQ recommends for quorum queues.
const PartitionHandling = "pause_minority"

// NodeOptions are the suite's node settings: net_ticktime 10s,
// DefaultAdvancedConfig, the log level $CHAOS_NODE_LOG_LEVEL (if set),
// progress to logf. Extra rabbitmq.conf lines go in Config.
func NodeOptions(logf func(string, ...any)) testnode.Options {
	conf := "net_ticktime = 10\n"
	if lvl := os.Getenv("CHAOS_NODE_LOG_LEVEL"); lvl != "" {
		conf += "log.file.level = " + lvl + "\n"
	}
	return testnode.Options{Config: conf, Advanced: DefaultAdvancedConfig, StartTimeout: 150 * time.Second, Logf: logf}
}

// newCluster prepares the nodes of scenario sc under dir: n of them on
// 127.0.0.1, or one per namespace of nw (if not nil) with
// cluster_partition_handling set to PartitionHandling.
func newCluster(dir string, sc Scenario, nw *Net, logf func(string, ...any)) (*testnode.Cluster, error) {
	opts := testnode.ClusterOptions{Nodes: sc.Nodes, Tag: "chaos" + sc.Name, Node: NodeOptions(logf)}
	if nw != nil {
		opts.Net = nw
		opts.Node.Config += "cluster_partition_handling = " + PartitionHandling + "\n"
	}
	return testnode.NewCluster(dir, opts)
}

// SweepStale stops the nodes of earlier runs whose suite process died
// without cleaning up (a test binary killed by its -timeout), and removes
// their directories unless they were kept for inspection. Only processes
// whose command line names such a directory are signalled.
func SweepStale(logf func(string, ...any)) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), DirPrefix+"*"))
	for _, d := range dirs {
		var owners []string
		_ = filepath.WalkDir(d, func(path string, e os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if e.IsDir() && (e.Name() == "mnesia" || e.Name() == "log") {
				return filepath.SkipDir
			}
			if e.Name() == "owner" {
				owners = append(owners, path)
			}
			return nil
		})
		live := false
		for _, o := range owners {
			b, _ := os.ReadFile(o)
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && testnode.Alive(pid) {
				live = true
			}
		}
		if live || len(owners) == 0 {
			continue // a run in progress, or not one of ours
		}
		testnode.KillUnder(d, logf)
		if _, err := os.Stat(filepath.Join(d, "keep")); err == nil {
			continue // a failed run, kept for inspection
		}
		_ = os.RemoveAll(d)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
