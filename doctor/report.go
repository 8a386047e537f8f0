package doctor

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Status is the verdict of one check.
type Status string

// Verdicts. WARN is a pass: something to look at, not a fault.
const (
	OK   Status = "OK"
	Warn Status = "WARN"
	Fail Status = "FAIL"
)

// Check is one finding. Its JSON field names are stable.
type Check struct {
	// Name identifies the check: "version", "feature_flags",
	// "consumer_timeout", "partition_handling", "queue:NAME",
	// "delay_levels", "alarms", "frame_max" or "permissions".
	Name string `json:"name"`
	// Status is OK, WARN or FAIL.
	Status Status `json:"status"`
	// Detail says what was found, in one line.
	Detail string `json:"detail"`
	// Fix says what to do about a WARN or FAIL, in one line; empty for OK.
	Fix string `json:"fix,omitempty"`
}

// Report is the outcome of Run. Its JSON field names are stable.
type Report struct {
	// Broker is the broker URL, password redacted.
	Broker string `json:"broker"`
	// Version is the broker's version ("3.10.8"), "" if unknown.
	Version string `json:"version"`
	// Rabbitmqctl says which node rabbitmqctl asked, or why it was not used.
	Rabbitmqctl string `json:"rabbitmqctl"`
	// Checks are the findings, in the order of the package documentation.
	Checks []Check `json:"checks"`
	// OK, Warn and Fail count the checks of each status.
	OK   int `json:"ok"`
	Warn int `json:"warn"`
	Fail int `json:"fail"`
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool { return r.Fail > 0 }

// add appends c and counts it.
func (r *Report) add(c Check) {
	r.Checks = append(r.Checks, c)
	switch c.Status {
	case OK:
		r.OK++
	case Warn:
		r.Warn++
	default:
		r.Fail++
	}
}

// Find returns the check named name, if present.
func (r *Report) Find(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// WriteText prints the report for a terminal: one line per check with its
// status, name and detail, the fix on the next line, then a summary.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "broker %s (RabbitMQ %s); rabbitmqctl: %s\n", r.Broker, orUnknown(r.Version), r.Rabbitmqctl)
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.Name, c.Detail)
		if c.Fix != "" {
			fmt.Fprintf(tw, "\t\tfix: %s\n", c.Fix)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d ok, %d warn, %d fail\n", r.OK, r.Warn, r.Fail)
	return err
}

func orUnknown(s string) string {
	if s == "" {
		return "version unknown"
	}
	return s
}
