package check

import (
	"errors"
	"testing"
	"time"
)

func TestNotNegative(t *testing.T) {
	if err := NotNegative("x: N", 0); err != nil {
		t.Errorf("0: %v", err)
	}
	if err := NotNegative("x: N", 3); err != nil {
		t.Errorf("3: %v", err)
	}
	if err := NotNegative("x: N", -2); err == nil || err.Error() != "x: N cannot be negative (got -2)" {
		t.Errorf("-2: %v", err)
	}
	if err := NotNegative("x: D", -1500*time.Millisecond); err == nil || err.Error() != "x: D cannot be negative (got -1.5s)" {
		t.Errorf("-1.5s: %v", err)
	}
	if err := NotNegative("x: R", -0.5); err == nil || err.Error() != "x: R cannot be negative (got -0.5)" {
		t.Errorf("-0.5: %v", err)
	}
	joined := errors.Join(NotNegative("a", 1), NotNegative("b", -1), NotNegative("c", -1))
	if joined == nil || joined.Error() != "b cannot be negative (got -1)\nc cannot be negative (got -1)" {
		t.Errorf("joined: %v", joined)
	}
}
