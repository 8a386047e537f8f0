package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/termtext"
	"github.com/warrenq/warren/producer"
)

const (
	// batchSize is how many jobs go into one EnqueueBatch.
	batchSize = 500
	// batchesInFlight bounds the batches awaiting their confirms while the
	// next ones are read; with the producer's window this keeps the broker
	// busy without holding the whole file in memory.
	batchesInFlight = 4
	// maxLineLen bounds one NDJSON line; a longer one is a failed job.
	maxLineLen = 4 << 20
	// batchLinger is how long a partial batch waits for more lines before
	// it is sent anyway (input trickling in on stdin).
	batchLinger = 50 * time.Millisecond
	// progressEvery throttles the progress bar.
	progressEvery = 100 * time.Millisecond
)

// inputLine is one line read from the job file.
type inputLine struct {
	no      int
	data    []byte
	tooLong bool
	size    int64 // bytes consumed, newline included
}

// batch is up to batchSize jobs and the failed lines between them, in
// input order.
type batch struct {
	items   []batchItem
	jobs    []producer.Job
	size    int64
	results []producer.Result
	err     error // the whole batch failed
	done    chan struct{}
}

type batchItem struct {
	line int
	job  int   // index in jobs, or -1 when err is set
	err  error // the line could not be made into a job
}

type batchTotals struct {
	ok, failed int
	bytes      int64
}

// enqueueFile enqueues one task per line of --from-file.
func (a *app) enqueueFile(ctx context.Context, cmd *cobra.Command, f *enqueueFlags) error {
	if cmd.Flags().Changed("content-type") && !isJSON(f.contentType) {
		return usagef("--content-type %q cannot be used with --from-file: NDJSON payloads are JSON", f.contentType)
	}
	base, qo, err := a.commonEnqueueOptions(f)
	if err != nil {
		return err
	}
	var in io.Reader
	var total int64 // input size for the progress bar, 0 when unknown
	if f.fromFile == "-" {
		in = a.stdin
	} else {
		file, err := os.Open(f.fromFile)
		if err != nil {
			return usagef("--from-file: %w", err)
		}
		defer file.Close()
		if st, err := file.Stat(); err == nil && st.Mode().IsRegular() {
			total = st.Size()
		}
		in = file
	}

	conn, err := a.dial(ctx, "enqueue", 1)
	if err != nil {
		return err
	}
	defer a.closeConn(conn)
	p, err := a.newProducer(ctx, conn, f, qo)
	if err != nil {
		return err
	}
	defer a.closeProducer(p)

	start := time.Now()
	lines := make(chan inputLine, 4*batchSize)
	readErr := make(chan error, 1)
	go func() { readErr <- readLines(ctx, in, lines, f.lineLimit()) }()

	pending := make(chan *batch, batchesInFlight)
	report := make(chan batchTotals, 1)
	prog := &progress{w: a.stderr, on: isTerminal(a.stderr), total: total, start: start}
	go func() { report <- a.collect(pending, f, prog) }()

	// Only --queue is declared (unless --no-declare): a line's "queue" comes
	// from data, where a typo must not create a queue nobody consumes. It
	// must exist; warren topology declare declares it.
	checked := map[string]error{f.queue: nil}
	ensureQueue := func(q string) error {
		err, ok := checked[q]
		if !ok {
			if _, err = broker.Inspect(ctx, conn, q); errors.Is(err, broker.ErrQueueNotFound) {
				err = fmt.Errorf("queue %s does not exist: only --queue is declared (declare it with: warren topology declare --queue %s)", q, q)
			}
			checked[q] = err
		}
		return err
	}

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
	var interrupted error
read:
	for {
		select {
		case <-ctx.Done():
			interrupted = ctx.Err()
			break read
		case <-linger:
			send()
			linger = nil
		case ln, ok := <-lines:
			if !ok {
				break read
			}
			cur.size += ln.size
			job, err := a.lineJob(ln, f, base, ensureQueue)
			switch {
			case errors.Is(err, errBlankLine):
				continue
			case err != nil:
				cur.items = append(cur.items, batchItem{line: ln.no, job: -1, err: err})
			default:
				cur.items = append(cur.items, batchItem{line: ln.no, job: len(cur.jobs)})
				cur.jobs = append(cur.jobs, job)
			}
			if len(cur.jobs) >= batchSize || len(cur.items) >= 4*batchSize {
				send()
				linger = nil
			} else if linger == nil {
				linger = time.After(batchLinger)
			}
		}
	}
	if interrupted == nil && ctx.Err() != nil {
		interrupted = ctx.Err() // the reader saw it first
	}
	if len(cur.items) > 0 || cur.size > 0 {
		send()
	}
	close(pending)
	tot := <-report
	elapsed := time.Since(start)
	prog.clear()

	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(tot.ok) / s
	}
	fmt.Fprintf(a.stderr, "enqueued %d, failed %d in %.2fs (%.0f/s)\n", tot.ok, tot.failed, elapsed.Seconds(), rate)

	if interrupted != nil {
		return fmt.Errorf("interrupted after %s: %w", plural(tot.ok, "task", "tasks"), interrupted)
	}
	if err := <-readErr; err != nil {
		return fmt.Errorf("read %s: %w", f.fromFile, err)
	}
	if tot.failed > 0 {
		return fmt.Errorf("%d of %d jobs failed", tot.failed, tot.ok+tot.failed)
	}
	return nil
}

