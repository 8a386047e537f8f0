//go:build integration

package admin

import (
	"slices"
	"testing"

	"github.com/warrenq/warren/broker"
)

// TestGroupCountsAndLeavesTheQueueAsItWas: 30 dead letters of two types
// whose errors "boom <n>" share one fingerprint. Grouping by type, by error
// and with a selector counts them; the dead-letter queue holds the same
// dead letters, in the same order, afterwards.
func TestGroupCountsAndLeavesTheQueueAsItWas(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	all := publishDead(t, b, 30, typeAB)
	byType, err := b.adm.Group(b.ctx, b.q, Filter{}, ByType)
	if err != nil {
		t.Fatal(err)
	}
	if len(byType) != 2 || byType[0].Key != "type:a" || byType[0].Count != 15 || byType[0].ExampleID != all[0] ||
		byType[1].Key != "type:b" || byType[1].Count != 15 || byType[1].ExampleID != all[1] || byType[0].OldestFailure.IsZero() {
		t.Fatalf("by type: %+v", byType)
	}
	byError, err := b.adm.Group(b.ctx, b.q, Filter{Types: []string{"type:b"}}, ByError)
	if err != nil {
		t.Fatal(err)
	}
	if len(byError) != 1 || byError[0].Key != "boom <n>" || byError[0].Count != 15 || byError[0].Example != "boom 1" {
		t.Fatalf("by error, type:b only: %+v", byError)
	}
	if _, err := b.adm.Group(b.ctx, b.q, Filter{}, "host"); err == nil {
		t.Error("Group by an unknown key: no error")
	}
	if got := ids(list(t, b, Filter{})); !slices.Equal(got, all) {
		t.Errorf("after grouping the DLQ holds %v, want %v in order", got, all)
	}
}
