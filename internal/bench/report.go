package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// MarshalJSON writes r with its durations in milliseconds:
// latency_p50_ms, latency_p95_ms, latency_p99_ms, latency_max_ms and
// duration_sec.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		plain
		LatencyP50 float64 `json:"latency_p50_ms"`
		LatencyP95 float64 `json:"latency_p95_ms"`
		LatencyP99 float64 `json:"latency_p99_ms"`
		LatencyMax float64 `json:"latency_max_ms"`
		Duration   float64 `json:"duration_sec"`
		CPUPerJob  float64 `json:"cpu_us_per_job"`
	}{plain(r), ms(r.LatencyP50), ms(r.LatencyP95), ms(r.LatencyP99), ms(r.LatencyMax), r.Duration.Seconds(), us(r.CPUPerJob)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Report) UnmarshalJSON(b []byte) error {
	type plain Report
	var v struct {
		plain
		LatencyP50 float64 `json:"latency_p50_ms"`
		LatencyP95 float64 `json:"latency_p95_ms"`
		LatencyP99 float64 `json:"latency_p99_ms"`
		LatencyMax float64 `json:"latency_max_ms"`
		Duration   float64 `json:"duration_sec"`
		CPUPerJob  float64 `json:"cpu_us_per_job"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Report(v.plain)
	fromMS := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	r.LatencyP50, r.LatencyP95, r.LatencyP99, r.LatencyMax = fromMS(v.LatencyP50), fromMS(v.LatencyP95), fromMS(v.LatencyP99), fromMS(v.LatencyMax)
	r.Duration = time.Duration(v.Duration * float64(time.Second))
	r.CPUPerJob = time.Duration(v.CPUPerJob * float64(time.Microsecond))
	return nil
}

// Figure is one measured quantity of a Report.
type Figure struct {
	// Key names it in JSON ("publish_per_sec").
	Key string
	// Label names it in a table ("publish msg/s").
	Label string
	// HigherIsBetter is true for throughputs.
	HigherIsBetter bool
	get            func(Report) float64
	format         func(float64) string
}

// Value returns the figure's value in r.
func (f Figure) Value(r Report) float64 { return f.get(r) }

// Format renders v for a table.
func (f Figure) Format(v float64) string { return f.format(v) }

func fmtRate(v float64) string   { return groupThousands(int64(math.Round(v))) }
func fmtMS(v float64) string     { return fmt.Sprintf("%.2f", v) }
func fmtMiB(v float64) string    { return fmt.Sprintf("%.1f", v/(1<<20)) }
func fmtPerJob(v float64) string { return fmt.Sprintf("%.1f", v) }

// Figures returns the figures mode measures, in table order.
func Figures(mode string) []Figure {
	rates := []Figure{
		{"publish_per_sec", "publish msg/s", true, func(r Report) float64 { return r.PublishPerSec }, fmtRate},
		{"consume_per_sec", "consume msg/s", true, func(r Report) float64 { return r.ConsumePerSec }, fmtRate},
	}
	latency := []Figure{
		{"latency_p50_ms", "latency p50 ms", false, func(r Report) float64 { return ms(r.LatencyP50) }, fmtMS},
		{"latency_p95_ms", "latency p95 ms", false, func(r Report) float64 { return ms(r.LatencyP95) }, fmtMS},
		{"latency_p99_ms", "latency p99 ms", false, func(r Report) float64 { return ms(r.LatencyP99) }, fmtMS},
		{"latency_max_ms", "latency max ms", false, func(r Report) float64 { return ms(r.LatencyMax) }, fmtMS},
	}
	memory := []Figure{
		{"peak_rss_bytes", "peak RSS MiB", false, func(r Report) float64 { return float64(r.PeakRSSBytes) }, fmtMiB},
		{"allocs_per_job", "allocs/job", false, func(r Report) float64 { return r.AllocsPerJob }, fmtPerJob},
		{"bytes_per_job", "bytes/job", false, func(r Report) float64 { return r.BytesPerJob }, fmtRate},
		{"cpu_us_per_job", "client CPU µs/job", false, func(r Report) float64 { return us(r.CPUPerJob) }, fmtPerJob},
	}
	switch mode {
	case ModePublish:
		return append(rates[:1], memory...)
	case ModeConsume:
		return append(rates[1:], memory...)
	case ModeRetry:
		for i := range latency {
			latency[i].Label = strings.Replace(latency[i].Label, "latency", "retry late by", 1)
		}
		return append(append(rates, latency...), memory...)
	case ModeIdle:
		return []Figure{
			{"idle_rss_bytes", "idle RSS MiB", false, func(r Report) float64 { return float64(r.IdleRSSBytes) }, fmtMiB},
			memory[0],
		}
	}
	return append(append(rates, latency...), memory...)
}

// Ratios returns warren's figure divided by bare's for each figure of the
// mode, keyed like the JSON. A figure bare measured as 0 has no ratio.
func Ratios(warren, bare Report) map[string]float64 {
	out := map[string]float64{}
	for _, f := range Figures(warren.Mode) {
		if b := f.Value(bare); b != 0 {
			out[f.Key] = round3(f.Value(warren) / b)
		}
	}
	return out
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// Result is what warren bench prints as JSON: Warren's figures at the top
// level, and with a baseline, bare's figures and the ratios. Over several
// rounds, each figure is the median of the rounds (see Median).
type Result struct {
	Report
	Baseline *Report            `json:"baseline,omitempty"`
	Ratio    map[string]float64 `json:"ratio,omitempty"`
	// Rounds is how many times each client ran.
	Rounds int `json:"rounds"`
	// Runs holds every round's report, in the order they ran.
	Runs []Report `json:"runs,omitempty"`
	// Environment describes where the run happened.
	Environment Environment `json:"environment"`
}

// MarshalJSON flattens the Warren report into the top level.
func (r Result) MarshalJSON() ([]byte, error) {
	top, err := json.Marshal(r.Report)
	if err != nil {
		return nil, err
	}
	rest, err := json.Marshal(struct {
		Baseline    *Report            `json:"baseline,omitempty"`
		Ratio       map[string]float64 `json:"ratio,omitempty"`
		Rounds      int                `json:"rounds"`
		Runs        []Report           `json:"runs,omitempty"`
		Environment Environment        `json:"environment"`
	}{r.Baseline, r.Ratio, r.Rounds, r.Runs, r.Environment})
	if err != nil {
		return nil, err
	}
	// Both are JSON objects: splice them.
	return append(append(top[:len(top)-1], ','), rest[1:]...), nil
}

// Environment describes the machine and the broker of a run.
type Environment struct {
	GoVersion     string `json:"go_version"`
	OS            string `json:"os"`
	Arch          string `json:"arch"`
	CPUs          int    `json:"cpus"`
	BrokerProduct string `json:"broker_product,omitempty"`
	BrokerVersion string `json:"broker_version,omitempty"`
	Time          string `json:"time"`
}

// WriteTable writes a table of the figures: one column for Warren, and with
// bare, one for bare and one for the ratio.
func WriteTable(w io.Writer, warren Report, bare *Report) error {
	figs := Figures(warren.Mode)
	// Numbers align right; labels, padded to one width, stay on the left.
	width := len("figure")
	for _, f := range figs {
		width = max(width, utf8.RuneCountInString(f.Label))
	}
	pad := func(s string) string { return s + strings.Repeat(" ", width-utf8.RuneCountInString(s)) }
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if bare != nil {
		fmt.Fprintf(tw, "%s\twarren\tbare\twarren/bare\t\n", pad("figure"))
	} else {
		fmt.Fprintf(tw, "%s\twarren\t\n", pad("figure"))
	}
	for _, f := range figs {
		v := f.Value(warren)
		if bare == nil {
			fmt.Fprintf(tw, "%s\t%s\t\n", pad(f.Label), f.Format(v))
			continue
		}
		b := f.Value(*bare)
		ratio := "-"
		if b != 0 {
			ratio = fmt.Sprintf("%.2f", v/b)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", pad(f.Label), f.Format(v), f.Format(b), ratio)
	}
	return tw.Flush()
}

// groupThousands writes n with commas between groups of three digits.
func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Median returns a report whose every figure is the median of that figure
// over reps (the mean of the two middle values for an even count); the
// options are those of reps[0], Duration is the median too and Redelivered
// the sum. reps must not be empty.
func Median(reps []Report) Report {
	out := reps[0]
	if len(reps) == 1 {
		return out
	}
	med := func(get func(Report) float64) float64 {
		v := make([]float64, len(reps))
		for i, r := range reps {
			v[i] = get(r)
		}
		slices.Sort(v)
		n := len(v)
		if n%2 == 1 {
			return v[n/2]
		}
		return (v[n/2-1] + v[n/2]) / 2
	}
	dur := func(get func(Report) time.Duration) time.Duration {
		return time.Duration(med(func(r Report) float64 { return float64(get(r)) }))
	}
	out.PublishPerSec = med(func(r Report) float64 { return r.PublishPerSec })
	out.ConsumePerSec = med(func(r Report) float64 { return r.ConsumePerSec })
	out.LatencyP50 = dur(func(r Report) time.Duration { return r.LatencyP50 })
	out.LatencyP95 = dur(func(r Report) time.Duration { return r.LatencyP95 })
	out.LatencyP99 = dur(func(r Report) time.Duration { return r.LatencyP99 })
	out.LatencyMax = dur(func(r Report) time.Duration { return r.LatencyMax })
	out.Duration = dur(func(r Report) time.Duration { return r.Duration })
	out.PeakRSSBytes = int64(med(func(r Report) float64 { return float64(r.PeakRSSBytes) }))
	out.IdleRSSBytes = int64(med(func(r Report) float64 { return float64(r.IdleRSSBytes) }))
	out.AllocsPerJob = med(func(r Report) float64 { return r.AllocsPerJob })
	out.BytesPerJob = med(func(r Report) float64 { return r.BytesPerJob })
	out.CPUPerJob = dur(func(r Report) time.Duration { return r.CPUPerJob })
	out.Redelivered = 0
	for _, r := range reps {
		out.Redelivered += r.Redelivered
	}
	return out
}