// lineJob turns one input line into a job, with the flags as defaults.
func (a *app) lineJob(ln inputLine, f *enqueueFlags, base []producer.Option, ensureQueue func(string) error) (producer.Job, error) {
	if ln.tooLong {
		return producer.Job{}, fmt.Errorf("longer than %d bytes", f.lineLimit())
	}
	jl, err := parseJobLine(ln.data)
	if err != nil {
		return producer.Job{}, err
	}
	job := producer.Job{Queue: f.queue, Type: f.taskType, Payload: jl.Payload}
	if jl.Queue != "" {
		job.Queue = jl.Queue
		if err := ensureQueue(jl.Queue); err != nil {
			return producer.Job{}, err
		}
	}
	if jl.Type != "" {
		job.Type = jl.Type
	}
	if job.Type == "" {
		return producer.Job{}, errors.New(`no "type" (and no --type default)`)
	}
	if job.Payload == nil {
		job.Payload = []byte("{}")
	}
	job.Options = append(make([]producer.Option, 0, len(base)+3), base...)
	if jl.ID != "" {
		job.Options = append(job.Options, producer.WithID(jl.ID))
	}
	if jl.HasDelay {
		job.Options = append(job.Options, producer.WithDelay(jl.Delay))
	}
	if jl.HasMaxAttempts {
		job.Options = append(job.Options, producer.WithMaxAttempts(jl.MaxAttempts))
	}
	return job, nil
}

// collect reports each batch in input order: IDs on stdout (with
// --print-ids), failed lines on stderr, and the progress bar.
func (a *app) collect(pending <-chan *batch, f *enqueueFlags, prog *progress) batchTotals {
	var tot batchTotals
	out := bufio.NewWriter(a.stdout)
	defer out.Flush()
	for b := range pending {
		<-b.done
		for _, it := range b.items {
			err := it.err
			var id string
			if err == nil {
				switch {
				case b.err != nil:
					err = b.err
				case it.job < len(b.results):
					id, err = b.results[it.job].ID, b.results[it.job].Err
				default:
					err = errors.New("no result")
				}
				if err != nil {
					err = enqueueError(err, b.jobs[it.job].Queue)
				}
			}
			if err != nil {
				tot.failed++
				prog.clear()
				fmt.Fprintf(a.stderr, "warren: line %d: %s\n", it.line, termtext.Text(a.scrub(strings.TrimPrefix(err.Error(), "warren: "))))
				continue
			}
			tot.ok++
			if f.printIDs {
				fmt.Fprintln(out, termtext.Line(id))
			}
		}
		tot.bytes += b.size
		if f.printIDs {
			_ = out.Flush()
		}
		prog.draw(tot)
	}
	return tot
}

// lineLimit bounds one NDJSON line: maxLineLen, or room for a payload of
// --max-payload-size written as escaped JSON when that is larger.
func (f *enqueueFlags) lineLimit() int {
	return max(maxLineLen, 2*f.payloadLimit()+64<<10)
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

// progress draws a one-line progress bar on a terminal.
type progress struct {
	w     io.Writer
	on    bool
	total int64
	start time.Time
	last  time.Time
	shown bool
}

func (p *progress) draw(t batchTotals) {
	if !p.on || time.Since(p.last) < progressEvery {
		return
	}
	p.last = time.Now()
	rate := float64(t.ok) / max(time.Since(p.start).Seconds(), 1e-3)
	if p.total > 0 {
		frac := min(float64(t.bytes)/float64(p.total), 1)
		const width = 30
		n := int(frac * width)
		fmt.Fprintf(p.w, "\r\x1b[K[%s%s] %3.0f%%  %d enqueued, %d failed, %.0f/s",
			strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100, t.ok, t.failed, rate)
	} else {
		fmt.Fprintf(p.w, "\r\x1b[K%d enqueued, %d failed, %.0f/s", t.ok, t.failed, rate)
	}
	p.shown = true
}

func (p *progress) clear() {
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}
