package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

type workerFlags struct {
	queues          []string
	concurrency     int
	prefetch        int
	exec            string
	handlerTimeout  time.Duration
	shutdownTimeout time.Duration
	consumerTimeout time.Duration
	maxAttempts     int
	retryBase       time.Duration
	retryCap        time.Duration
	noDeclare       bool
	metricsAddr     string
	pauseCheck      time.Duration
	heartbeat       time.Duration
	queueFlags
}

func (a *app) workerCmd() *cobra.Command {
	var f workerFlags
	cmd := &cobra.Command{
		Use:   "worker --queue Q [--queue Q2] --exec CMD",
		Short: "Run a worker that runs a command for each task",
		Long: `Consume the queues and run CMD once per task, until SIGINT or SIGTERM;
then stop taking tasks, let the running ones finish (up to
--shutdown-timeout) and exit 0.

CMD is split into words like a shell would, without expansions; write
sh -c '...' for shell syntax. It gets the payload on stdin and, in its
environment, WARREN_TASK_ID, WARREN_TASK_TYPE, WARREN_TASK_QUEUE,
WARREN_TASK_ATTEMPT (1 on the first run) and, when the task has a cap,
WARREN_TASK_MAX_ATTEMPTS. The worker's environment reaches it without the
variables of warren's command flags (WARREN_QUEUE, WARREN_MAX_ATTEMPTS,
WARREN_EXEC...: a warren that CMD runs is configured by CMD alone), without
WARREN_URL and without variables that look like credentials (names with
PASSWORD, SECRET, TOKEN, CREDENTIAL or KEY; values with a URL with a
password). CMD runs as the worker's user and can read the worker's own
environment and command line: give the URL with --url-file. Exit 0 is
success; exit 65 (EX_DATAERR) sends the task to the dead-letter queue at once;
any other failure is retried with backoff until --max-attempts.

With --metrics-addr, the worker serves on that address:
  /metrics  Prometheus metrics (warren_*, Go runtime and process)
  /healthz  200 while the process runs (liveness probe)
  /readyz   200 while it consumes every queue on a live connection, else
            503 with the reason (readiness probe): connecting, reconnecting,
            broker alarm, shutting down

The worker reconnects by itself when the broker goes away and comes back.
While a queue is paused (warren queue pause) it takes none of its tasks;
it checks every --pause-check-interval. Every --heartbeat-interval it
publishes a heartbeat (its queues, the tasks it runs, its counts) to the
exchange warren.heartbeats, for dashboards; a user that may not declare or
write that exchange gets one warning and no heartbeats.

Exit status: 0 after a graceful drain, 1 when the worker cannot start (broker
unreachable, access refused, --metrics-addr taken) or loses the broker for
good, 2 on bad input.`,
		Example: `  warren worker --queue emails --exec "./send-email.sh"
  warren worker --queue emails --concurrency 20 --exec "sh -c 'jq .to | mail-it'"
  warren worker --queue emails --queue reports --exec ./handle.sh --metrics-addr :9464
  warren worker --queue emails --exec ./send.sh --no-declare --log-format json`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error { return a.runWorker(cmd, &f) }),
	}
	fs := cmd.Flags()
	fs.StringSliceVarP(&f.queues, "queue", "q", nil, "`queue` to consume (repeatable, or comma-separated; required)")
	fs.IntVarP(&f.concurrency, "concurrency", "c", worker.DefaultConcurrency, "tasks run at once, across all queues")
	fs.IntVar(&f.prefetch, "prefetch", 0, "deliveries the broker sends ahead per queue (0: twice the concurrency, at least 100)")
	fs.StringVarP(&f.exec, "exec", "e", "", "`command` run for each task (required)")
	fs.DurationVar(&f.handlerTimeout, "handler-timeout", worker.DefaultHandlerTimeout, "kill a command (and its process group) running longer than this")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", worker.DefaultShutdownTimeout, "on shutdown, wait this long for running commands before killing them")
	fs.DurationVar(&f.consumerTimeout, "consumer-timeout", worker.DefaultConsumerTimeout, "the broker's consumer_timeout (the handler timeout must stay a minute under it)")
	fs.IntVar(&f.maxAttempts, "max-attempts", retry.DefaultMaxAttempts, "attempts per task, the first included, unless the task sets its own")
	fs.DurationVar(&f.retryBase, "retry-base", retry.DefaultBase, "backoff ceiling after the first failure (doubles each attempt, full jitter)")
	fs.DurationVar(&f.retryCap, "retry-cap", retry.DefaultCap, "longest backoff between attempts")
	fs.BoolVar(&f.noDeclare, "no-declare", false, "do not declare the queues (they must exist)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve /metrics, /healthz and /readyz on this `address` (like :9464)")
	fs.DurationVar(&f.pauseCheck, "pause-check-interval", worker.DefaultPauseCheckInterval, "check this often whether a queue is paused (warren queue pause); negative: never")
	fs.DurationVar(&f.heartbeat, "heartbeat-interval", worker.DefaultHeartbeatInterval, "publish a heartbeat for dashboards this often; negative: never")
	f.queueFlags.add(fs)
	_ = cmd.MarkFlagRequired("queue")
	_ = cmd.MarkFlagRequired("exec")
	return cmd
}

