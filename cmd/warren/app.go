package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/termtext"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// envPrefix starts the name of the environment variable of every flag:
// --handler-timeout is read from WARREN_HANDLER_TIMEOUT when not given.
const envPrefix = "WARREN_"

// noEnvAnnotation marks a flag that is never read from the environment:
// confirmations and selections of destructive commands (--yes, --all, the
// dlq selectors, --remove), files to read or write, and values that must
// differ per call (--id).
const noEnvAnnotation = "warren_no_env"

// usageError is bad input: an unknown flag, a missing or invalid value,
// flags that exclude each other. It exits with status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

func usage(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err: err}
}

// app is one run of the CLI: its streams, its environment and the global
// flags every command shares.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)

	url            string
	urlFile        string
	tlsCA          string
	tlsCert        string
	tlsKey         string
	logLevel       string
	logFormat      string
	connectTimeout time.Duration

	log     *slog.Logger
	secrets broker.Secrets // the URL's passwords, scrubbed from every message
	running bool           // a command's RunE was reached: input was accepted
}

// run runs the CLI with args (without the program name) and returns the
// exit status. Signals are the caller's business: ctx ending stops the
// command (a worker drains).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, lookupEnv: os.LookupEnv}
	return a.run(ctx, args)
}

func (a *app) run(ctx context.Context, args []string) int {
	root := a.rootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	err = explain(err)
	fmt.Fprintf(a.stderr, "warren: %s\n", termtext.Text(a.secrets.Redact(strings.TrimPrefix(err.Error(), "warren: "))))
	var ue *usageError
	if errors.As(err, &ue) || !a.running {
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	return exitFailure
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "warren",
		Short: "Warren: a fault-tolerant task queue on RabbitMQ",
		Long: `Warren enqueues tasks, runs workers and manages dead-letter queues on RabbitMQ.

Every flag can also be set in the environment as WARREN_<FLAG> in upper
snake case (--handler-timeout from WARREN_HANDLER_TIMEOUT, --url from
WARREN_URL); a flag given on the command line wins. What a command acts
on or confirms is never read from the environment: --yes, --id, and the dlq
selectors (--type, --all, --limit, --error, --since, --until), --remove,
--file and --from-file.

The broker URL is a secret: prefer WARREN_URL or --url-file to --url, which
other users of the machine can read in the process list. For amqps:// URLs,
--tls-ca names the CA that signed the broker's certificate (default: the
system's), and --tls-cert with --tls-key a client certificate; the broker's
host name (or IP address) must be one its certificate names.

Exit status: 0 on success, 1 on failure, 2 on bad input (unknown flag,
missing or invalid value).`,
		Example: `  export WARREN_URL=amqp://app:secret@rabbit.internal:5672/prod
  warren enqueue --queue emails --type send --payload '{"to":"a@example.com"}'
  warren worker --queue emails --exec ./send-email.sh --metrics-addr :9464
  warren dlq list --queue emails
  warren --url-file /run/secrets/amqp-url --tls-ca /etc/warren/ca.pem queues --queue emails`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: a.setup,
		Args:              cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Usage()
			return usagef("missing command")
		}),
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })

	pf := root.PersistentFlags()
	pf.StringVar(&a.url, "url", broker.DefaultURL, "broker `URL` (amqp://user:password@host:port/vhost)")
	pf.StringVar(&a.urlFile, "url-file", "", "read the broker URL from `file` (for secrets mounted as files)")
	pf.StringVar(&a.tlsCA, "tls-ca", "", "amqps: trust the CA certificates (PEM) in `file` instead of the system's")
	pf.StringVar(&a.tlsCert, "tls-cert", "", "amqps: present the client certificate (PEM) in `file` (with --tls-key)")
	pf.StringVar(&a.tlsKey, "tls-key", "", "amqps: the client certificate's private key (PEM) `file`")
	pf.StringVar(&a.logLevel, "log-level", "", "log `level`: debug, info, warn or error (default info for worker, warn for the other commands)")
	pf.StringVar(&a.logFormat, "log-format", "text", "log `format`: text or json")
	pf.DurationVar(&a.connectTimeout, "connect-timeout", 10*time.Second, "give up connecting to the broker after this `duration`")

	root.AddCommand(
		a.enqueueCmd(),
		a.workerCmd(),
		a.topologyCmd(),
		a.dlqCmd(),
		a.queuesCmd(),
		a.queueCmd(),
		a.dashboardCmd(),
		a.doctorCmd(),
		a.benchCmd(),
		a.versionCmd(),
		a.completionCmd(root),
	)
	root.CompletionOptions.DisableDefaultCmd = true // ours has the same generators, with examples
	registerCompletions(root)
	return root
}

