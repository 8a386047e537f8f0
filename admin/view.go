package admin

import (
	"encoding/json"
	"fmt"

	"github.com/warrenq/warren"
)

// The reports below are the outcome of a pass over a dead-letter queue as
// a front end shows it: JSON (what `warren dlq ... --output json` prints,
// and what an HTTP API serves) and a one-line summary in words.

// ReplayReport is the outcome of a Replay of Queue's dead letters.
type ReplayReport struct {
	Queue  string
	DryRun bool
	ReplayResult
}

// MarshalJSON writes r with its counts and IDs (an empty list as []).
func (r ReplayReport) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Queue           string   `json:"queue"`
		DeadLetterQueue string   `json:"dead_letter_queue"`
		DryRun          bool     `json:"dry_run"`
		Replayed        int      `json:"replayed"`
		Resumed         int      `json:"resumed"`
		Skipped         int      `json:"skipped"`
		Failed          int      `json:"failed"`
		Unreadable      int      `json:"unreadable"`
		Unconfirmed     int      `json:"unconfirmed"`
		IDs             []string `json:"ids"`
	}{r.Queue, warren.DeadLetterQueue(r.Queue), r.DryRun, r.Replayed, r.Resumed, r.Skipped, r.Failed, r.Unreadable, r.Unconfirmed, orEmpty(r.IDs)})
}

// Summary says what the replay did, on one line.
func (r ReplayReport) Summary() string {
	verb := "replayed"
	if r.DryRun {
		verb = "would replay"
	}
	s := fmt.Sprintf("%s %s from %s", verb, plural(r.Replayed, "dead letter", "dead letters"), warren.DeadLetterQueue(r.Queue))
	s += count(r.Resumed, ", %d already replayed by an interrupted replay (removed, not replayed again)")
	s += count(r.Skipped, ", %d not selected") + count(r.Failed, ", %d failed")
	return s + count(r.Unconfirmed, ", %d published without a confirm (kept; the next replay completes them)")
}

// PurgeReport is the outcome of a Purge of Queue's dead letters.
type PurgeReport struct {
	Queue string
	PurgeResult
}

// MarshalJSON writes r with its count and IDs (an empty list as []).
func (r PurgeReport) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Queue           string   `json:"queue"`
		DeadLetterQueue string   `json:"dead_letter_queue"`
		Purged          int      `json:"purged"`
		IDs             []string `json:"ids"`
	}{r.Queue, warren.DeadLetterQueue(r.Queue), r.Purged, orEmpty(r.IDs)})
}

// Summary says what the purge did, on one line.
func (r PurgeReport) Summary() string {
	return fmt.Sprintf("purged %s from %s", plural(r.Purged, "dead letter", "dead letters"), warren.DeadLetterQueue(r.Queue))
}

// ExportReport is the outcome of an Export of Queue's dead letters to File
// (a name for the output: a path, or "stdout").
type ExportReport struct {
	Queue, File string
	Remove      bool
	ExportResult
}

// MarshalJSON writes r with its counts.
func (r ExportReport) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Queue           string `json:"queue"`
		DeadLetterQueue string `json:"dead_letter_queue"`
		File            string `json:"file"`
		Exported        int    `json:"exported"`
		Removed         int    `json:"removed"`
		Skipped         int    `json:"skipped"`
		Unreadable      int    `json:"unreadable"`
	}{r.Queue, warren.DeadLetterQueue(r.Queue), r.File, r.Exported, r.Removed, r.Skipped, r.Unreadable})
}

// Summary says what the export did, on one line.
func (r ExportReport) Summary() string {
	s := fmt.Sprintf("exported %s from %s to %s", plural(r.Exported, "dead letter", "dead letters"), warren.DeadLetterQueue(r.Queue), r.File)
	if r.Remove {
		s += fmt.Sprintf(", removed %d", r.Removed)
	}
	return s + count(r.Skipped, ", %d not selected")
}

// ImportReport is the outcome of an Import from From (a name for the
// input: a path, or "stdin") into the queue Into.
type ImportReport struct {
	From, Into string
	ImportResult
}

// MarshalJSON writes r with its counts; "queue" is Into.
func (r ImportReport) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Queue      string `json:"queue"`
		Records    int    `json:"records"`
		Imported   int    `json:"imported"`
		Duplicates int    `json:"duplicates"`
		Failed     int    `json:"failed"`
	}{r.Into, r.Records, r.Imported, r.Duplicates, r.Failed})
}

// Summary says what the import did, on one line.
func (r ImportReport) Summary() string {
	s := fmt.Sprintf("imported %s from %s into %s", plural(r.Imported, "dead letter", "dead letters"), r.From, r.Into)
	s += count(r.Duplicates, ", %d already there (skipped)") + count(r.Failed, ", %d failed")
	return s + count(r.Records-r.Imported-r.Duplicates-r.Failed, ", %d not tried")
}

// count formats n with format when it is positive, else "".
func count(n int, format string) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(format, n)
}

// orEmpty makes an empty list marshal as [] rather than null.
func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
