package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"

	amqp "github.com/rabbitmq/amqp091-go"
)

// exportBatch is how many records an export writes between two flushes
// of its output; with Remove, a batch's dead letters are acked only after
// its flush (and sync).
const exportBatch = 256

// exportBuffer is the size of the buffer an export writes through.
const exportBuffer = 256 << 10

// ExportOptions shape an Export.
type ExportOptions struct {
	// Remove removes each exported dead letter from the dead-letter queue,
	// once its record is written and flushed to the output (and synced to
	// disk when the output is a file). The Filter must then select
	// something, as for Purge.
	Remove bool
}

// ExportResult counts what an Export did.
type ExportResult struct {
	// Exported counts the records written and flushed to the output.
	Exported int
	// Removed counts the exported dead letters removed from the queue
	// (ExportOptions.Remove).
	Removed int
	// Skipped counts the dead letters read that the Filter did not select.
	Skipped int
	// Unreadable counts the selected dead letters not exported because
	// this client cannot read their headers (DeadLetter.Unreadable): a
	// record would not hold them whole. They stay in the queue.
	Unreadable int
}

// Export writes the dead letters of queue that match f to w, one record a
// line (NDJSON), in queue order, for a backup or to move them to another
// queue or broker with Import. A record holds a dead letter whole: every
// AMQP property, every header with its AMQP type (so that Import gives back
// the same header table, nested tables and arrays such as x-death
// included), and the body in base64, byte for byte. An empty Filter
// selects every dead letter.
//
// Export reads the dead-letter queue as List does and, without Remove,
// leaves it as it was: the same dead letters in the same order. With
// o.Remove it removes each exported dead letter, but only once its record
// is written and flushed to w: Export writes through a buffer, and every
// 256 records (and at the end) flushes it, calls w's Flush method if it
// has one, and its Sync method if it has one (an *os.File: the records are
// then on disk; a pipe or terminal, which cannot be synced, is written
// only), and only then acks that batch. Remove trusts w with what it
// took: give it a file, not a pipe whose reader may still lose the
// records (the CLI refuses one). If a write, flush or sync fails,
// Export stops selecting, keeps every dead letter not yet acked, finishes
// the pass and returns the error: nothing is lost, though the output may
// end with records (and a last line cut short) of dead letters that are
// still in the queue. A killed export leaves the same.
//
// Export holds the queue's lock, as Replay and Purge do.
func (a *Inspector) Export(ctx context.Context, queue string, f Filter, w io.Writer, o ExportOptions) (ExportResult, error) {
	var res ExportResult
	if w == nil {
		return res, errors.New("admin: Export: nil writer")
	}
	if o.Remove && !f.selects() {
		return res, ErrNoSelector
	}
	p, m, err := a.beginMatching(ctx, queue, f)
	if err != nil {
		return res, err
	}
	e := &exporter{w: w, bw: bufio.NewWriterSize(w, exportBuffer), res: &res, sync: o.Remove}
	p.beforeWait = e.flush
	report := progressOf(ctx, "export")
	progress := func() {
		report(Progress{Total: p.count, Read: p.read, Done: res.Exported, Skipped: res.Skipped})
	}
	matched := 0
	p.atEnd = func() {
		e.sync = true // the end: on disk, remove or not
		e.flush()
	}
	inDoubt, readErr, finErr := p.walk(ctx, func(d *amqp.Delivery) error {
		switch {
		case e.err != nil || m.full(matched):
			p.keep(d)
		case !m.match(d):
			res.Skipped++
			p.keep(d)
		case unreadable(d):
			matched++
			res.Unreadable++
			p.keep(d)
		default:
			matched++
			g := e.write(queue, d)
			switch {
			case g == nil:
				p.keep(d)
			case o.Remove:
				p.add(&item{tag: d.DeliveryTag, pd: g, acked: func() { res.Removed++ }})
			default:
				p.keep(d)
			}
			if e.n >= exportBatch || e.err != nil {
				// A failed write opens the batch's gate at once (its dead
				// letters are kept): the pass must not wait behind it.
				e.flush()
			}
		}
		progress()
		return nil
	})
	progress()
	var errs []error
	if readErr != nil {
		errs = append(errs, fmt.Errorf("admin: export %s stopped after %d exported: %w", queue, res.Exported, readErr))
	}
	if e.err != nil {
		errs = append(errs, fmt.Errorf("admin: export %s stopped after %d exported, the dead letters not removed stay in %s: %w",
			queue, res.Exported, p.dlq, e.err))
	}
	if finErr != nil {
		if inDoubt > 0 && o.Remove {
			finErr = fmt.Errorf("%w; up to %d of the exported dead letters may still be in %s too", finErr, inDoubt, p.dlq)
		}
		errs = append(errs, finErr)
	}
	a.log.Info("admin: exported", "queue", queue, "exported", res.Exported, "removed", res.Removed, "skipped", res.Skipped, "unreadable", res.Unreadable)
	return res, errors.Join(errs...)
}

// exporter writes records in batches; each batch has a flushGate that
// opens once the batch is flushed.
type exporter struct {
	w    io.Writer
	bw   *bufio.Writer
	res  *ExportResult
	sync bool // sync w at each flush

	cur *flushGate // the batch being written; nil before its first record
	n   int        // records in cur
	err error      // the first write, flush or sync error: no more records
}

// write encodes d into the current batch and returns its gate, or nil if
// it could not (e.err then says why).
func (e *exporter) write(queue string, d *amqp.Delivery) *flushGate {
	line, err := encodeRecord(queue, publishingOf(d))
	if err != nil {
		e.err = fmt.Errorf("dead letter %s: %w", d.MessageId, err)
		return nil
	}
	if e.cur == nil {
		e.cur = &flushGate{done: make(chan struct{})}
	}
	if _, err := e.bw.Write(append(line, '\n')); err != nil {
		e.err = fmt.Errorf("write: %w", err)
		return nil
	}
	e.n++
	return e.cur
}

// flush flushes the current batch to w and opens its gate.
func (e *exporter) flush() {
	g, n := e.cur, e.n
	e.cur, e.n = nil, 0
	err := e.err
	if err == nil {
		if err = e.bw.Flush(); err != nil {
			err = fmt.Errorf("write: %w", err)
		}
	}
	if err == nil {
		if fl, ok := e.w.(interface{ Flush() error }); ok {
			if err = fl.Flush(); err != nil {
				err = fmt.Errorf("flush: %w", err)
			}
		}
	}
	if err == nil && e.sync {
		if s, ok := e.w.(interface{ Sync() error }); ok {
			// A pipe or a terminal cannot be synced (EINVAL): written is all it gets.
			if serr := s.Sync(); serr != nil && !errors.Is(serr, syscall.EINVAL) && !errors.Is(serr, syscall.ENOTSUP) {
				err = fmt.Errorf("sync: %w", serr)
			}
		}
	}
	if err != nil && e.err == nil {
		e.err = err
	}
	if g == nil {
		return
	}
	if err == nil {
		e.res.Exported += n
	}
	g.open(err)
}

// flushGate opens once its batch of records is flushed.
type flushGate struct {
	done chan struct{}
	err  error
}

func (g *flushGate) open(err error) {
	g.err = err
	close(g.done)
}

func (g *flushGate) Done() <-chan struct{} { return g.done }

func (g *flushGate) Wait(ctx context.Context) error {
	select {
	case <-g.done:
		return g.err
	default:
	}
	select {
	case <-g.done:
		return g.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
