package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// templateFuncs are the formatting functions of the pages' templates.
var templateFuncs = template.FuncMap{
	"asset":   assetPath,
	"num":     num,
	"rate":    rate,
	"ago":     func(t time.Time) string { return ago(t, time.Now()) },
	"since":   func(t time.Time) string { return compact(time.Since(t)) },
	"abstime": abstime,
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"dur":     dur,
	"pathesc": url.PathEscape,
	"has":     func(list []string, s string) bool { return slices.Contains(list, s) },
}

// num writes an integer with thousands separators: 1,234,567.
func num(v any) string {
	var s string
	switch n := v.(type) {
	case int:
		s = strconv.Itoa(n)
	case int64:
		s = strconv.FormatInt(n, 10)
	case uint64:
		s = strconv.FormatUint(n, 10)
	case int32:
		s = strconv.Itoa(int(n))
	default:
		return fmt.Sprint(v)
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// rate writes a rate per second: "–" while unknown (negative).
func rate(r float64) string {
	switch {
	case r < 0 || math.IsNaN(r):
		return "–"
	case r == 0:
		return "0/s"
	case r < 10:
		return strconv.FormatFloat(r, 'f', 2, 64) + "/s"
	case r < 100:
		return strconv.FormatFloat(r, 'f', 1, 64) + "/s"
	default:
		return num(int64(math.Round(r))) + "/s"
	}
}

// ago writes t relative to now: "12s ago", "3m ago", "5h ago", "2d ago",
// or "in 3m" for a time to come.
func ago(t, now time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		return "in " + coarse(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return coarse(d) + " ago"
}

// coarse writes d in its largest unit.
func coarse(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	default:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
}

// compact writes an elapsed time in its two largest units: "45s", "3m 12s",
// "2h 5m".
func compact(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", d/time.Minute, (d%time.Minute)/time.Second)
	default:
		return fmt.Sprintf("%dh %dm", d/time.Hour, (d%time.Hour)/time.Minute)
	}
}

// abstime writes t in UTC to the second, for a title attribute.
func abstime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// dur writes how long a handler ran: milliseconds under a second.
func dur(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Millisecond:
		return d.String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(10 * time.Millisecond).String()
	}
}

// window writes a chart's span: "1h", "30m".
func window(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	case d%time.Minute == 0:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	default:
		return d.String()
	}
}
