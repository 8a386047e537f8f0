package chaos

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ledger events. A ledger line is
//
//	<unix nanoseconds> <event> <key> <pid> [detail...]
//
// with "-" as the key of events that concern no job. Each agent process
// writes its own file, one write per line, so a SIGKILL never leaves half a
// line behind another process's line.
const (
	EvUp        = "up"        // the agent connected (detail: role)
	EvReconnect = "reconnect" // its connection came back after a loss
	EvConfirmed = "confirmed" // producer: Enqueue returned nil (detail: task ID)
	EvEnqErr    = "enqerr"    // producer: Enqueue failed; it tries again (detail: error)
	EvGaveUp    = "gaveup"    // producer: stopped trying; the job may or may not be stored
	EvStart     = "start"     // worker: handler started (detail: delivery count, redelivered)
	EvDone      = "done"      // worker: handler completed and returns nil
	EvAbort     = "abort"     // worker: handler returned early, its context cancelled (channel lost, shutdown cut-off)
	EvFail      = "fail"      // worker: a flaky job's first attempt fails (the pool schedules a retry)
	EvPoison    = "poison"    // worker: a poison job is about to SIGKILL this process
	EvRunErr    = "runerr"    // worker: Pool.Run returned an error; a new pool starts
	EvExit      = "exit"      // the agent is exiting cleanly (detail: stats)
)

// Record is one ledger line.
type Record struct {
	At     time.Time
	Event  string
	Key    string
	PID    int
	Detail string
}

// LedgerWriter appends records to one agent's ledger file. It is safe for
// concurrent use.
type LedgerWriter struct {
	mu  sync.Mutex
	f   *os.File
	pid int
}

// OpenLedger opens (creating or appending to) the ledger file at path.
func OpenLedger(path string) (*LedgerWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("chaos: open ledger: %w", err)
	}
	return &LedgerWriter{f: f, pid: os.Getpid()}, nil
}

// Write appends one record for this process, in a single write. key ""
// is written as "-".
func (w *LedgerWriter) Write(event, key, detail string) error {
	if key == "" {
		key = "-"
	}
	line := strconv.FormatInt(time.Now().UnixNano(), 10) + " " + event + " " + key + " " + strconv.Itoa(w.pid)
	if detail != "" {
		line += " " + strings.ReplaceAll(detail, "\n", " ")
	}
	line += "\n"
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := w.f.WriteString(line)
	return err
}

// Close closes the file.
func (w *LedgerWriter) Close() error { return w.f.Close() }

// ParseRecord reads one ledger line (without its newline).
func ParseRecord(line string) (Record, error) {
	f := strings.SplitN(line, " ", 5)
	if len(f) < 4 {
		return Record{}, fmt.Errorf("chaos: ledger line %q: want at least 4 fields", line)
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("chaos: ledger line %q: time: %w", line, err)
	}
	pid, err := strconv.Atoi(f[3])
	if err != nil {
		return Record{}, fmt.Errorf("chaos: ledger line %q: pid: %w", line, err)
	}
	r := Record{At: time.Unix(0, ns), Event: f[1], Key: f[2], PID: pid}
	if r.Key == "-" {
		r.Key = ""
	}
	if len(f) == 5 {
		r.Detail = f[4]
	}
	return r, nil
}

// ReadLedger parses every complete line of the file at path. A last line
// without its newline (a write cut short) is ignored.
func ReadLedger(path string) ([]Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	recs, _, err := parseLines(b)
	return recs, err
}

// parseLines parses the complete lines of b and returns how many bytes it consumed.
func parseLines(b []byte) ([]Record, int, error) {
	var out []Record
	used := 0
	for {
		i := bytes.IndexByte(b[used:], '\n')
		if i < 0 {
			return out, used, nil
		}
		line := string(b[used : used+i])
		used += i + 1
		if line == "" {
			continue
		}
		r, err := ParseRecord(line)
		if err != nil {
			return out, used, err
		}
		out = append(out, r)
	}
}

// Index follows every ledger file of a directory while agents write them,
// and answers the questions the fault schedule asks: which jobs a worker
// holds, whether every agent has made progress since an instant. It is
// safe for concurrent use; Refresh reads what was appended since the last
// call.
type Index struct {
	dir string

	mu      sync.Mutex
	offsets map[string]int64
	files   map[string][]Record // per file, in order
	// derived
	confirmed map[string]time.Time // key → first confirm
	done      map[string][]time.Time
	doneBy    map[string]map[int]int // key → pid → completions
	started   map[int]map[string]time.Time
	lastEvent map[int]map[string]time.Time // pid → event → latest time
	pidFile   map[int]string
	errs      []error
}

// NewIndex returns an Index of the *.ledger files in dir.
func NewIndex(dir string) *Index {
	return &Index{
		dir:       dir,
		offsets:   map[string]int64{},
		files:     map[string][]Record{},
		confirmed: map[string]time.Time{},
		done:      map[string][]time.Time{},
		doneBy:    map[string]map[int]int{},
		started:   map[int]map[string]time.Time{},
		lastEvent: map[int]map[string]time.Time{},
		pidFile:   map[int]string{},
	}
}

