// Package termtext escapes text from outside (task IDs and types, errors,
// handlers' stderr, payloads, broker messages) before it reaches a
// terminal, so that a hostile task cannot move the cursor, rewrite earlier
// lines, reorder text with bidi controls or hide characters. The rule is
// the one slog's text handler applies to log values, which reaches stderr
// through the same process: a string whose runes are all printable
// (strconv.IsPrint) is written as it is; any other is escaped as
// strconv.Quote escapes it. JSON output needs only JSON: encoding/json
// escapes control characters itself, but not C1 controls or invisible
// format characters.
package termtext

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Line returns s safe for a terminal on one line: s itself when
// every rune is printable, else s quoted by strconv.Quote ("\x1b[2J" and
// "\u202e" for ESC sequences and bidi overrides, \n, \r, \t and \x00 for
// their bytes).
func Line(s string) string {
	if printableString(s, "") {
		return s
	}
	return strconv.Quote(s)
}

// Text returns multi-line text (an error, a stack, a payload) safe for
// a terminal: newlines and tabs are kept, every other rune that is not
// printable is written as strconv.Quote writes it, without the quotes.
func Text(s string) string {
	if printableString(s, "\n\t") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			q := strconv.Quote(s[i : i+1]) // "\xff"
			b.WriteString(q[1 : len(q)-1])
		case r == '\n' || r == '\t' || strconv.IsPrint(r):
			b.WriteString(s[i : i+size])
		default:
			q := strconv.QuoteRune(r) // '\x1b', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// printableString reports whether every rune of s is valid and printable,
// or one of keep.
func printableString(s, keep string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				if strings.IndexByte(keep, c) < 0 {
					return false
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || !strconv.IsPrint(r) {
			return false
		}
		i += size
	}
	return true
}

// JSON escapes, in JSON text, the characters encoding/json
// writes as they are although a terminal acts on them or hides them: C1
// controls and format characters (bidi overrides and isolates, zero-width
// characters), as \uXXXX. Such characters can only stand inside JSON
// strings, where the escape means the same character: the result is the
// same JSON value.
func JSON(s string) string {
	if !strings.ContainsFunc(s, invisible) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for _, r := range s {
		if invisible(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// invisible reports a C1 control or a format character (category Cf),
// which JSON carries raw and a terminal acts on or hides. Runes outside
// the Basic Multilingual Plane are left alone: \uXXXX cannot write them
// in one escape, and the Cf ones there are tags, not controls.
func invisible(r rune) bool {
	return (r >= 0x80 && r <= 0x9f) || (r <= 0xffff && unicode.Is(unicode.Cf, r)) || r == 0x2028 || r == 0x2029
}
