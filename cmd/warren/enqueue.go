package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/producer"
)

type enqueueFlags struct {
	queue       string
	taskType    string
	payload     string
	payloadFile string
	id          string
	delay       time.Duration
	processAt   string
	maxAttempts int
	headers     []string
	contentType string
	noDeclare   bool
	fromFile    string
	printIDs    bool
	maxPayload  sizeValue
	queueFlags
}

func (a *app) enqueueCmd() *cobra.Command {
	var f enqueueFlags
	cmd := &cobra.Command{
		Use:   "enqueue --queue Q --type T [--payload JSON | --payload-file F] | --queue Q --from-file F",
		Short: "Enqueue a task, or many from an NDJSON file",
		Long: `Enqueue one task and print its ID once the broker has confirmed it.

With --from-file (a file, or - for stdin), enqueue one task per line of
NDJSON, pipelined, and print a summary on stderr:

  {"type":"send","payload":{"to":"a@example.com"},"id":"opt","delay":"5s","max_attempts":3,"queue":"optional"}

Blank lines are skipped; a bad line is reported with its number and counted
as failed while the others go on. --queue, --type, --delay, --max-attempts
and --header are the defaults of every line. Only --queue is declared (unless
--no-declare): a line's "queue" must already exist (warren topology declare
--queue Q declares it), or the line fails.

A payload over --max-payload-size (default 1MiB) is refused before anything
is sent: a single enqueue exits with status 2 (bad input); with --from-file
the line counts as failed and the command exits with status 1. The broker
has a limit of its own (max_message_size, 128 MiB by default).

Exit status: 0 once the broker has confirmed every task, 1 on failure
(broker unreachable, access refused, a task not confirmed or a line
failed), 2 on bad input.`,
		Example: `  warren enqueue --queue emails --type send --payload '{"to":"a@example.com"}'
  warren enqueue --queue emails --type send --payload-file - < payload.json
  warren enqueue --queue emails --type send --delay 30s --header tenant=acme
  warren enqueue --queue emails --from-file jobs.ndjson --print-ids
  warren enqueue --queue images --type resize --payload-file big.json --max-payload-size 8MiB
  warren enqueue --queue emails --type send --no-declare   # a user without the configure permission`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			if f.fromFile != "" {
				return a.enqueueFile(cmd.Context(), cmd, &f)
			}
			return a.enqueueOne(cmd.Context(), cmd, &f)
		}),
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.queue, "queue", "q", "", "`queue` to enqueue to (required)")
	fs.StringVarP(&f.taskType, "type", "t", "", "task `type` (required without --from-file)")
	fs.StringVarP(&f.payload, "payload", "p", "", "the payload (`JSON` unless --content-type says otherwise); default {}")
	fs.StringVar(&f.payloadFile, "payload-file", "", "read the payload from `file` (- for stdin)")
	fs.StringVar(&f.id, "id", "", "task `ID` (default a new UUIDv7); use it for idempotency")
	fs.DurationVar(&f.delay, "delay", 0, "wait this `duration` before the task is due (whole seconds)")
	fs.StringVar(&f.processAt, "process-at", "", "the task is due at this `time` (RFC 3339)")
	fs.IntVar(&f.maxAttempts, "max-attempts", 0, "cap the task's attempts (0: the worker's policy decides)")
	fs.StringArrayVarP(&f.headers, "header", "H", nil, "add an AMQP header `key=value` (repeatable)")
	fs.StringVar(&f.contentType, "content-type", broker.DefaultContentType, "the payload's content `type`")
	fs.BoolVar(&f.noDeclare, "no-declare", false, "do not declare the queue (it must exist)")
	fs.StringVar(&f.fromFile, "from-file", "", "enqueue one task per line of NDJSON `file` (- for stdin)")
	fs.BoolVar(&f.printIDs, "print-ids", false, "with --from-file: print each task ID on stdout, in input order")
	f.maxPayload = producer.DefaultMaxPayloadSize
	fs.Var(&f.maxPayload, "max-payload-size", "refuse payloads larger than this `size` (bytes, or with a unit: 512KiB, 4MiB)")
	f.queueFlags.add(fs)
	noEnv(fs, "id", "from-file")
	_ = cmd.MarkFlagRequired("queue")
	cmd.MarkFlagsMutuallyExclusive("payload", "payload-file", "from-file")
	cmd.MarkFlagsMutuallyExclusive("delay", "process-at")
	cmd.MarkFlagsMutuallyExclusive("id", "from-file")
	cmd.MarkFlagsMutuallyExclusive("process-at", "from-file")
	return cmd
}

