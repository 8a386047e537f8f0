package admin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// importWindow bounds the imported records awaiting their confirm.
const importWindow = 256

// maxRecordLine bounds one line of an import: a 128 MiB body (RabbitMQ's
// default max_message_size) in base64, with its headers. A variable for
// tests.
var maxRecordLine = 256 << 20

// maxReportedLines is how many malformed lines an Import error names.
const maxReportedLines = 10

// ImportOptions shape an Import.
type ImportOptions struct {
	// ToQueue publishes the records into this existing queue instead of
	// the dead-letter queue of Import's queue argument, which may then be
	// empty. Import neither locks such a queue nor reads it, so it does
	// not skip duplicates there: use it for a holding queue that no dlq
	// command manages. "" means the dead-letter queue.
	ToQueue string
}

// ImportResult counts what an Import did.
type ImportResult struct {
	// Records counts the records of the input (blank lines aside).
	Records int
	// Imported counts the records published and confirmed by the broker.
	Imported int
	// Duplicates counts the records skipped because the dead-letter queue
	// already held the same dead letter when the import began.
	Duplicates int
	// Failed counts the records the broker did not confirm. An import
	// stops publishing at the first failure; the records after it are in
	// none of these counts.
	Failed int
}

// RecordError is a line of an import's input that is not a dead-letter
// record Import can publish. Import returns every one it finds (up to
// ten), joined; errors.As finds the first.
type RecordError struct {
	Line int // 1 for the first line
	Err  error
}

func (e *RecordError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *RecordError) Unwrap() error { return e.Err }

// Import publishes the records of r, as Export writes them, into the
// dead-letter queue of queue (Q.dlq), in their order, after the dead
// letters already there. Each message is published as the record holds
// it: every property, every header with its AMQP type, the body byte for
// byte; only x-delivery-count, the broker's count of returns in the queue
// the record was exported from, is left out (the target queue keeps its
// own). Nothing is published before the whole input has been read and
// checked: if any line is not a valid record (blank lines are skipped),
// Import returns the malformed lines, each a *RecordError naming its line,
// and imports nothing. A reader that cannot seek back (a pipe) is copied
// to a temporary file (os.TempDir, mode 0600, removed at the end) to be
// read a second time.
//
// Import takes the dead-letter queue's lock before it reads r (a caller
// may try again after ErrBusy with its input unread), and reads the queue
// before it publishes (as List does, leaving it as it was): a record whose dead letter the queue
// already holds, the same in every property, header and body byte (not
// counting x-delivery-count), is skipped as a duplicate, once for each
// copy the queue holds. So importing the same file twice, or again after
// an interrupted import, imports each dead letter once.
//
// Every publish is mandatory and confirmed by the broker; Import returns
// once every confirm is in. The first publish that fails (refused,
// unroutable, unconfirmed) stops the import: the records confirmed stay
// imported, and ImportResult says how many. A record that sets the
// user_id property is published alone, after every confirm before it,
// because RabbitMQ closes the channel of a publish whose user_id is not
// the publishing user's own (unless that user has the impersonator tag).
// Records with a CC or BCC header are refused as malformed: RabbitMQ would
// route a copy to every queue those name.
//
// The target queue must exist; Import never declares it.
func (a *Inspector) Import(ctx context.Context, queue string, r io.Reader, o ImportOptions) (ImportResult, error) {
	var res ImportResult
	if r == nil {
		return res, errors.New("admin: Import: nil reader")
	}
	target := o.ToQueue
	if target == "" {
		if err := checkQueue(queue); err != nil {
			return res, err
		}
		target = warren.DeadLetterQueue(queue)
	} else if err := warren.ValidateQueueName(target); err != nil {
		return res, fmt.Errorf("admin: ImportOptions.ToQueue: %w", err)
	}

	// The lock first: a caller that waits for it (ErrBusy) and tries again
	// has not consumed its input.
	if o.ToQueue == "" {
		unlock, err := a.lock(ctx, target)
		if err != nil {
			return res, err
		}
		defer unlock()
	}
	if _, err := broker.Inspect(ctx, a.conn, target); err != nil {
		if errors.Is(err, broker.ErrQueueNotFound) {
			if o.ToQueue == "" {
				return res, fmt.Errorf("admin: import: dead-letter queue %s does not exist (declare the Warren queue %q first): %w", target, queue, err)
			}
			return res, fmt.Errorf("admin: import: queue %s does not exist: %w", target, err)
		}
		return res, fmt.Errorf("admin: import: %w", err)
	}

	in, err := checkInput(r, broker.HeaderBudget(a.conn.FrameMax()))
	if err != nil {
		return res, fmt.Errorf("admin: import into %s: %w", target, err)
	}
	defer in.close()
	res.Records = in.records
	if len(in.bad) > 0 {
		return res, fmt.Errorf("admin: import into %s: %s in %d lines, nothing imported: %w",
			target, plural(in.badCount, "malformed line", "malformed lines"), in.lines, errors.Join(in.bad...))
	}

	var present map[[sha256.Size]byte]int
	if o.ToQueue == "" {
		if present, err = a.contents(ctx, queue, target); err != nil {
			return res, err
		}
	}

	left := 0 // dead letters of the queue not matched by a record yet
	for _, n := range present {
		left += n
	}

	im := &importer{a: a, target: target, res: &res, report: progressOf(ctx, "import")}
	if im.pub, err = broker.NewPublisher(a.conn, importWindow); err != nil {
		return res, fmt.Errorf("admin: import into %s: %w", target, err)
	}
	err = in.each(func(line int, m amqp.Publishing) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if left > 0 {
			key, err := contentKey(m)
			if err != nil {
				return &RecordError{Line: line, Err: err}
			}
			if present[key] > 0 {
				present[key]--
				left--
				res.Duplicates++
				im.progress()
				return nil
			}
		}
		return im.publish(ctx, line, m)
	})
	im.settle(ctx)
	_ = im.pub.Close()
	im.progress()

	var errs []error
	if err != nil && im.failed == nil {
		errs = append(errs, fmt.Errorf("admin: import into %s stopped after %d imported: %w", target, res.Imported, err))
	}
	if im.failed != nil {
		errs = append(errs, fmt.Errorf("admin: import into %s stopped after %d imported: %w", target, res.Imported, im.failed))
	}
	if len(errs) > 0 && o.ToQueue == "" {
		errs = append(errs, errors.New("running the same import again skips the records already imported"))
	}
	a.log.Info("admin: imported", "queue", target, "records", res.Records, "imported", res.Imported,
		"duplicates", res.Duplicates, "failed", res.Failed)
	return res, errors.Join(errs...)
}

