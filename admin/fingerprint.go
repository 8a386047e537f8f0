package admin

import (
	"regexp"
	"strings"
)

// fingerprintRules normalise the variable parts of an error line, in order.
var fingerprintRules = []struct {
	re   *regexp.Regexp
	with func(string) string
}{
	// Quoted strings: "…", '…', `…`.
	{regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`"), always(`"…"`)},
	// UUIDs.
	{regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`), always("<uuid>")},
	// IPv4 addresses, with a port if any.
	{regexp.MustCompile(`\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b`), always("<addr>")},
	// IPv6 addresses in brackets, with a port if any.
	{regexp.MustCompile(`\[[0-9a-fA-F:.]+\](?::\d+)?`), always("<addr>")},
	// host:port.
	{regexp.MustCompile(`\b[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*:\d{1,5}\b`), always("<addr>")},
	// Hex IDs: 0x…, or runs of 8 or more hex digits holding a digit.
	{regexp.MustCompile(`\b0x[0-9a-fA-F]+\b`), always("<hex>")},
	{regexp.MustCompile(`\b[0-9a-fA-F]{8,}\b`), func(s string) string {
		if strings.ContainsAny(s, "0123456789") {
			return "<hex>"
		}
		return s // a word such as "deadbeefed"… or "accepted"
	}},
	// Numbers, decimals included.
	{regexp.MustCompile(`\d+(?:\.\d+)?`), always("<n>")},
}

func always(s string) func(string) string { return func(string) string { return s } }

// Fingerprint reduces an error text to its kind, to group dead letters
// that failed the same way: it keeps the first non-empty line and
// replaces what varies from one occurrence to the next (quoted strings,
// UUIDs, IP addresses, host:port, hex IDs and numbers) with placeholders,
// and collapses white space. `dial tcp 10.0.0.7:5432: connection refused`
// and `dial tcp 10.0.0.9:5432: connection refused` both give
// `dial tcp <addr>: connection refused`. An empty error gives "".
func Fingerprint(errText string) string {
	line := ""
	for l := range strings.SplitSeq(errText, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			line = l
			break
		}
	}
	for _, r := range fingerprintRules {
		line = r.re.ReplaceAllStringFunc(line, r.with)
	}
	return strings.Join(strings.Fields(line), " ")
}
