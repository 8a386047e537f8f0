package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The command forms of the README's command table are ones the CLI
// accepts: every --flag exists on its command, and no positional argument
// is given to a command that takes none (the README once showed
// "dlq show --queue Q ID" for "dlq show --queue Q --id ID").
func TestREADMECommandForms(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, lookupEnv: func(string) (string, bool) { return "", false }}
	root := a.rootCmd()
	rowRE := regexp.MustCompile("(?m)^\\| `(warren [^`]*)` \\|")
	rows := rowRE.FindAllStringSubmatch(string(b), -1)
	if len(rows) < 10 {
		t.Fatalf("found %d command rows in README.md", len(rows))
	}
	for _, row := range rows {
		form := strings.ReplaceAll(row[1], `\|`, "|")
		words := strings.Fields(strings.NewReplacer("(", " ", ")", " ", "[", " ", "]", " ", "…", "").Replace(form))[1:]
		cmd, rest, err := root.Find(words)
		if err != nil {
			t.Errorf("%s: %v", form, err)
			continue
		}
		var positional []string
		for i := 0; i < len(rest); i++ {
			w := rest[i]
			switch {
			case w == ">" || w == "<":
				i = len(rest) // a shell redirection ends the command
			case w == "|" || w == "selectors":
			case strings.HasPrefix(w, "--"):
				name, _, hasValue := strings.Cut(strings.TrimPrefix(w, "--"), "=")
				f := cmd.Flags().Lookup(name)
				if f == nil {
					f = cmd.InheritedFlags().Lookup(name)
				}
				if f == nil {
					t.Errorf("%s: %s has no flag --%s", form, cmd.CommandPath(), name)
					continue
				}
				if !hasValue && f.NoOptDefVal == "" && i+1 < len(rest) {
					i++ // the flag's value
				}
			default:
				positional = append(positional, w)
			}
		}
		if cmd.Args != nil && len(positional) > 0 && !strings.Contains(strings.Join(positional, " "), "|") {
			if err := cmd.Args(cmd, positional); err != nil {
				t.Errorf("%s: %s takes no %q: %v", form, cmd.CommandPath(), positional, err)
			}
		}
	}
}
