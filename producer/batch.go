package producer

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// StreamConfig tunes EnqueueStream. Queue is required; the zero value of
// every other field is a working default.
type StreamConfig struct {
	// Queue receives the lines without a "queue". Other queues a line
	// names must exist: each is checked once, and a line to a missing one
	// fails with ErrUnroutable.
	Queue string
	// Type is the type of the lines without a "type". "" means such a
	// line fails.
	Type string
	// Options apply to every line; its own "id", "delay" and
	// "max_attempts" come after them. nil means none.
	Options []Option
	// BatchSize is how many jobs go into one EnqueueBatch. 0 means 500.
	BatchSize int
	// InFlight bounds the batches awaiting their confirms while the next
	// ones are read: the broker stays busy without the whole input in
	// memory. 0 means 4.
	InFlight int
	// MaxLineLen bounds one line in bytes; a longer line fails. 0 means
	// room for a payload of Config.MaxPayloadSize written as escaped JSON,
	// and at least 4 MiB.
	MaxLineLen int
	// Linger is how long a partial batch waits for more lines before it is
	// sent anyway (input trickling in). 0 means 50ms.
	Linger time.Duration
	// OnLine, if set, is told the outcome of every line but blank ones,
	// in input order, from one goroutine.
	OnLine func(LineResult)
	// OnBatch, if set, is called after the lines of each batch have gone
	// to OnLine, with the totals so far (for a progress bar).
	OnBatch func(StreamTotals)
}

// LineResult is the outcome of one line of an EnqueueStream.
type LineResult struct {
	// Line is the line's number, from 1.
	Line int
	// Queue is the job's queue: the line's, or StreamConfig.Queue.
	Queue string
	// ID is the task ID, when the line made a task.
	ID string
	// Err is nil once the broker has confirmed the task.
	Err error
}

// StreamTotals counts the lines of an EnqueueStream so far.
type StreamTotals struct {
	// Enqueued and Failed count the lines; blank lines are in neither.
	Enqueued, Failed int
	// Bytes is how much input the counted batches consumed.
	Bytes int64
}

// Defaults of a zero StreamConfig.
const (
	defaultBatchSize  = 500
	defaultInFlight   = 4
	defaultMaxLineLen = 4 << 20
	defaultLinger     = 50 * time.Millisecond
)

// EnqueueStream enqueues one task per line of r, NDJSON written as
//
//	{"type":"send","payload":{...},"id":"...","delay":"5s","max_attempts":3,"queue":"other"}
//
// where every field but type is optional (and type too when cfg.Type is
// set). Lines are batched and pipelined: up to cfg.InFlight batches await
// their confirms while the next lines are read. Blank lines are skipped; a
// line that is not a valid job fails on its own while the others go on.
//
// It returns when r is exhausted and every batch is confirmed, or when ctx
// ends (the lines read by then are still reported). The error wraps
// ErrInvalid when cfg is invalid (nothing is read); else it is ctx's when
// ctx ended, else r's read error, else nil: failed lines are counted in
// the totals, not returned.
func (p *Producer) EnqueueStream(ctx context.Context, r io.Reader, cfg StreamConfig) (StreamTotals, error) {
	if err := cfg.validate(); err != nil {
		return StreamTotals{}, err
	}
	cfg.BatchSize = cmp.Or(cfg.BatchSize, defaultBatchSize)
	cfg.InFlight = cmp.Or(cfg.InFlight, defaultInFlight)
	cfg.MaxLineLen = cmp.Or(cfg.MaxLineLen, max(defaultMaxLineLen, 2*p.cfg.MaxPayloadSize+64<<10))
	cfg.Linger = cmp.Or(cfg.Linger, defaultLinger)

	lines := make(chan inputLine, 4*cfg.BatchSize)
	readErr := make(chan error, 1)
	go func() { readErr <- readLines(ctx, r, lines, cfg.MaxLineLen) }()
	pending := make(chan *batch, cfg.InFlight)
	report := make(chan StreamTotals, 1)
	go func() { report <- collect(pending, cfg) }()

	checked := map[string]error{cfg.Queue: nil}
	cur := &batch{done: make(chan struct{})}
	send := func() {
		b := cur
		cur = &batch{done: make(chan struct{})}
		if len(b.jobs) == 0 {
			close(b.done)
		} else {
			go func() {
				b.results, b.err = p.EnqueueBatch(ctx, b.jobs)
				close(b.done)
			}()
		}
		pending <- b
	}
	var linger <-chan time.Time
read:
	for {
		select {
		case <-ctx.Done():
			break read
		case <-linger:
			send()
			linger = nil
		case ln, ok := <-lines:
			if !ok {
				break read
			}
			cur.size += ln.size
			job, err := p.lineJob(ctx, ln, cfg, checked)
			switch {
			case errors.Is(err, errBlankLine):
				continue
			case err != nil:
				cur.items = append(cur.items, batchItem{line: ln.no, job: -1, queue: job.Queue, err: err})
			default:
				cur.items = append(cur.items, batchItem{line: ln.no, job: len(cur.jobs), queue: job.Queue})
				cur.jobs = append(cur.jobs, job)
			}
			if len(cur.jobs) >= cfg.BatchSize || len(cur.items) >= 4*cfg.BatchSize {
				send()
				linger = nil
			} else if linger == nil {
				linger = time.After(cfg.Linger)
			}
		}
	}
	if len(cur.items) > 0 || cur.size > 0 {
		send()
	}
	close(pending)
	tot := <-report
	if err := ctx.Err(); err != nil {
		return tot, err
	}
	return tot, <-readErr
}

// validate reports every problem with c at once, as ErrInvalid.
func (c StreamConfig) validate() error {
	var errs []error
	if err := warren.ValidateQueueName(c.Queue); err != nil {
		errs = append(errs, fmt.Errorf("StreamConfig.Queue: %w", err))
	}
	for name, n := range map[string]int{"BatchSize": c.BatchSize, "InFlight": c.InFlight, "MaxLineLen": c.MaxLineLen, "Linger": int(c.Linger)} {
		if n < 0 {
			errs = append(errs, fmt.Errorf("StreamConfig.%s cannot be negative", name))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

// batch is up to StreamConfig.BatchSize jobs and the failed lines between
// them, in input order.
type batch struct {
	items   []batchItem
	jobs    []Job
	size    int64
	results []Result
	err     error // the whole batch failed
	done    chan struct{}
}

type batchItem struct {
	line  int
	job   int // index in jobs, or -1 when err is set
	queue string
	err   error // the line could not be made into a job
}

// collect reports each batch in input order.
func collect(pending <-chan *batch, cfg StreamConfig) StreamTotals {
	var tot StreamTotals
	for b := range pending {
		<-b.done
		for _, it := range b.items {
			res := LineResult{Line: it.line, Queue: it.queue, Err: it.err}
			if it.err == nil {
				switch {
				case b.err != nil:
					res.Err = b.err
				case it.job < len(b.results):
					res.ID, res.Err = b.results[it.job].ID, b.results[it.job].Err
				default:
					res.Err = errors.New("producer: no result")
				}
			}
			if res.Err != nil {
				tot.Failed++
			} else {
				tot.Enqueued++
			}
			if cfg.OnLine != nil {
				cfg.OnLine(res)
			}
		}
		tot.Bytes += b.size
		if cfg.OnBatch != nil {
			cfg.OnBatch(tot)
		}
	}
	return tot
}

// lineJob turns one input line into a job, with cfg as its defaults.
// checked caches the existence check of each queue a line names.
func (p *Producer) lineJob(ctx context.Context, ln inputLine, cfg StreamConfig, checked map[string]error) (Job, error) {
	job := Job{Queue: cfg.Queue, Type: cfg.Type}
	if ln.tooLong {
		return job, fmt.Errorf("longer than %d bytes", cfg.MaxLineLen)
	}
	jl, err := parseLine(ln.data)
	if err != nil {
		return job, err
	}
	if jl.Queue != "" {
		job.Queue = jl.Queue
		err, ok := checked[jl.Queue]
		if !ok {
			if err = p.link.inspect(ctx, jl.Queue); errors.Is(err, broker.ErrQueueNotFound) {
				err = fmt.Errorf("%w: queue %s does not exist: %w", ErrUnroutable, jl.Queue, err)
			}
			checked[jl.Queue] = err
		}
		if err != nil {
			return job, err
		}
	}
	job.Type = cmp.Or(jl.Type, job.Type)
	if job.Type == "" {
		return job, errors.New(`no "type" (and no default type)`)
	}
	job.Payload = jl.Payload
	if job.Payload == nil {
		job.Payload = []byte("{}")
	}
	job.Options = append(make([]Option, 0, len(cfg.Options)+3), cfg.Options...)
	if jl.ID != "" {
		job.Options = append(job.Options, WithID(jl.ID))
	}
	if jl.HasDelay {
		job.Options = append(job.Options, WithDelay(jl.Delay))
	}
	if jl.HasMaxAttempts {
		job.Options = append(job.Options, WithMaxAttempts(jl.MaxAttempts))
	}
	return job, nil
}

// inputLine is one line read from the input.
type inputLine struct {
	no      int
	data    []byte
	tooLong bool
	size    int64 // bytes consumed, newline included
}

// readLines sends each line of r, numbered from 1, until EOF or ctx ends,
// then closes out. Lines longer than limit bytes are sent marked, without
// their data.
func readLines(ctx context.Context, r io.Reader, out chan<- inputLine, limit int) error {
	defer close(out)
	br := bufio.NewReaderSize(r, 64<<10)
	for no := 1; ; no++ {
		var (
			line    []byte
			size    int64
			tooLong bool
			err     error
		)
		for {
			var frag []byte
			frag, err = br.ReadSlice('\n')
			size += int64(len(frag))
			if !tooLong {
				if len(line)+len(frag) > limit {
					tooLong, line = true, nil
				} else {
					line = append(line, frag...)
				}
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if size == 0 {
			return nil // EOF after the last newline
		}
		select {
		case out <- inputLine{no: no, data: line, tooLong: tooLong, size: size}:
		case <-ctx.Done():
			return nil
		}
		if err != nil {
			return nil // EOF after a last line without a newline
		}
	}
}

// jobLine is one parsed line of an EnqueueStream. Every field but Type is
// optional, and Type may come from StreamConfig.Type.
type jobLine struct {
	Type    string
	Payload []byte // raw JSON as written; nil when absent
	ID      string
	Queue   string // "" means StreamConfig.Queue
	// Delay is set when HasDelay.
	Delay    time.Duration
	HasDelay bool
	// MaxAttempts is set when HasMaxAttempts.
	MaxAttempts    int
	HasMaxAttempts bool
}

type rawJobLine struct {
	Type        *string         `json:"type"`
	Payload     json.RawMessage `json:"payload"`
	ID          *string         `json:"id"`
	Delay       *string         `json:"delay"`
	MaxAttempts *int            `json:"max_attempts"`
	Queue       *string         `json:"queue"`
}

// errBlankLine is returned for a line of only white space, which is skipped.
var errBlankLine = errors.New("blank line")

// parseLine parses and checks one NDJSON line. It never panics. Its
// errors are on one line, for reports that name a line number.
func parseLine(line []byte) (jobLine, error) {
	var j jobLine
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return j, errBlankLine
	}
	if line[0] != '{' {
		return j, errors.New("want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var raw rawJobLine
	if err := dec.Decode(&raw); err != nil {
		return j, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return j, errors.New("invalid JSON: data after the object")
	}
	var errs []string
	if raw.Type != nil {
		j.Type = *raw.Type
		if j.Type == "" || len(j.Type) > 255 {
			errs = append(errs, fmt.Sprintf("type: want 1 to 255 bytes (got %d)", len(j.Type)))
		}
	}
	if raw.Payload != nil {
		// Decode keeps "null" as the four bytes; a payload is any JSON value.
		j.Payload = []byte(raw.Payload)
	}
	if raw.ID != nil {
		j.ID = *raw.ID
		if j.ID == "" || len(j.ID) > 255 {
			errs = append(errs, fmt.Sprintf("id: want 1 to 255 bytes (got %d)", len(j.ID)))
		}
	}
	if raw.Delay != nil {
		d, err := time.ParseDuration(*raw.Delay)
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("delay: %v", err))
		case d < 0:
			errs = append(errs, fmt.Sprintf("delay cannot be negative (got %s)", d))
		case d > broker.MaxDelay:
			errs = append(errs, fmt.Sprintf("delay %s exceeds the maximum of %s", d, broker.MaxDelay))
		default:
			j.Delay, j.HasDelay = d, true
		}
	}
	if raw.MaxAttempts != nil {
		if n := *raw.MaxAttempts; n < 0 || n > math.MaxInt32 {
			errs = append(errs, fmt.Sprintf("max_attempts: want 0 to %d (got %d)", math.MaxInt32, n))
		} else {
			j.MaxAttempts, j.HasMaxAttempts = n, true
		}
	}
	if raw.Queue != nil {
		if err := warren.ValidateQueueName(*raw.Queue); err != nil {
			errs = append(errs, fmt.Sprintf("queue: %v", err))
		} else {
			j.Queue = *raw.Queue
		}
	}
	if len(errs) > 0 {
		return jobLine{}, errors.New(strings.Join(errs, "; "))
	}
	return j, nil
}
