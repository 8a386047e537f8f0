package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
)

// isRegularFile reports whether w is an *os.File on a regular file.
func isRegularFile(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode().IsRegular()
}

func (a *app) dlqExportCmd() *cobra.Command {
	var (
		f      dlqFlags
		remove bool
		file   string
	)
	cmd := &cobra.Command{
		Use:   "export --queue Q [selectors] [--remove] [--file F]",
		Short: "Write dead letters to NDJSON, for a backup or another broker",
		Long: `Write the dead letters of Q.dlq (all of them, or those selected) to stdout or
to --file F, one JSON record a line, in queue order. A record holds the dead
letter whole: every AMQP property, every header with its AMQP type (int32
stays int32, timestamps, byte arrays, the nested tables and arrays of
x-death), and the body in base64, byte for byte; "warren dlq import" puts
back exactly the same dead letters, on this broker or another. The format
is described in docs/operations.md (Dead letters).

Without --remove, Q.dlq is left as it was: the same dead letters in the same
order. With --remove (which needs --all or a selector, as purge does), each
exported dead letter is removed from Q.dlq, but only after its record has
been written and flushed to the output, and synced to disk when the output
is a file: records go out in batches of 256, and a batch is removed once it
is flushed. So --remove needs a file: --file F, or stdout redirected to a
file; it refuses a pipe or a terminal, which cannot tell that the records
were kept. If the output fails (disk full), the dead letters not yet
removed stay in Q.dlq and the command exits 1; the file may then end with
records, and a last line cut short, of dead letters still in Q.dlq.

--file F creates F with mode 0600 and never overwrites a file. The summary
goes to stderr; with --file, --output json prints it on stdout instead. A
progress bar is drawn on stderr when it is a terminal (and the records do
not go to a terminal).`,
		Example: `  warren dlq export --queue emails > emails-dlq.ndjson
  warren dlq export --queue emails --type email:send --since 2h --file sends.ndjson
  warren dlq export --queue emails --all --remove --file /backup/emails-dlq.ndjson
  warren --url-file old.url dlq export --queue emails | warren --url-file new.url dlq import --queue emails`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			flt, err := f.filter(remove)
			if err != nil {
				return err
			}
			if err := f.checkOutput(); err != nil {
				return err
			}
			toStdout := file == "" || file == "-"
			if toStdout && f.output != "table" {
				return usagef("--output %s prints the summary on stdout, which carries the records without --file: give --file F", f.output)
			}
			if toStdout && remove && !isRegularFile(a.stdout) {
				// A pipe takes the records and may still lose them (its
				// reader fails or exits): only a file tells they were kept.
				return usagef("--remove needs the records in a file: give --file F or redirect stdout to a file (not a pipe or a terminal)")
			}
			if !toStdout {
				if _, err := os.Lstat(file); err == nil {
					return usagef("--file %s exists: export never overwrites a file; choose another name", file)
				} else if !errors.Is(err, os.ErrNotExist) {
					return usagef("--file: %w", err)
				}
			}
			return a.withAdmin(cmd.Context(), "dlq export", func(adm *admin.Inspector) error {
				var (
					out  io.Writer = a.stdout
					name           = "stdout"
					fh   *os.File
				)
				if !toStdout {
					if fh, err = os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
						return err
					}
					out, name = fh, file
				}
				labels := barLabels{done: "exported", skipped: "not selected"}
				if toStdout && isTerminal(a.stdout) {
					labels = barLabels{} // no bar among records shown on the same terminal
				}
				rep := admin.ExportReport{Queue: f.queue, File: name, Remove: remove}
				err := a.pass(cmd.Context(), labels, f.wait, warren.DeadLetterQueue(f.queue), func(ctx context.Context) (err error) {
					rep.ExportResult, err = adm.Export(ctx, f.queue, flt, out, admin.ExportOptions{Remove: remove})
					return err
				})
				if fh != nil {
					if cerr := fh.Close(); cerr != nil && err == nil {
						err = fmt.Errorf("close %s: %w", file, cerr)
					}
					if rep.Exported == 0 && err != nil {
						_ = os.Remove(file) // created empty by this command: nothing to keep
					}
				}
				return a.report(&f, rep, nil, nil, rep.Exported > 0, err, func() { unreadableNote(a.stderr, rep.Unreadable, f.queue, "exported", "") })
			})
		}),
	}
	fs := cmd.Flags()
	f.addQueue(fs)
	f.addSelectors(fs)
	fs.Lookup("all").Usage = "select every dead letter (the default without --remove; --remove needs it or a selector)"
	fs.BoolVar(&remove, "remove", false, "remove each exported dead letter from Q.dlq once its record is written and flushed")
	fs.StringVarP(&file, "file", "f", "", "write to `file` (created, mode 0600, never overwritten) instead of stdout")
	f.addWait(fs)
	fs.StringVarP(&f.output, "output", "o", "table", "summary `format`: table (text on stderr), json or ndjson (on stdout; needs --file)")
	noEnv(fs, "remove", "file")
	_ = cmd.MarkFlagRequired("queue")
	return cmd
}

