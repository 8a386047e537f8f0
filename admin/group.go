package admin

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// GroupBy names what Group counts dead letters by.
type GroupBy string

// What Group can count by.
const (
	// ByError groups dead letters by the Fingerprint of their error, so
	// that thousands of failures read as their few causes. A dead letter
	// without an error text (the broker's delivery_limit, say) counts
	// under "(no error: <reason>)".
	ByError GroupBy = "error"
	// ByType groups them by task type.
	ByType GroupBy = "type"
)

// Group is the dead letters that share a key.
type Group struct {
	// Key is the error fingerprint (ByError) or the task type (ByType).
	Key string
	// Count is how many dead letters the group has.
	Count int
	// ExampleID is the ID of the group's first dead letter in queue order.
	ExampleID string
	// Example is that dead letter's error, as written (ByError only).
	Example string
	// OldestFailure and NewestFailure span the group's failure times; zero
	// when none of its dead letters has one.
	OldestFailure, NewestFailure time.Time
}

// Group counts the dead letters of queue that f selects by error
// fingerprint or by type, largest group first (equal groups in the order
// they first appear). It reads the dead-letter queue as List does, in one
// pass that leaves it as it was, and holds one Group per key, not the dead
// letters.
func (a *Inspector) Group(ctx context.Context, queue string, f Filter, by GroupBy) ([]Group, error) {
	if by != ByError && by != ByType {
		return nil, fmt.Errorf("admin: group by %q: want %q or %q", by, ByError, ByType)
	}
	g := NewGrouper(by)
	err := a.Each(ctx, queue, f, func(dl DeadLetter) error {
		g.Add(g.Key(dl.Type, dl.Error, string(dl.Reason)), dl.ID, dl.Error, dl.FailedAt)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return g.Groups(), nil
}

// Grouper gathers dead letters into the Groups that Group returns, for a
// caller that reads them its own way (the dashboard groups the summaries
// it keeps).
type Grouper struct {
	by     GroupBy
	index  map[string]int
	groups []Group
}

// NewGrouper returns a Grouper counting by by (ByError or ByType).
func NewGrouper(by GroupBy) *Grouper { return &Grouper{by: by, index: make(map[string]int)} }

// Key is the key a dead letter counts under: its type (ByType), or its
// error's Fingerprint (ByError), "(no error: <reason>)" for one without an
// error text.
func (g *Grouper) Key(taskType, errText, reason string) string {
	if g.by == ByType {
		return taskType
	}
	return ErrorKey(errText, reason)
}

// ErrorKey is the key ByError counts a dead letter under.
func ErrorKey(errText, reason string) string {
	key := Fingerprint(errText)
	if key == "" && reason != "" {
		key = "(no error: " + reason + ")"
	}
	return key
}

// Add counts one dead letter, in queue order, under key (Key): id and
// errText are its group's example when it is the first.
func (g *Grouper) Add(key, id, errText string, failedAt time.Time) {
	i, ok := g.index[key]
	if !ok {
		i = len(g.groups)
		g.index[key] = i
		gr := Group{Key: key, ExampleID: id}
		if g.by == ByError {
			gr.Example = errText
		}
		g.groups = append(g.groups, gr)
	}
	gr := &g.groups[i]
	gr.Count++
	if at := failedAt; !at.IsZero() {
		at = at.UTC()
		if gr.OldestFailure.IsZero() || at.Before(gr.OldestFailure) {
			gr.OldestFailure = at
		}
		if gr.NewestFailure.IsZero() || at.After(gr.NewestFailure) {
			gr.NewestFailure = at
		}
	}
}

// Groups returns the groups, largest first (ties in order of appearance);
// an empty slice, not nil, when there are none.
func (g *Grouper) Groups() []Group {
	out := slices.Clone(g.groups)
	slices.SortStableFunc(out, func(a, b Group) int { return cmp.Compare(b.Count, a.Count) })
	if out == nil {
		out = []Group{}
	}
	return out
}