func (a *app) runWorker(cmd *cobra.Command, f *workerFlags) error {
	ctx := cmd.Context()
	// A flag's zero would mean the library's default: refuse it.
	if err := positive("concurrency", f.concurrency); err != nil {
		return err
	}
	if err := positive("max-attempts", f.maxAttempts); err != nil {
		return err
	}
	for name, d := range map[string]time.Duration{
		"handler-timeout": f.handlerTimeout, "shutdown-timeout": f.shutdownTimeout, "consumer-timeout": f.consumerTimeout,
		"retry-base": f.retryBase, "retry-cap": f.retryCap,
	} {
		if d <= 0 {
			return usagef("--%s must be positive (got %s)", name, d)
		}
	}
	// Said in the flags' words; cfg.Validate below checks them too.
	if f.handlerTimeout > f.consumerTimeout-time.Minute {
		return usagef("--handler-timeout %s must stay a minute under the broker's consumer_timeout (--consumer-timeout %s): "+
			"the broker would redeliver the task while it still runs", f.handlerTimeout, f.consumerTimeout)
	}
	if f.retryBase > f.retryCap {
		return usagef("--retry-base %s cannot exceed --retry-cap %s", f.retryBase, f.retryCap)
	}
	qo, err := f.queueFlags.options()
	if err != nil {
		return err
	}
	cfg := worker.Config{
		Queues:             f.queues,
		Concurrency:        f.concurrency,
		Prefetch:           f.prefetch,
		HandlerTimeout:     f.handlerTimeout,
		ShutdownTimeout:    f.shutdownTimeout,
		ConsumerTimeout:    f.consumerTimeout,
		Retry:              retry.Policy{MaxAttempts: f.maxAttempts, Base: f.retryBase, Cap: f.retryCap},
		QueueOptions:       qo,
		NoDeclare:          f.noDeclare,
		PauseCheckInterval: f.pauseCheck,
		HeartbeatInterval:  f.heartbeat,
		Version:            version,
		Logger:             a.log,
	}
	// worker.New checks the same, but only once connected.
	if err := cfg.Validate(); err != nil {
		return usage(namingFlags(err))
	}
	argv, err := worker.SplitCommand(f.exec)
	if err != nil {
		return usagef("--exec: %w", err)
	}
	h, err := worker.Exec(argv, worker.ExecConfig{Logger: a.log, Unset: commandEnv(cmd.Root())})
	if err != nil {
		return usagef("--exec: %w", err)
	}
	var ops *opsServer
	var observer worker.Observer
	if f.metricsAddr != "" {
		if err := checkAddr(f.metricsAddr); err != nil {
			return err
		}
		if ops, err = serveOps(f.metricsAddr, a.log); err != nil {
			return err
		}
		defer ops.Shutdown()
		observer = ops.Metrics
	}

	conn, err := a.dial(ctx, "worker", 5)
	if err != nil {
		return err
	}
	defer a.closeConn(conn)
	if ops != nil {
		ops.Metrics.AddConn(conn)
	}
	cfg.Observer = observer
	pool, err := worker.New(conn, h, cfg)
	if err != nil {
		return usage(err) // New only validates the configuration
	}
	if ops != nil {
		ops.pool.Store(pool)
	}
	if err := pool.Run(ctx); err != nil {
		if errors.Is(err, worker.ErrConnectionLost) {
			return fmt.Errorf("%w (exiting so that a supervisor restarts the worker)", err)
		}
		return err
	}
	return nil
}

// configFlags names the flags behind each worker.Config field that
// Config.Validate can find at fault.
var configFlags = map[string]string{
	"Queues":          "--queue",
	"Concurrency":     "--concurrency",
	"Prefetch":        "--prefetch",
	"HandlerTimeout":  "--handler-timeout, --consumer-timeout",
	"ShutdownTimeout": "--shutdown-timeout",
	"Retry":           "--max-attempts, --retry-base, --retry-cap",
	"QueueOptions":    "--queue-type, --delivery-limit",
}

// namingFlags prefixes each problem worker.Config.Validate found with the
// flags behind its field.
func namingFlags(err error) error {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = slices.Clone(j.Unwrap())
	}
	for i, e := range errs {
		var fe *worker.FieldError
		if errors.As(e, &fe) && configFlags[fe.Field] != "" {
			errs[i] = fmt.Errorf("%s: %w", configFlags[fe.Field], e)
		}
	}
	return errors.Join(errs...)
}
