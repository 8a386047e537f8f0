package admin

import "testing"

func TestJournalCovers(t *testing.T) {
	j := make(journal)
	j.add("a", 1) // a dead letter of a (count 0) was replayed
	j.add("b", 3) // b was replayed for the third time
	j.add("b", 3)
	for _, c := range []struct {
		id   string
		n    int
		want bool
	}{
		{"a", 0, true},  // the leftover of the interrupted replay
		{"a", 1, false}, // replayed, failed again, dead-lettered again: replay it
		{"b", 2, true},
		{"b", 3, false},
		{"b", 0, false},
		{"c", 0, false},
	} {
		if got := j.covers(c.id, c.n); got != c.want {
			t.Errorf("covers(%q, %d) = %v, want %v", c.id, c.n, got, c.want)
		}
	}
	if len(j["b"]) != 1 {
		t.Errorf("duplicate entry kept: %v", j["b"])
	}
	if got := JournalQueue("emails"); got != "emails.dlq.replayed" {
		t.Errorf("JournalQueue = %q", got)
	}
}