// enqueueOne enqueues the task described by the flags.
func (a *app) enqueueOne(ctx context.Context, cmd *cobra.Command, f *enqueueFlags) error {
	if f.taskType == "" {
		return usagef("--type is required (or --from-file)")
	}
	if cmd.Flags().Changed("print-ids") {
		return usagef("--print-ids goes with --from-file; a single enqueue always prints its ID")
	}
	opts, qopts, err := a.commonEnqueueOptions(f)
	if err != nil {
		return err
	}
	if len(f.id) > 255 {
		return usagef("--id: at most 255 bytes (got %d)", len(f.id))
	}
	if f.id != "" {
		opts = append(opts, producer.WithID(f.id))
	}
	if f.processAt != "" {
		at, err := time.Parse(time.RFC3339, f.processAt)
		if err != nil {
			return usagef("--process-at %q: want RFC 3339, like 2030-01-02T15:04:05Z: %w", f.processAt, err)
		}
		if d := time.Until(at); d > broker.MaxDelay {
			return usagef("--process-at %s is further away than the maximum delay of %s", f.processAt, broker.MaxDelay)
		}
		opts = append(opts, producer.WithProcessAt(at))
	}
	if f.contentType != broker.DefaultContentType {
		opts = append(opts, producer.WithContentType(f.contentType))
	}
	payload, err := a.readPayload(f, cmd.Flags().Changed("payload"))
	if err != nil {
		return err
	}

	return a.withProducer(ctx, f, qopts, func(p *producer.Producer) error {
		id, err := p.Enqueue(ctx, f.queue, f.taskType, payload, opts...)
		if err != nil {
			return enqueueError(err, f.queue)
		}
		fmt.Fprintln(a.stdout, id)
		return nil
	})
}

// commonEnqueueOptions checks the flags shared by both modes and turns
// them into producer options.
func (a *app) commonEnqueueOptions(f *enqueueFlags) ([]producer.Option, queueOptions, error) {
	var opts []producer.Option
	if err := checkQueues([]string{f.queue}); err != nil {
		return nil, queueOptions{}, err
	}
	if len(f.taskType) > 255 {
		return nil, queueOptions{}, usagef("--type: at most 255 bytes (got %d)", len(f.taskType))
	}
	qo, err := f.queueFlags.options()
	if err != nil {
		return nil, queueOptions{}, err
	}
	if f.delay < 0 {
		return nil, queueOptions{}, usagef("--delay cannot be negative (got %s)", f.delay)
	}
	if f.delay > broker.MaxDelay {
		return nil, queueOptions{}, usagef("--delay %s exceeds the maximum of %s", f.delay, broker.MaxDelay)
	}
	if f.delay > 0 {
		opts = append(opts, producer.WithDelay(f.delay))
	}
	if f.maxAttempts < 0 || f.maxAttempts > math.MaxInt32 {
		return nil, queueOptions{}, usagef("--max-attempts: want 0 to %d (got %d)", math.MaxInt32, f.maxAttempts)
	}
	if f.maxAttempts > 0 {
		opts = append(opts, producer.WithMaxAttempts(f.maxAttempts))
	}
	if len(f.headers) > 0 {
		h, err := parseHeaders(f.headers)
		if err != nil {
			return nil, queueOptions{}, err
		}
		opts = append(opts, producer.WithHeaders(h))
	}
	return opts, queueOptions{QueueOptions: qo, noDeclare: f.noDeclare}, nil
}

