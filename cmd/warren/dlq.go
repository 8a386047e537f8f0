package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/internal/termtext"
)

// dlqFlags are the selection flags shared by the dlq commands.
type dlqFlags struct {
	queue  string
	ids    []string
	types  []string
	all    bool
	limit  int
	output string

	errRE, since, until string // --error, --since, --until
	unreadable          bool   // --unreadable
	wait                bool   // --wait
}

func (f *dlqFlags) addWait(fs *pflag.FlagSet) {
	fs.BoolVar(&f.wait, "wait", false, "if another dlq command is using Q.dlq, wait for it to end instead of failing")
}

func (f *dlqFlags) addQueue(fs *pflag.FlagSet) {
	fs.StringVarP(&f.queue, "queue", "q", "", "the Warren `queue` whose dead-letter queue (Q.dlq) to use (required)")
}

func (f *dlqFlags) addSelectors(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.ids, "id", nil, "select the dead letter of task `ID` (repeatable)")
	fs.StringArrayVar(&f.types, "type", nil, "select dead letters of task `type` (repeatable)")
	fs.BoolVar(&f.all, "all", false, "select every dead letter")
	fs.IntVarP(&f.limit, "limit", "n", 0, "act on at most this many of the selected, in queue order (0: no limit)")
	f.addMatchers(fs)
	noEnv(fs, "id", "type", "all", "limit")
}

func (f *dlqFlags) addOutput(fs *pflag.FlagSet) {
	fs.StringVarP(&f.output, "output", "o", "table", "output `format`: table, json or ndjson (one JSON object a line)")
}

func (f *dlqFlags) checkOutput() error { return oneOf("output", f.output, "table", "json", "ndjson") }

// writeResult prints a command's result object: indented for json, on one
// line for ndjson.
func (f *dlqFlags) writeResult(w io.Writer, v any) error {
	if f.output == "ndjson" {
		return json.NewEncoder(w).Encode(v)
	}
	return writeJSON(w, v)
}

// filter checks the selection flags. bulk operations need --id, --type or --all.
func (f *dlqFlags) filter(bulk bool) (admin.Filter, error) {
	if err := checkQueues([]string{f.queue}); err != nil {
		return admin.Filter{}, err
	}
	if f.limit < 0 {
		return admin.Filter{}, usagef("--limit cannot be negative (got %d)", f.limit)
	}
	if bulk && !f.all && len(f.ids) == 0 && len(f.types) == 0 && !f.hasMatchers() {
		return admin.Filter{}, usagef("select dead letters with --id (repeatable), --type, --error, --since, --until, --unreadable or --all")
	}
	if f.all && (len(f.ids) > 0 || len(f.types) > 0 || f.hasMatchers()) {
		return admin.Filter{}, usagef("--all selects everything: do not combine it with --id, --type, --error, --since, --until or --unreadable")
	}
	for _, id := range f.ids {
		if id == "" {
			return admin.Filter{}, usagef("--id cannot be empty")
		}
	}
	flt := admin.Filter{IDs: f.ids, Types: f.types, All: f.all, Limit: f.limit}
	if err := f.matchers(&flt, time.Now()); err != nil {
		return admin.Filter{}, err
	}
	return flt, nil
}

func (a *app) dlqCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, replay, purge, export and import dead letters",
		Long: `Inspect and repair a queue's dead-letter queue (Q.dlq): the tasks that failed
for good, with why and when.

Only one dlq command at a time works on a dead-letter queue; another one
fails at once with "busy" until it ends (or waits, with --wait).

Every dlq command takes --output json for scripts. replay, purge, export and
import draw a progress bar on stderr when it is a terminal.`,
		Example: `  warren dlq list --queue emails
  warren dlq show --queue emails --id 0190a1b2-...
  warren dlq replay --queue emails --type email:send
  warren dlq purge --queue emails --all --yes
  warren dlq export --queue emails > emails-dlq.ndjson
  warren dlq import --queue emails < emails-dlq.ndjson`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.dlqListCmd(), a.dlqShowCmd(), a.dlqReplayCmd(), a.dlqPurgeCmd(), a.dlqExportCmd(), a.dlqImportCmd())
	return cmd
}

func (a *app) withAdmin(ctx context.Context, what string, fn func(*admin.Inspector) error) error {
	conn, err := a.dial(ctx, what, 1)
	if err != nil {
		return err
	}
	defer a.closeConn(conn)
	return fn(admin.New(conn, admin.Config{Logger: a.log}))
}

