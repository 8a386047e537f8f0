package termtext

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLine(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"send-email 42", "send-email 42"},
		{"héllo wörld ✓ 日本", "héllo wörld ✓ 日本"},
		{"\x1b[2J\x1b[Hgotcha", `"\x1b[2J\x1b[Hgotcha"`},
		{"a\rb", `"a\rb"`},
		{"a\nb", `"a\nb"`},
		{"a\x00b", `"a\x00b"`},
		{"a\tb", `"a\tb"`},
		{"\x7f", `"\x7f"`},
		{"\u009b31m", `"\u009b31m"`},         // C1 CSI
		{"abc\u202edcba", `"abc\u202edcba"`}, // right-to-left override
		{"zero\u200bwidth", `"zero\u200bwidth"`},
		{"bad\xffutf8", `"bad\xffutf8"`},
		{"line\u2028sep", `"line\u2028sep"`},
	} {
		if got := Line(tt.in); got != tt.want {
			t.Errorf("Line(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"panic: boom\n\tmain.go:12\n", "panic: boom\n\tmain.go:12\n"},
		{"stderr: \x1b]0;owned\x07 done\r\n", `stderr: \x1b]0;owned\a done\r` + "\n"},
		{"rtl \u202e and \u2066 isolate", `rtl \u202e and \u2066 isolate`},
		{"nul\x00 and \xfe", `nul\x00 and \xfe`},
	} {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzTermEscape: whatever the input, the escaped forms hold no byte a
// terminal acts on (C0 controls but \n and \t in text, DEL, C1 controls,
// format characters such as bidi overrides), are valid UTF-8, lose nothing
// (Line unquotes back to its input), and leave printable text alone;
// a JSON log line through JSON is the same JSON value, with no
// C1 control or format character left raw.
func FuzzTermEscape(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b[31mred\x1b[0m", "a\r\nb", "\x00", "\u202e\u200b\ufeff", "\xff\xfe", "tab\there", "日本語", "\u009b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		one := Line(s)
		text := Text(s)
		for name, out := range map[string]string{"Line": one, "Text": text} {
			if !utf8.ValidString(out) {
				t.Fatalf("%s(%q) = %q: not UTF-8", name, s, out)
			}
			for _, r := range out {
				if (r == '\n' || r == '\t') && name == "Text" {
					continue
				}
				if !strconv.IsPrint(r) {
					t.Fatalf("%s(%q) = %q holds %U", name, s, out, r)
				}
			}
		}
		if one != s {
			back, err := strconv.Unquote(one)
			if err != nil || back != s {
				t.Fatalf("Line(%q) = %q does not unquote back (%q, %v)", s, one, back, err)
			}
		}
		if printableString(s, "") && (one != s || text != s) {
			t.Fatalf("printable %q changed: %q, %q", s, one, text)
		}
		if strings.Count(text, "\n") != strings.Count(s, "\n") {
			t.Fatalf("Text(%q) = %q changed the number of lines", s, text)
		}
		// JSON log lines: the same value, with nothing invisible left.
		enc, _ := json.Marshal(map[string]string{"v": s})
		safe := JSON(string(enc))
		var back map[string]string
		if err := json.Unmarshal([]byte(safe), &back); err != nil {
			t.Fatalf("JSON(%s) = %s: not JSON: %v", enc, safe, err)
		}
		var want map[string]string
		_ = json.Unmarshal(enc, &want)
		if back["v"] != want["v"] {
			t.Fatalf("JSON changed the value: %q, want %q", back["v"], want["v"])
		}
		if strings.ContainsFunc(safe, invisible) {
			t.Fatalf("JSON(%s) = %s holds an invisible character", enc, safe)
		}
	})
}

func TestJSON(t *testing.T) {
	in := `{"msg":"job dead-lettered","task_id":"evil-\u001b[2J` + "\u202e\u200b\u0085" + `"}`
	want := `{"msg":"job dead-lettered","task_id":"evil-\u001b[2J\u202e\u200b\u0085"}`
	if got := JSON(in); got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
	if plain := `{"msg":"ok ✓ 日本"}`; JSON(plain) != plain {
		t.Errorf("changed %s", plain)
	}
}

func BenchmarkLine(b *testing.B) {
	id := "01a2385d-70dc-7dc3-b49f-d68f0229fd46"
	for b.Loop() {
		_ = Line(id)
	}
}

func BenchmarkTextStderrTail(b *testing.B) {
	tail := strings.Repeat("error: connection refused at step 42\n\tretrying later ", 40) // about 2 KiB
	hostile := tail[:len(tail)/2] + "\x1b[2J\u202e" + tail[len(tail)/2:]
	b.Run("clean", func(b *testing.B) {
		for b.Loop() {
			_ = Text(tail)
		}
	})
	b.Run("hostile", func(b *testing.B) {
		for b.Loop() {
			_ = Text(hostile)
		}
	})
}