// contents reads the dead-letter queue dlq (its lock held) and returns the
// content keys of the dead letters it holds, with their counts.
func (a *Inspector) contents(ctx context.Context, queue, dlq string) (map[[sha256.Size]byte]int, error) {
	p, err := a.openPass(ctx, queue, dlq, func() {})
	if err != nil {
		return nil, err
	}
	present := make(map[[sha256.Size]byte]int)
	_, readErr, finErr := p.walk(ctx, func(d *amqp.Delivery) error {
		key, err := contentKey(publishingOf(d))
		p.keep(d)
		if err != nil {
			return fmt.Errorf("admin: dead letter %s of %s: %w", d.MessageId, dlq, err)
		}
		present[key]++
		return nil
	})
	if err := errors.Join(readErr, finErr); err != nil {
		return nil, fmt.Errorf("admin: import: read %s for duplicates: %w", dlq, err)
	}
	return present, nil
}

// importer publishes records in order, up to importWindow unconfirmed.
type importer struct {
	a      *Inspector
	target string
	pub    *broker.Publisher
	res    *ImportResult
	report func(Progress)

	pending []pendingRecord // published, in order, confirm not yet counted
	failed  error           // the first failure: publish no more
}

type pendingRecord struct {
	line int
	pd   *broker.Pending
}

func (im *importer) progress() {
	r := im.res
	im.report(Progress{Total: r.Records, Read: r.Imported + r.Duplicates + r.Failed + len(im.pending),
		Done: r.Imported, Skipped: r.Duplicates, Failed: r.Failed})
}

func (im *importer) publish(ctx context.Context, line int, m amqp.Publishing) error {
	if im.failed != nil {
		return im.failed
	}
	delete(m.Headers, deliveryCountHeader)
	if m.UserId != "" {
		// A refused user_id closes the channel: nothing else may be in flight.
		im.settle(ctx)
		if im.failed != nil {
			return im.failed
		}
	}
	pd, err := im.pub.Publish(ctx, "", im.target, m)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		im.fail(line, m, err)
		return im.failed
	}
	im.pending = append(im.pending, pendingRecord{line: line, pd: pd})
	if m.UserId != "" {
		im.settle(ctx)
	} else {
		im.collect()
	}
	im.progress()
	return im.failed
}

// collect counts the confirms already in, in order.
func (im *importer) collect() {
	for len(im.pending) > 0 {
		select {
		case <-im.pending[0].pd.Done():
			im.done(im.pending[0], im.pending[0].pd.Wait(context.Background()))
			im.pending = im.pending[1:]
		default:
			return
		}
	}
}

// settle waits for every confirm due: until ctx ends, then for up to
// confirmGrace more (a confirm that never comes counts as a failure: the
// record may or may not be stored).
func (im *importer) settle(ctx context.Context) {
	var grace context.Context
	for _, pr := range im.pending {
		err := pr.pd.Wait(ctx)
		if err != nil && ctx.Err() != nil {
			if grace == nil {
				var cancel context.CancelFunc
				grace, cancel = context.WithTimeout(context.WithoutCancel(ctx), confirmGrace)
				defer cancel()
			}
			err = pr.pd.Wait(grace)
		}
		im.done(pr, err)
	}
	im.pending = nil
}

