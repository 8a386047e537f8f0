package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/warrenq/warren/admin"
)

// addMatchers registers the selectors on the error text and the failure
// time, shared by every dlq command that selects.
func (f *dlqFlags) addMatchers(fs *pflag.FlagSet) {
	fs.StringVar(&f.errRE, "error", "", "only dead letters whose error matches this `regexp` (Go syntax, unanchored)")
	fs.StringVar(&f.since, "since", "", "only dead letters that failed at or after `time`: RFC 3339, or a duration ago (2h, 3d)")
	fs.StringVar(&f.until, "until", "", "only dead letters that failed before `time`: RFC 3339, or a duration ago (30m, 1d)")
	fs.BoolVar(&f.unreadable, "unreadable", false, "only dead letters whose headers Warren cannot read (nested too deep, too many entries, or over the frame size; reason unreadable)")
	noEnv(fs, "error", "since", "until", "unreadable")
}

// matchers compiles --error, --since and --until into flt.
func (f *dlqFlags) matchers(flt *admin.Filter, now time.Time) error {
	if f.errRE != "" {
		re, err := regexp.Compile(f.errRE)
		if err != nil {
			return usagef("--error: %w", err)
		}
		flt.ErrorRegexp = re
	}
	flt.Unreadable = f.unreadable
	var err error
	if flt.Since, err = admin.ParseTime(f.since, now); err != nil {
		return usagef("--since: %w", err)
	}
	if flt.Until, err = admin.ParseTime(f.until, now); err != nil {
		return usagef("--until: %w", err)
	}
	if !flt.Since.IsZero() && !flt.Until.IsZero() && !flt.Since.Before(flt.Until) {
		return usagef("--since (%s) must be before --until (%s)", flt.Since.UTC().Format(time.RFC3339), flt.Until.UTC().Format(time.RFC3339))
	}
	return nil
}

// hasMatchers reports whether --error, --since, --until or --unreadable is given.
func (f *dlqFlags) hasMatchers() bool {
	return f.errRE != "" || f.since != "" || f.until != "" || f.unreadable
}

// describe names the selectors given, for a confirmation question.
func (f *dlqFlags) describe() string {
	var parts []string
	if len(f.ids) > 0 {
		parts = append(parts, fmt.Sprintf("--id (%d)", len(f.ids)))
	}
	if len(f.types) > 0 {
		parts = append(parts, "--type "+strings.Join(f.types, ","))
	}
	if f.errRE != "" {
		parts = append(parts, fmt.Sprintf("--error %q", f.errRE))
	}
	if f.since != "" {
		parts = append(parts, "--since "+f.since)
	}
	if f.until != "" {
		parts = append(parts, "--until "+f.until)
	}
	return strings.Join(parts, " ")
}

// parseRate reads --rate: N/s or N, a positive number of replays a second.
func parseRate(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "/s"), 64)
	if err != nil || n <= 0 || n != n {
		return 0, usagef("--rate %q: want a positive number a second, such as 100/s", s)
	}
	return n, nil
}

// busyError is ErrBusy told to an operator.
type busyError struct {
	dlq string
	err error
}

func (e *busyError) Error() string {
	return fmt.Sprintf("another replay or purge is running on %s; try again when it ends (or add --wait)", e.dlq)
}
func (e *busyError) Unwrap() error { return e.err }
