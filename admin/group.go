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
	g := grouper{by: by, index: make(map[string]int)}
	if err := a.Each(ctx, queue, f, func(dl DeadLetter) error { g.add(dl); return nil }); err != nil {
		return nil, err
	}
	return g.sorted(), nil
}

// grouper gathers groups in the order their keys first appear.
type grouper struct {
	by     GroupBy
	index  map[string]int
	groups []Group
}

func (g *grouper) add(dl DeadLetter) {
	key := dl.Type
	if g.by == ByError {
		key = Fingerprint(dl.Error)
		if key == "" && dl.Reason != "" {
			key = "(no error: " + string(dl.Reason) + ")"
		}
	}
	i, ok := g.index[key]
	if !ok {
		i = len(g.groups)
		g.index[key] = i
		gr := Group{Key: key, ExampleID: dl.ID}
		if g.by == ByError {
			gr.Example = dl.Error
		}
		g.groups = append(g.groups, gr)
	}
	gr := &g.groups[i]
	gr.Count++
	if at := dl.FailedAt; !at.IsZero() {
		at = at.UTC()
		if gr.OldestFailure.IsZero() || at.Before(gr.OldestFailure) {
			gr.OldestFailure = at
		}
		if gr.NewestFailure.IsZero() || at.After(gr.NewestFailure) {
			gr.NewestFailure = at
		}
	}
}

// sorted returns the groups, largest first (ties in order of appearance).
func (g *grouper) sorted() []Group {
	out := slices.Clone(g.groups)
	slices.SortStableFunc(out, func(a, b Group) int { return cmp.Compare(b.Count, a.Count) })
	if out == nil {
		out = []Group{}
	}
	return out
}
