package warren

import "testing"

func TestDeadLetterQueue(t *testing.T) {
	for _, tt := range []struct {
		queue, dlq string
		isDLQ      bool
	}{
		{"emails", "emails.dlq", false},
		{"emails.dlq", "emails.dlq", true}, // a dead-letter queue has none of its own
		{"a.dlq.b", "a.dlq.b.dlq", false},
		{"dlq", "dlq.dlq", false},
	} {
		if got := DeadLetterQueue(tt.queue); got != tt.dlq {
			t.Errorf("DeadLetterQueue(%q) = %q, want %q", tt.queue, got, tt.dlq)
		}
		if got := IsDeadLetterQueue(tt.queue); got != tt.isDLQ {
			t.Errorf("IsDeadLetterQueue(%q) = %v", tt.queue, got)
		}
	}
}