// action wraps a command's RunE, marking that the command line was accepted.
func (a *app) action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.running = true
		return fn(cmd, args)
	}
}

// setup runs after flag parsing, before any command: it fills flags from
// the environment, reads the URL and builds the logger.
func (a *app) setup(cmd *cobra.Command, _ []string) error {
	if err := a.bindEnv(cmd.Flags()); err != nil {
		return err
	}
	fs := cmd.Flags()
	if fs.Changed("url-file") {
		if fs.Changed("url") {
			return usagef("--url and --url-file (or WARREN_URL and WARREN_URL_FILE) cannot be used together")
		}
		b, err := os.ReadFile(a.urlFile)
		if err != nil {
			return usagef("--url-file: %w", err)
		}
		a.url = strings.TrimSpace(string(b))
	}
	a.secrets = broker.URLSecrets(a.url)
	if err := broker.ValidateURL(a.url); err != nil && usesBroker(cmd) {
		return usagef("--url (or --url-file, WARREN_URL): %w", err)
	}

	var level slog.Level
	if a.logLevel == "" && cmd.Name() != "worker" {
		a.logLevel = "warn" // one-shot commands report on stdout and stderr themselves
	}
	switch strings.ToLower(a.logLevel) {
	case "debug":
		level = slog.LevelDebug
	case "info", "":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return usagef("--log-level %q: want debug, info, warn or error", a.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	// Whatever a log line holds, the broker password never reaches stderr.
	logOut := &scrubWriter{w: a.stderr, scrub: a.secrets.Redact}
	switch strings.ToLower(a.logFormat) {
	case "text", "":
		a.log = slog.New(slog.NewTextHandler(logOut, opts))
	case "json":
		// JSON escapes control characters but writes C1 controls and
		// invisible format characters (bidi overrides) as they are.
		jsonOut := &scrubWriter{w: a.stderr, scrub: func(s string) string { return termtext.JSON(a.secrets.Redact(s)) }}
		a.log = slog.New(slog.NewJSONHandler(jsonOut, opts))
	default:
		return usagef("--log-format %q: want text or json", a.logFormat)
	}
	if a.connectTimeout <= 0 {
		return usagef("--connect-timeout must be positive (got %s)", a.connectTimeout)
	}
	return nil
}

// usesBroker reports whether cmd talks to the broker: every command but
// the root, version and completion.
func usesBroker(cmd *cobra.Command) bool {
	for c := cmd; c.HasParent(); c = c.Parent() {
		if c.Parent().HasParent() {
			continue
		}
		return c.Name() != "version" && c.Name() != "completion" && c.Name() != "help"
	}
	return false
}

// envName returns the environment variable of a flag.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// bindEnv sets every flag not given on the command line from its
// environment variable, when that is set and not empty.
func (a *app) bindEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" || f.Annotations[noEnvAnnotation] != nil {
			return
		}
		name := envName(f.Name)
		if taskEnvVar(name) {
			return // a task's variable, set by a worker for its --exec command
		}
		v, ok := a.lookupEnv(name)
		if !ok || v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	})
	if len(errs) > 0 {
		return usage(errors.Join(errs...))
	}
	return nil
}

func noEnv(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		_ = fs.SetAnnotation(n, noEnvAnnotation, []string{"true"})
	}
}

// dial connects to the broker within --connect-timeout. retries is
// broker.Config.DialRetries: small for one-shot commands.
func (a *app) dial(ctx context.Context, what string, retries int) (*broker.Conn, error) {
	tlsConfig, err := a.tlsConfig()
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, a.connectTimeout)
	defer cancel()
	conn, err := broker.Dial(dctx, a.url, broker.Config{
		Name:        fmt.Sprintf("warren %s (pid %d)", what, os.Getpid()),
		DialTimeout: a.connectTimeout,
		DialRetries: retries,
		TLS:         tlsConfig,
		Logger:      a.log,
	})
	if err != nil {
		return nil, dialError(err)
	}
	return conn, nil
}

// isTerminal reports whether f is an *os.File on a terminal.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

// closeConn closes conn, logging a failure: the command's own outcome is
// already decided.
func (a *app) closeConn(conn *broker.Conn) {
	if err := conn.Close(); err != nil {
		a.log.Debug("close connection", "err", err)
	}
}

// explained is an error with a message of its own that still matches its
// cause with errors.Is and errors.As.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }
