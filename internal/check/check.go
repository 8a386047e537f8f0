// Package check holds the small validations every Config shares, so that
// each Validate is one errors.Join of them (errors.Join drops the nils).
package check

import (
	"fmt"
	"time"
)

// Number is what NotNegative accepts: counts and durations.
type Number interface {
	~int | ~int64 | ~float64
}

// NotNegative returns an error naming field when v is below zero, and nil
// otherwise. A time.Duration prints as one ("-1s").
func NotNegative[T Number](field string, v T) error {
	if v >= 0 {
		return nil
	}
	if d, ok := any(v).(time.Duration); ok {
		return fmt.Errorf("%s cannot be negative (got %s)", field, d)
	}
	return fmt.Errorf("%s cannot be negative (got %v)", field, v)
}