func (a *app) dlqListCmd() *cobra.Command {
	var (
		f       dlqFlags
		groupBy string
	)
	cmd := &cobra.Command{
		Use:   "list --queue Q [selectors] [--group-by error|type] [--output table|json|ndjson]",
		Short: "List the dead letters of a queue, or count them by error or type",
		Long: `List the dead letters of Q.dlq, oldest first, without removing them.

The table shows each task's ID, type, attempts, age (since it was first
enqueued), when it failed, why (the reason) and the first line of its error.
--output json prints an array with every detail, payload included; ndjson
prints the same objects one a line, as they are read.

Select with --id, --type, --error (a regexp on the error text), --since and
--until (on the failure time: RFC 3339, or a duration ago such as 2h or 3d)
and --limit.

--group-by error counts the dead letters per error fingerprint: the first
line of the error with numbers, UUIDs, hex IDs, IP addresses, host:port and
quoted strings replaced, so that "dial tcp 10.0.0.7:5432: connection
refused" and "dial tcp 10.0.0.9:5432: connection refused" count together.
--group-by type counts them per task type. Largest groups first.`,
		Example: `  warren dlq list --queue emails
  warren dlq list --queue emails --type email:send --limit 20 --output json
  warren dlq list --queue emails --group-by error
  warren dlq list --queue emails --error 'connection refused' --since 2h --output ndjson`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			flt, err := f.filter(false)
			if err != nil {
				return err
			}
			if err := f.checkOutput(); err != nil {
				return err
			}
			if groupBy != "" {
				if err := oneOf("group-by", groupBy, "error", "type"); err != nil {
					return err
				}
			}
			return a.withAdmin(cmd.Context(), "dlq list", func(adm *admin.Inspector) error {
				ctx := cmd.Context()
				switch {
				case groupBy != "":
					groups, err := adm.Group(ctx, f.queue, flt, admin.GroupBy(groupBy))
					if err != nil {
						return err
					}
					switch f.output {
					case "json":
						return writeJSON(a.stdout, nonNil(groups))
					case "ndjson":
						return each(groups, json.NewEncoder(a.stdout).Encode)
					}
					return admin.WriteGroups(a.stdout, admin.GroupBy(groupBy), groups)
				case f.output == "ndjson":
					enc := json.NewEncoder(a.stdout)
					return adm.Each(ctx, f.queue, flt, func(dl admin.DeadLetter) error { return enc.Encode(dl) })
				}
				dls, err := adm.List(ctx, f.queue, flt)
				if err != nil {
					return err
				}
				if f.output == "json" {
					return writeJSON(a.stdout, nonNil(dls))
				}
				if err := admin.WriteTable(a.stdout, dls, time.Now()); err != nil {
					return err
				}
				if len(dls) == 0 {
					fmt.Fprintf(a.stderr, "no dead letters in %s\n", warren.DeadLetterQueue(f.queue))
				}
				if n := countUnreadable(dls); n > 0 && !f.unreadable {
					fmt.Fprintf(a.stderr, "%s listed with reason unreadable: Warren cannot read their headers (the broker keeps them as they were); dlq purge --queue %s --unreadable --yes removes them, dlq replay --queue %s --unreadable --strip-unreadable replays them without their headers\n",
						plural(n, "dead letter", "dead letters"), f.queue, f.queue)
				}
				return nil
			})
		}),
	}
	fs := cmd.Flags()
	f.addQueue(fs)
	fs.StringArrayVar(&f.ids, "id", nil, "only the dead letter of task `ID` (repeatable)")
	fs.StringArrayVar(&f.types, "type", nil, "only dead letters of task `type` (repeatable)")
	fs.IntVarP(&f.limit, "limit", "n", 0, "list at most this many (0: all)")
	f.addMatchers(fs)
	fs.StringVar(&groupBy, "group-by", "", "count dead letters per error fingerprint or per type (`error|type`) instead of listing them")
	f.addOutput(fs)
	noEnv(fs, "id")
	_ = cmd.MarkFlagRequired("queue")
	return cmd
}

func (a *app) dlqShowCmd() *cobra.Command {
	var (
		f  dlqFlags
		id string
	)
	cmd := &cobra.Command{
		Use:   "show --queue Q --id ID [--output table|json]",
		Short: "Show one dead letter in full: error, history, stack, payload",
		Long: `Show one dead letter of Q.dlq in full, without removing it: why and when
it failed, the error, every earlier failed attempt, the stack of a panic,
its own headers and the payload. --output json prints the same as one
element of "dlq list --output json".`,
		Example: `  warren dlq show --queue emails --id 0190a1b2-...
  warren dlq show --queue emails --id 0190a1b2-... --output json | jq .payload`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			if err := checkQueues([]string{f.queue}); err != nil {
				return err
			}
			if err := f.checkOutput(); err != nil {
				return err
			}
			return a.withAdmin(cmd.Context(), "dlq show", func(adm *admin.Inspector) error {
				dl, err := adm.Get(cmd.Context(), f.queue, id)
				if err != nil {
					return err
				}
				if f.output != "table" {
					return f.writeResult(a.stdout, dl)
				}
				return dl.WriteText(a.stdout, time.Now())
			})
		}),
	}
	fs := cmd.Flags()
	f.addQueue(fs)
	fs.StringVar(&id, "id", "", "the task `ID` (required)")
	f.addOutput(fs)
	noEnv(fs, "id")
	_ = cmd.MarkFlagRequired("queue")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