func (a *app) dlqImportCmd() *cobra.Command {
	var (
		f       dlqFlags
		file    string
		toQueue string
	)
	cmd := &cobra.Command{
		Use:   "import (--queue Q | --to-queue QUEUE) [--file F]",
		Short: "Put exported dead letters back into a dead-letter queue",
		Long: `Read the records "warren dlq export" writes, from stdin or from --file F, and
publish them into Q.dlq in their order, after the dead letters already
there, each with a publisher confirm: every property, header (with its AMQP
type) and body byte as exported. Only x-delivery-count is left out: it is
the broker's count for the queue the record was exported from.

The whole input is checked before anything is published: if any line is not
a valid record (blank lines are skipped), the command names the bad lines
(up to 10), imports nothing, and exits 1.

A record whose dead letter Q.dlq already holds (the same in every property,
header and body byte) is skipped, once for each copy there: importing the
same file twice, or again after an interrupted import, imports each dead
letter once. The summary counts them as already there.

Q.dlq must exist (warren topology declare --queue Q): import never declares
a queue. --to-queue QUEUE publishes into that existing queue instead of a
Q.dlq, as is and without the check for duplicates, for a holding queue that
no dlq command manages; it replaces --queue.

The summary goes to stderr; --output json prints it on stdout instead. A
progress bar is drawn on stderr when it is a terminal.`,
		Example: `  warren dlq import --queue emails < emails-dlq.ndjson
  warren dlq import --queue emails --file /backup/emails-dlq.ndjson --output json
  warren dlq import --to-queue emails-quarantine --file emails-dlq.ndjson
  warren --url-file old.url dlq export --queue emails | warren --url-file new.url dlq import --queue emails`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			switch {
			case f.queue == "" && toQueue == "":
				return usagef("give --queue Q (imports into Q.dlq) or --to-queue QUEUE")
			case f.queue != "" && toQueue != "":
				return usagef("--queue and --to-queue cannot be used together: --to-queue names the queue to import into")
			case f.queue != "":
				if err := checkQueues([]string{f.queue}); err != nil {
					return err
				}
			default:
				if err := checkQueues([]string{toQueue}); err != nil {
					return err
				}
			}
			if err := f.checkOutput(); err != nil {
				return err
			}
			var in io.Reader = a.stdin
			name := "stdin"
			if file != "" && file != "-" {
				fh, err := os.Open(file)
				if err != nil {
					return usagef("--file: %w", err)
				}
				defer fh.Close()
				in, name = fh, file
			} else if isTerminal(a.stdin) {
				return usagef("no input: redirect the records of warren dlq export to stdin (< dead.ndjson) or give --file F")
			}
			target := toQueue
			if target == "" {
				target = warren.DeadLetterQueue(f.queue)
			}
			return a.withAdmin(cmd.Context(), "dlq import", func(adm *admin.Inspector) error {
				rep := admin.ImportReport{From: name, Into: target}
				err := a.pass(cmd.Context(), barLabels{done: "imported", skipped: "already there", failed: "failed"}, f.wait, target, func(ctx context.Context) (err error) {
					rep.ImportResult, err = adm.Import(ctx, f.queue, in, admin.ImportOptions{ToQueue: toQueue})
					return err
				})
				return a.report(&f, rep, nil, nil, rep.Imported > 0 || rep.Duplicates > 0 || rep.Failed > 0, err, nil)
			})
		}),
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.queue, "queue", "q", "", "the Warren `queue` whose dead-letter queue (Q.dlq) receives the records (required unless --to-queue)")
	fs.StringVar(&toQueue, "to-queue", "", "publish into this existing `queue` instead, as is, without the check for duplicates")
	fs.StringVarP(&file, "file", "f", "", "read the records from `file` instead of stdin")
	f.addWait(fs)
	f.addOutput(fs)
	fs.Lookup("output").Usage = "summary `format`: table (text on stderr), json or ndjson (on stdout)"
	noEnv(fs, "file")
	return cmd
}
