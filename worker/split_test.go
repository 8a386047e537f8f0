package worker

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"handler", []string{"handler"}},
		{"  ./send-email.sh   --to  ops  ", []string{"./send-email.sh", "--to", "ops"}},
		{"a\tb\nc", []string{"a", "b", "c"}},
		{`sh -c 'echo "hi there" | wc -c'`, []string{"sh", "-c", `echo "hi there" | wc -c`}},
		{`say "hello world"`, []string{"say", "hello world"}},
		{`say "a \"quoted\" word"`, []string{"say", `a "quoted" word`}},
		{`say "keep \n and \$HOME and \\"`, []string{"say", `keep \n and $HOME and \`}},
		{`say 'no \escapes \' here`, []string{"say", `no \escapes \`, "here"}}, // \' ends the quote
		{`say a\ b c\"d`, []string{"say", "a b", `c"d`}},
		{`x'y'"z"w`, []string{"xyzw"}},
		{`cmd '' ""`, []string{"cmd", "", ""}},
		{"cmd a\\\nb", []string{"cmd", "ab"}},
		{`cmd "multi\
line"`, []string{"cmd", "multiline"}},
		{`sh -c 'if [ "$WARREN_TASK_TYPE" = poison ]; then kill -9 $PPID; fi; cat >/dev/null'`,
			[]string{"sh", "-c", `if [ "$WARREN_TASK_TYPE" = poison ]; then kill -9 $PPID; fi; cat >/dev/null`}},
		{`echo '|' ">" \&\&`, []string{"echo", "|", ">", "&&"}},
		{"naïve 'ünïcode'", []string{"naïve", "ünïcode"}},
	}
	for _, tt := range tests {
		got, err := SplitCommand(tt.in)
		if tt.want == nil {
			if err == nil {
				t.Errorf("SplitCommand(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("SplitCommand(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitCommand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSplitCommandErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty command"},
		{"   \t\n", "empty command"},
		{`echo 'open`, "unterminated '"},
		{`echo "open`, `unterminated "`},
		{`echo "open\"`, `unterminated "`},
		{`echo \`, "trailing backslash"},
		{`handler.sh > out.log`, "sh -c"},
		{`a | b`, "sh -c"},
		{`a && b`, "sh -c"},
		{`a ; b`, "sh -c"},
	}
	for _, tt := range tests {
		_, err := SplitCommand(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("SplitCommand(%q) error = %v, want one containing %q", tt.in, err, tt.want)
		}
	}
}

func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{"a b c", `sh -c 'x "y" z'`, `"a\"b"`, `a\ b`, `''`, `"\`, "a\\\n", "|", "ü 'é'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args, err := SplitCommand(s)
		if err == nil && len(args) == 0 {
			t.Fatalf("SplitCommand(%q) returned no words and no error", s)
		}
	})
}