func (a *app) dlqReplayCmd() *cobra.Command {
	var (
		f               dlqFlags
		dryRun          bool
		toQueue         string
		rate            string
		stripUnreadable bool
	)
	cmd := &cobra.Command{
		Use:   "replay --queue Q (--id ID ... | --type T ... | --all) [--dry-run]",
		Short: "Put dead letters back to work on their queue",
		Long: `Publish the selected dead letters back to their queue (or --to-queue) with
their attempt count reset, then remove them from Q.dlq. A dead letter leaves
Q.dlq only once the broker has confirmed its copy: an interrupted replay
loses nothing. Each copy is also kept in the journal Q.dlq.replayed until
the replay ends, so running a killed replay again replays nothing twice:
it removes the dead letters the killed run had already replayed (counted
as "already replayed"). The replayed task IDs are
printed on stdout, one a line, and a summary on stderr; --output json prints
one object with the counts and the IDs instead.

The task keeps its ID, payload and headers (trace context included).`,
		Example: `  warren dlq replay --queue emails --all --dry-run
  warren dlq replay --queue emails --id 0190a1b2-... --id 0190a1b3-...
  warren dlq replay --queue emails --type email:send --to-queue emails-retry
  warren dlq replay --queue emails --all --output json`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			flt, err := f.filter(true)
			if err != nil {
				return err
			}
			if toQueue != "" {
				if toQueue == warren.DeadLetterQueue(f.queue) || toQueue == admin.JournalQueue(f.queue) {
					return usagef("--to-queue %s is the dead-letter queue being replayed (or its journal): name the queue the tasks should go to", toQueue)
				}
				if err := checkQueues([]string{toQueue}); err != nil {
					return err
				}
			}
			if err := f.checkOutput(); err != nil {
				return err
			}
			perSec, err := parseRate(rate)
			if err != nil {
				return err
			}
			return a.withAdmin(cmd.Context(), "dlq replay", func(adm *admin.Inspector) error {
				labels := barLabels{done: "replayed", skipped: "not selected", failed: "failed"}
				if dryRun {
					labels.done = "would replay"
				}
				rep := admin.ReplayReport{Queue: f.queue, DryRun: dryRun}
				err := a.pass(cmd.Context(), labels, f.wait, warren.DeadLetterQueue(f.queue), func(ctx context.Context) (err error) {
					rep.ReplayResult, err = adm.Replay(ctx, f.queue, flt, admin.ReplayOptions{DryRun: dryRun, ToQueue: toQueue, Rate: perSec, StripUnreadable: stripUnreadable})
					return err
				})
				did := rep.Replayed > 0 || rep.Failed > 0 || rep.Resumed > 0 || rep.Unconfirmed > 0 || rep.Unreadable > 0
				return a.report(&f, rep, rep.IDs, f.ids, did, err, func() {
					unreadableNote(a.stderr, rep.Unreadable, f.queue, "replayed", "or replay them without their headers with --strip-unreadable")
				})
			})
		}),
	}
	fs := cmd.Flags()
	f.addQueue(fs)
	f.addSelectors(fs)
	fs.BoolVar(&dryRun, "dry-run", false, "only report what would be replayed")
	fs.BoolVar(&stripUnreadable, "strip-unreadable", false, "also replay the selected dead letters whose headers Warren cannot read, without those headers (body, ID, type and properties kept); without it they stay in the dead-letter queue")
	fs.StringVar(&toQueue, "to-queue", "", "replay to this `queue` instead of each task's own")
	fs.StringVar(&rate, "rate", "", "replay at most this many a second (`N/s`, e.g. 100/s; default: as fast as the broker confirms)")
	f.addWait(fs)
	f.addOutput(fs)
	_ = cmd.MarkFlagRequired("queue")
	return cmd
}

