package dashboard

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/fleet"
)

func beatOf(id string, started time.Time, gone bool, counts map[string]fleet.QueueCounts) fleet.Worker {
	return fleet.Worker{Beat: fleet.Beat{ID: id, Started: started, Counts: counts}, Gone: gone}
}

func TestUnacked(t *testing.T) {
	live := []fleet.Worker{
		beatOf("a", time.Time{}, false, map[string]fleet.QueueCounts{"q": {Unacked: 3}}),
		beatOf("b", time.Time{}, false, map[string]fleet.QueueCounts{"q": {Unacked: 4}}),
		beatOf("c", time.Time{}, true, map[string]fleet.QueueCounts{"q": {Unacked: 100}}),
	}
	for _, c := range []struct {
		name string
		info admin.QueueInfo
		want int
	}{
		{"known", admin.QueueInfo{Name: "q", Exists: true, Unacked: 9, Consumers: 2}, 9},
		{"no consumers", admin.QueueInfo{Name: "q", Exists: true, Unacked: -1}, 0},
		{"all consumers heard", admin.QueueInfo{Name: "q", Exists: true, Unacked: -1, Consumers: 2}, 7},
		{"a consumer not heard", admin.QueueInfo{Name: "q", Exists: true, Unacked: -1, Consumers: 3}, -1},
		{"no worker heard", admin.QueueInfo{Name: "other", Exists: true, Unacked: -1, Consumers: 1}, -1},
		{"missing", admin.QueueInfo{Name: "q", Unacked: -1}, -1},
	} {
		if got := unacked(c.info, live); got != c.want {
			t.Errorf("%s: unacked = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestFinishedCountsEachWorkerOnce(t *testing.T) {
	t0 := time.Now()
	sm := newSampler(&Server{})
	sm.at = t0
	old := beatOf("old", t0.Add(-time.Hour), false, map[string]fleet.QueueCounts{"q": {Succeeded: 1000}})
	// First heard: its counts are from before; nothing finished now.
	if got := sm.finished([]fleet.Worker{old}); got["q"] != 0 {
		t.Errorf("first sample of an old worker: %d finished, want 0", got["q"])
	}
	old.Counts["q"] = fleet.QueueCounts{Succeeded: 1010, Retried: 2, DeadLettered: 1}
	young := beatOf("young", t0.Add(time.Second), false, map[string]fleet.QueueCounts{"q": {Succeeded: 5}})
	if got := sm.finished([]fleet.Worker{old, young}); got["q"] != 13+5 {
		t.Errorf("second sample: %d finished, want 18", got["q"])
	}
	// The old worker went away: its counts leave without a negative rate.
	if got := sm.finished([]fleet.Worker{young}); got["q"] != 0 {
		t.Errorf("after a worker left: %d finished, want 0", got["q"])
	}
	if _, ok := sm.done["old"]; ok {
		t.Error("a worker no longer heard is still remembered")
	}
}

func TestQueueJSON(t *testing.T) {
	q := Queue{QueueInfo: admin.QueueInfo{Name: "q", Exists: true, Ready: 2, Unacked: -1, DelayedHeld: -1}, EnqueueRate: 1.5, CompleteRate: -1}
	b, err := json.Marshal(q)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m["name"] != "q" || m["ready"] != 2.0 || m["unacked"] != nil || m["enqueue_rate"] != 1.5 || m["complete_rate"] != nil {
		t.Errorf("Queue JSON = %s", b)
	}
	if _, ok := m["complete_rate"]; !ok {
		t.Errorf("unknown rate left out instead of null: %s", b)
	}
}

func TestPointJSON(t *testing.T) {
	at := time.Date(2026, 12, 3, 7, 0, 0, 5, time.UTC)
	b, err := json.Marshal(Point{At: at, Ready: 3, Unacked: -1, DeadLetters: 2, EnqueueRate: 0.5, CompleteRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"at":"2026-12-03T07:00:00.000000005Z","ready":3,"unacked":null,"dead_letters":2,"enqueue_rate":0.5,"complete_rate":null}`
	if string(b) != want {
		t.Errorf("Point JSON = %s, want %s", b, want)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Errorf("Point JSON does not parse: %v", err)
	}
}