// Refresh reads the lines appended to the ledger files since the last call.
func (x *Index) Refresh() error {
	paths, err := filepath.Glob(filepath.Join(x.dir, "*.ledger"))
	if err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, p := range paths {
		if err := x.readFile(p); err != nil {
			x.errs = append(x.errs, err)
		}
	}
	if len(x.errs) > 0 {
		return x.errs[0]
	}
	return nil
}

func (x *Index) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	off := x.offsets[path]
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	recs, used, err := parseLines(b)
	x.offsets[path] = off + int64(used)
	for _, r := range recs {
		x.add(path, r)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return nil
}

func (x *Index) add(path string, r Record) {
	x.files[path] = append(x.files[path], r)
	x.pidFile[r.PID] = path
	ev := x.lastEvent[r.PID]
	if ev == nil {
		ev = map[string]time.Time{}
		x.lastEvent[r.PID] = ev
	}
	if r.At.After(ev[r.Event]) {
		ev[r.Event] = r.At
	}
	switch r.Event {
	case EvConfirmed:
		if _, ok := x.confirmed[r.Key]; !ok {
			x.confirmed[r.Key] = r.At
		}
	case EvStart:
		s := x.started[r.PID]
		if s == nil {
			s = map[string]time.Time{}
			x.started[r.PID] = s
		}
		s[r.Key] = r.At
	case EvDone:
		x.done[r.Key] = append(x.done[r.Key], r.At)
		by := x.doneBy[r.Key]
		if by == nil {
			by = map[int]int{}
			x.doneBy[r.Key] = by
		}
		by[r.PID]++
		delete(x.started[r.PID], r.Key)
	case EvPoison, EvAbort, EvFail:
		delete(x.started[r.PID], r.Key)
	}
}

// Running returns the jobs pid has started and not finished, leaving out
// any that another worker completed after pid started it (pid's run was
// cut short without a trace, and the job went on elsewhere).
func (x *Index) Running(pid int) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]string, 0, len(x.started[pid]))
outer:
	for k, at := range x.started[pid] {
		for _, d := range x.done[k] {
			if d.After(at) {
				continue outer
			}
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DoneAfter reports whether key was completed after t, and when first.
func (x *Index) DoneAfter(key string, t time.Time) (time.Time, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var first time.Time
	for _, at := range x.done[key] {
		if at.After(t) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first, !first.IsZero()
}

// DoneBy returns how many times pid completed key.
func (x *Index) DoneBy(key string, pid int) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.doneBy[key][pid]
}

// FirstAfter returns the first time pid wrote event after t.
func (x *Index) FirstAfter(pid int, event string, t time.Time) (time.Time, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	path, ok := x.pidFile[pid]
	if !ok {
		return time.Time{}, false
	}
	if last := x.lastEvent[pid][event]; !last.After(t) {
		return time.Time{}, false
	}
	// Lines of one file are in write order, which is time order give or
	// take the scheduling of the writing goroutines: scan back a margin.
	recs := x.files[path]
	var first time.Time
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if r.At.Before(t.Add(-5 * time.Second)) {
			break
		}
		if r.PID == pid && r.Event == event && r.At.After(t) && (first.IsZero() || r.At.Before(first)) {
			first = r.At
		}
	}
	return first, !first.IsZero()
}

// Last returns the last time pid wrote event.
func (x *Index) Last(pid int, event string) (time.Time, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	t, ok := x.lastEvent[pid][event]
	return t, ok
}

// Counts returns the distinct keys confirmed and completed so far.
func (x *Index) Counts() (confirmed, done int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.confirmed), len(x.done)
}

// DoneBetween counts completions (duplicates included) in (from, to].
func (x *Index) DoneBetween(from, to time.Time) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for _, ts := range x.done {
		for _, at := range ts {
			if at.After(from) && !at.After(to) {
				n++
			}
		}
	}
	return n
}

// ConfirmedBetween counts confirms in (from, to].
func (x *Index) ConfirmedBetween(from, to time.Time) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for _, recs := range x.files {
		for _, r := range recs {
			if r.Event == EvConfirmed && r.At.After(from) && !r.At.After(to) {
				n++
			}
		}
	}
	return n
}

// Unfinished returns how many confirmed keys are not completed yet.
func (x *Index) Unfinished() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for k := range x.confirmed {
		if len(x.done[k]) == 0 {
			n++
		}
	}
	return n
}

// Records returns every record read so far, sorted by time.
func (x *Index) Records() []Record {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []Record
	for _, recs := range x.files {
		out = append(out, recs...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// CountBetween counts event lines written by the processes in pids in
// (from, to].
func (x *Index) CountBetween(pids map[int]bool, event string, from, to time.Time) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for pid := range pids {
		for _, r := range x.files[x.pidFile[pid]] {
			if r.PID == pid && r.Event == event && r.At.After(from) && !r.At.After(to) {
				n++
			}
		}
	}
	return n
}
