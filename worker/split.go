package worker

import (
	"errors"
	"fmt"
	"strings"
)

// SplitCommand splits a command line into argv the way a POSIX shell
// splits words, without any expansion:
//
//   - blanks (space, tab, newline) separate words;
//   - '...' keeps everything inside literally;
//   - "..." keeps everything inside, except that a backslash escapes
//     \ " $ ` and newline;
//   - outside quotes a backslash escapes any character;
//   - a backslash before a newline joins the lines;
//   - quoted parts next to each other make one word, and a pair of
//     quotes with nothing inside is an empty word.
//
// Variables, globs, pipes and redirections are not interpreted: an
// unquoted |, ;, &, <, > or && word is refused, with a hint to use sh -c.
func SplitCommand(s string) ([]string, error) {
	var (
		args    []string
		cur     strings.Builder
		inWord  bool // cur holds a word, maybe empty ('')
		quoted  bool // some part of the word was quoted or escaped
		rs      = []rune(s)
		lastPos int
	)
	flush := func() error {
		if !inWord {
			return nil
		}
		w := cur.String()
		if !quoted && isShellOperator(w) {
			return fmt.Errorf("%q at offset %d is shell syntax, which is not interpreted: write sh -c '...' to use a shell", w, lastPos)
		}
		args = append(args, w)
		cur.Reset()
		inWord, quoted = false, false
		return nil
	}
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if err := flush(); err != nil {
				return nil, err
			}
		case r == '\\':
			if i+1 >= len(rs) {
				return nil, errors.New("trailing backslash")
			}
			i++
			if rs[i] == '\n' {
				continue // line continuation
			}
			if !inWord {
				lastPos = i - 1
			}
			cur.WriteRune(rs[i])
			inWord, quoted = true, true
		case r == '\'':
			if !inWord {
				lastPos = i
			}
			end := indexRune(rs, i+1, '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ' quote starting at offset %d", i)
			}
			cur.WriteString(string(rs[i+1 : end]))
			i = end
			inWord, quoted = true, true
		case r == '"':
			if !inWord {
				lastPos = i
			}
			start := i
			closed := false
			for i++; i < len(rs); i++ {
				c := rs[i]
				if c == '"' {
					closed = true
					break
				}
				if c == '\\' && i+1 < len(rs) {
					switch n := rs[i+1]; n {
					case '\\', '"', '$', '`':
						cur.WriteRune(n)
						i++
						continue
					case '\n':
						i++
						continue
					}
				}
				cur.WriteRune(c)
			}
			if !closed {
				return nil, fmt.Errorf("unterminated \" quote starting at offset %d", start)
			}
			inWord, quoted = true, true
		default:
			if !inWord {
				lastPos = i
			}
			cur.WriteRune(r)
			inWord = true
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, errors.New("empty command")
	}
	return args, nil
}

func indexRune(rs []rune, from int, r rune) int {
	for i := from; i < len(rs); i++ {
		if rs[i] == r {
			return i
		}
	}
	return -1
}

func isShellOperator(w string) bool {
	switch w {
	case "|", "||", "&", "&&", ";", ";;", "<", ">", ">>", "<<", "2>", "2>&1", ">&2", "|&":
		return true
	}
	return false
}