func (im *importer) done(pr pendingRecord, err error) {
	if err == nil {
		im.res.Imported++
		return
	}
	im.fail(pr.line, amqp.Publishing{}, err)
}

func (im *importer) fail(line int, m amqp.Publishing, err error) {
	im.res.Failed++
	if im.failed != nil {
		return
	}
	msg := err.Error()
	switch {
	case m.UserId != "" || strings.Contains(msg, "user_id"):
		err = fmt.Errorf("%w (RabbitMQ accepts a user_id property only when it names the importing user, unless that user has the impersonator tag)", err)
	case errors.Is(err, broker.ErrUnroutable):
		err = fmt.Errorf("%w (is %s gone?)", err, im.target)
	}
	im.failed = &RecordError{Line: line, Err: err}
}

// input is an import's input, checked whole, ready to be read again.
type input struct {
	src      io.Reader
	rewind   func() error
	cleanup  func()
	lines    int // lines read
	records  int
	bad      []error // the first malformed lines
	badCount int
}

func (in *input) close() {
	if in.cleanup != nil {
		in.cleanup()
	}
}

// checkInput reads r to its end, decoding every line, and leaves it ready
// to be read again from where it began.
func checkInput(r io.Reader, budget int) (*input, error) {
	in := &input{src: r}
	var start int64
	rs, seekable := r.(io.ReadSeeker)
	if seekable {
		var err error
		if start, err = rs.Seek(0, io.SeekCurrent); err != nil {
			seekable = false // a pipe
		}
	}
	read := r
	if seekable {
		in.rewind = func() error {
			_, err := rs.Seek(start, io.SeekStart)
			return err
		}
	} else {
		tmp, err := os.CreateTemp("", "warren-import-*.ndjson")
		if err != nil {
			return nil, fmt.Errorf("a temporary copy of the input: %w", err)
		}
		in.cleanup = func() {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
		read = io.TeeReader(r, tmp)
		in.src = tmp
		in.rewind = func() error {
			_, err := tmp.Seek(0, io.SeekStart)
			return err
		}
	}
	err := scanLines(read, func(line int, b []byte) error {
		in.lines = line
		if len(bytes.TrimSpace(b)) == 0 {
			return nil
		}
		in.records++
		if _, m, err := decodeRecord(b); err != nil {
			in.malformed(line, err)
		} else if err := importable(m, budget); err != nil {
			in.malformed(line, err)
		}
		return nil
	})
	if err != nil {
		in.close()
		return nil, err
	}
	return in, nil
}

func (in *input) malformed(line int, err error) {
	in.badCount++
	if len(in.bad) < maxReportedLines {
		in.bad = append(in.bad, &RecordError{Line: line, Err: err})
	}
}

// each reads the checked input again and calls fn for every record, until
// fn returns an error.
func (in *input) each(fn func(line int, m amqp.Publishing) error) error {
	if err := in.rewind(); err != nil {
		return fmt.Errorf("read the input again: %w", err)
	}
	return scanLines(in.src, func(line int, b []byte) error {
		if len(bytes.TrimSpace(b)) == 0 {
			return nil
		}
		_, m, err := decodeRecord(b)
		if err != nil { // changed since it was checked
			return &RecordError{Line: line, Err: err}
		}
		return fn(line, m)
	})
}

// scanLines calls fn for each line of r, without its line end. A last line
// without a newline counts.
func scanLines(r io.Reader, fn func(line int, b []byte) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var long []byte
	for n := 1; ; n++ {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], b...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(long) > maxRecordLine {
					return &RecordError{Line: n, Err: fmt.Errorf("longer than %d MiB", maxRecordLine>>20)}
				}
				b, err = br.ReadSlice('\n')
				long = append(long, b...)
			}
			b = long
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read line %d: %w", n, err)
		}
		if len(b) > 0 {
			if ferr := fn(n, bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))); ferr != nil {
				return ferr
			}
		}
		if err != nil { // EOF
			return nil
		}
	}
}

// importable refuses what a publish would do more with than store: the
// CC and BCC headers make RabbitMQ route copies to the queues they name.
func importable(m amqp.Publishing, budget int) error {
	if err := broker.CheckHeaders(m.Headers); err != nil {
		return err
	}
	if err := broker.CheckSize(&m, budget); err != nil {
		return err
	}
	for _, h := range []string{"CC", "BCC"} {
		if _, ok := m.Headers[h]; ok {
			return fmt.Errorf("header %s would make RabbitMQ also route the message to the queues it names (sender-selected distribution); "+
				"remove it from the record to import it (jq -c 'del(.headers.%s)')", h, h)
		}
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
