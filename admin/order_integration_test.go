//go:build integration

package admin

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// TestPassesKeepTheOrderAtScale proves the pass's order guarantee over
// thousands of dead letters (WARREN_ORDER_N sets how many; 4,000 by
// default): non-destructive passes (List, Each, Export) leave the queue
// in its order, a selective Purge and a selective Replay leave the rest
// in its order, the replayed tasks reach their queue in order, and a
// destructive read of the queue at the end finds exactly what is left, in
// order. A pass that scrambles a batch of returns, reads a message twice
// or loses one fails it.
func TestPassesKeepTheOrderAtScale(t *testing.T) {
	n := 4000
	if s := os.Getenv("WARREN_ORDER_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 30 {
			t.Fatalf("WARREN_ORDER_N=%q: want a number, at least 30", s)
		}
		n = v
	}
	b := setup(t, broker.QueueOptions{})
	b.ctx = testbroker.Context(t, 20*time.Minute)
	typ := func(i int) string { return "type:" + strconv.Itoa(i%3) }
	want := publishDead(t, b, n, typ)
	of := func(k int) []string { // the IDs of type:k, in order
		var out []string
		for i, id := range want {
			if i%3 == k {
				out = append(out, id)
			}
		}
		return out
	}

	for round := range 2 {
		if got := ids(list(t, b, Filter{})); !slices.Equal(got, want) {
			t.Fatalf("List %d: %s", round, orderDiff(got, want))
		}
	}
	var each []string
	if err := b.adm.Each(b.ctx, b.q, Filter{}, func(dl DeadLetter) error { each = append(each, dl.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(each, want) {
		t.Fatalf("Each: %s", orderDiff(each, want))
	}
	if got := ids(list(t, b, Filter{Types: []string{"type:1"}, Limit: n / 10})); !slices.Equal(got, of(1)[:n/10]) {
		t.Fatalf("List type:1 limit %d: %s", n/10, orderDiff(got, of(1)[:n/10]))
	}

	// A selective destructive pass: the rest keeps its order.
	res, err := b.adm.Purge(b.ctx, b.q, Filter{Types: []string{"type:0"}})
	if err != nil || res.Purged != len(of(0)) {
		t.Fatalf("Purge type:0: %+v, %v; want %d purged", res, err, len(of(0)))
	}
	rest := slices.DeleteFunc(slices.Clone(want), func(id string) bool { return slices.Contains(of(0), id) })
	if got := ids(list(t, b, Filter{})); !slices.Equal(got, rest) {
		t.Fatalf("List after Purge: %s", orderDiff(got, rest))
	}

	// A selective replay: the replayed tasks reach their queue in order,
	// the rest stays in order.
	rep, err := b.adm.Replay(b.ctx, b.q, Filter{Types: []string{"type:2"}}, ReplayOptions{})
	if err != nil || rep.Replayed != len(of(2)) {
		t.Fatalf("Replay type:2: %+v, %v; want %d replayed", rep, err, len(of(2)))
	}
	if got := deliveryIDs(drain(t, b, b.q)); !slices.Equal(got, of(2)) {
		t.Fatalf("replayed tasks: %s", orderDiff(got, of(2)))
	}
	if got := deliveryIDs(drain(t, b, b.dlq)); !slices.Equal(got, of(1)) {
		t.Fatalf("dead-letter queue at the end: %s", orderDiff(got, of(1)))
	}
}

// orderDiff describes how got differs from want: the lengths and the
// first position where they part.
func orderDiff(got, want []string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	g, w := got[i:min(i+5, len(got))], want[i:min(i+5, len(want))]
	return "got " + strconv.Itoa(len(got)) + ", want " + strconv.Itoa(len(want)) +
		"; first difference at " + strconv.Itoa(i) + ": got " + bracket(g) + ", want " + bracket(w)
}

func bracket(s []string) string { return "[" + strings.Join(s, " ") + "]" }