type queueOptions struct {
	broker.QueueOptions
	noDeclare bool
}

func parseHeaders(kvs []string) (map[string]any, error) {
	h := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, usagef("--header %q: want key=value", kv)
		}
		if strings.HasPrefix(k, "x-") || strings.HasPrefix(k, warren.HeaderPrefix) {
			return nil, usagef("--header %q: names starting with x- or %s are reserved", kv, warren.HeaderPrefix)
		}
		h[k] = v
	}
	return h, nil
}

// readPayload returns the payload from --payload or --payload-file,
// checked to be JSON when the content type is JSON.
func (a *app) readPayload(f *enqueueFlags, payloadGiven bool) ([]byte, error) {
	var payload []byte
	switch {
	case f.payloadFile != "":
		var r io.Reader
		if f.payloadFile == "-" {
			r = a.stdin
		} else {
			file, err := os.Open(f.payloadFile)
			if err != nil {
				return nil, usagef("--payload-file: %w", err)
			}
			defer file.Close()
			if st, err := file.Stat(); err == nil && st.IsDir() {
				return nil, usagef("--payload-file %s: is a directory", f.payloadFile)
			}
			r = file
		}
		b, err := io.ReadAll(io.LimitReader(r, int64(f.payloadLimit())+1))
		if err != nil {
			return nil, fmt.Errorf("read payload: %w", err)
		}
		payload = b
	case payloadGiven:
		payload = []byte(f.payload)
	default:
		if producer.IsJSON(f.contentType) {
			payload = []byte("{}")
		}
	}
	if limit := f.payloadLimit(); len(payload) > limit {
		what := fmt.Sprintf("%d bytes", len(payload))
		if f.payloadFile != "" {
			what = "more than that" // not read past the limit
		}
		return nil, usagef("payload too large: the limit is %d bytes (%s, --max-payload-size), the payload is %s", limit, formatSize(limit), what)
	}
	if producer.IsJSON(f.contentType) {
		if err := producer.CheckJSON(payload); err != nil {
			return nil, usagef("invalid JSON payload: %w", err)
		}
	}
	return payload, nil
}

// payloadLimit is --max-payload-size in bytes.
func (f *enqueueFlags) payloadLimit() int {
	return cmp.Or(int(f.maxPayload), producer.DefaultMaxPayloadSize)
}

// withProducer connects, runs fn with a producer of --queue (declared
// unless --no-declare), then closes both.
func (a *app) withProducer(ctx context.Context, f *enqueueFlags, qo queueOptions, fn func(*producer.Producer) error) error {
	conn, err := a.dial(ctx, "enqueue", 1)
	if err != nil {
		return err
	}
	defer a.closeConn(conn)
	cfg := producer.Config{QueueOptions: qo.QueueOptions, NoDeclare: qo.noDeclare, MaxPayloadSize: f.payloadLimit(), Logger: a.log}
	if !qo.noDeclare {
		cfg.Queues = []string{f.queue}
	}
	p, err := producer.New(ctx, conn, cfg)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			a.log.Warn("close producer", "err", err)
		}
	}()
	return fn(p)
}

// enqueueError explains a failed enqueue; bad input exits with status 2.
func enqueueError(err error, queue string) error {
	switch {
	case errors.Is(err, producer.ErrUnroutable):
		return &explained{err: err, msg: fmt.Sprintf("queue %s does not exist (declare it with: warren topology declare --queue %s)", queue, queue)}
	case errors.Is(err, producer.ErrPayloadTooLarge):
		return usage(fmt.Errorf("%w (--max-payload-size)", err))
	case errors.Is(err, producer.ErrInvalid):
		return usage(err)
	}
	return err
}