func (a *app) dlqPurgeCmd() *cobra.Command {
	var (
		f   dlqFlags
		yes bool
	)
	cmd := &cobra.Command{
		Use:   "purge --queue Q (--id ID ... | --type T ... | --all) --yes",
		Short: "Delete dead letters for good",
		Long: `Delete the selected dead letters of Q.dlq for good and print their task IDs
(--output json: one object with the count and the IDs). Without --yes it
asks for confirmation on a terminal, and refuses otherwise.`,
		Example: `  warren dlq purge --queue emails --id 0190a1b2-... --yes
  warren dlq purge --queue emails --type email:send --yes --output json
  warren dlq purge --queue emails --all`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, _ []string) error {
			flt, err := f.filter(true)
			if err != nil {
				return err
			}
			if err := f.checkOutput(); err != nil {
				return err
			}
			if !yes {
				if !isTerminal(a.stdin) {
					return usagef("refusing to purge without --yes (no terminal to confirm on)")
				}
				what := "every dead letter"
				switch {
				case len(f.ids) > 0:
					what = plural(len(f.ids), "dead letter", "dead letters") + " by ID"
				case len(f.types) > 0:
					what = "the dead letters of type " + strings.Join(f.types, ", ")
				}
				if f.hasMatchers() {
					what = "the dead letters selected by " + f.describe()
				}
				if f.limit > 0 {
					what = fmt.Sprintf("at most %d of %s", f.limit, what)
				}
				ok, err := confirm(a.stdin, a.stderr, fmt.Sprintf("Delete %s in %s for good? [y/N] ", what, warren.DeadLetterQueue(f.queue)))
				if err != nil {
					return err
				}
				if !ok {
					fmt.Fprintln(a.stderr, "nothing purged")
					return nil
				}
			}
			return a.withAdmin(cmd.Context(), "dlq purge", func(adm *admin.Inspector) error {
				rep := admin.PurgeReport{Queue: f.queue}
				err := a.pass(cmd.Context(), barLabels{done: "purged", skipped: "not selected"}, f.wait, warren.DeadLetterQueue(f.queue), func(ctx context.Context) (err error) {
					rep.PurgeResult, err = adm.Purge(ctx, f.queue, flt)
					return err
				})
				return a.report(&f, rep, rep.IDs, f.ids, rep.Purged > 0, err, nil)
			})
		}),
	}
	fs := cmd.Flags()
	f.addQueue(fs)
	f.addSelectors(fs)
	fs.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	f.addWait(fs)
	f.addOutput(fs)
	noEnv(fs, "yes")
	_ = cmd.MarkFlagRequired("queue")
	return cmd
}

func countUnreadable(dls []admin.DeadLetter) int {
	n := 0
	for _, dl := range dls {
		if dl.Unreadable {
			n++
		}
	}
	return n
}

// unreadableNote tells where the n dead letters a command left alone
// because their headers cannot be read are, and what to do with them.
func unreadableNote(w io.Writer, n int, queue, verb, more string) {
	if n == 0 {
		return
	}
	if more != "" {
		more = "; " + more
	}
	fmt.Fprintf(w, "%s whose headers Warren cannot read not %s: they stay in %s (dlq list --queue %s --unreadable shows them; dlq purge --queue %s --unreadable --yes removes them%s)\n",
		plural(n, "dead letter", "dead letters"), verb, warren.DeadLetterQueue(queue), queue, queue, more)
}

// nonNil makes an empty list print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// report prints the outcome of a dlq pass: with --output json or ndjson
// its JSON on stdout; else the IDs it acted on (ids) on stdout, and its
// summary and note (if not nil) on stderr, unless it failed having done
// nothing (did is false), when its error says it all. Then err, or the IDs
// asked for that it did not act on.
func (a *app) report(f *dlqFlags, rep interface{ Summary() string }, ids, asked []string, did bool, err error, note func()) error {
	if f.output != "table" {
		if jerr := f.writeResult(a.stdout, rep); jerr != nil {
			return jerr
		}
	} else {
		for _, id := range ids {
			fmt.Fprintln(a.stdout, termtext.Line(id))
		}
		if err != nil && !did {
			return err
		}
		fmt.Fprintln(a.stderr, rep.Summary())
		if note != nil {
			note()
		}
	}
	if err != nil {
		return err
	}
	return missingIDs(asked, ids, f.queue)
}

// confirm asks question on w and reads a yes from r.
func confirm(r io.Reader, w io.Writer, question string) (bool, error) {
	fmt.Fprint(w, question)
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// missingIDs reports the IDs asked for that were not acted on.
func missingIDs(asked, done []string, queue string) error {
	if len(asked) == 0 {
		return nil
	}
	got := make(map[string]bool, len(done))
	for _, id := range done {
		got[id] = true
	}
	var missing []string
	for _, id := range asked {
		if !got[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s not in %s: %s", plural(len(missing), "task", "tasks"), warren.DeadLetterQueue(queue), strings.Join(missing, ", "))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// each calls fn on every element of s, up to the first error.
func each[T any](s []T, fn func(any) error) error {
	for _, v := range s {
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}
