package admin

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func recordLine(t *testing.T, m amqp.Publishing) string {
	t.Helper()
	b, err := encodeRecord("q", m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readBack collects the message IDs each yields.
func readBack(t *testing.T, in *input) []string {
	t.Helper()
	var ids []string
	if err := in.each(func(_ int, m amqp.Publishing) error { ids = append(ids, m.MessageId); return nil }); err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestCheckInput(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 1<<20+100) // a line far past the reader's buffer
	lines := []string{
		recordLine(t, amqp.Publishing{MessageId: "a"}),
		"",
		"  ",
		recordLine(t, amqp.Publishing{MessageId: "b", Body: big}) + "\r",
		recordLine(t, amqp.Publishing{MessageId: "c"}), // no newline at the end
	}
	text := strings.Join(lines, "\n")
	for name, r := range map[string]io.Reader{
		"seekable":   strings.NewReader(text),
		"a pipe":     io.MultiReader(strings.NewReader(text)), // not an io.Seeker: spooled
		"from later": seekedTo(t, "garbage\n"+text, len("garbage\n")),
	} {
		in, err := checkInput(r, 0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if in.records != 3 || in.lines != 5 || len(in.bad) != 0 {
			t.Errorf("%s: %d records in %d lines, bad %v", name, in.records, in.lines, in.bad)
		}
		if got := strings.Join(readBack(t, in), ","); got != "a,b,c" {
			t.Errorf("%s: read back %s", name, got)
		}
		in.close()
	}
}

func seekedTo(t *testing.T, s string, off int) io.Reader {
	r := strings.NewReader(s)
	if _, err := r.Seek(int64(off), io.SeekStart); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCheckInputMalformed(t *testing.T) {
	good := recordLine(t, amqp.Publishing{MessageId: "a"})
	var lines []string
	for i := range 15 {
		if i%2 == 0 {
			lines = append(lines, good)
		} else {
			lines = append(lines, `{"id":"not a record"}`)
		}
	}
	lines = append(lines, recordLine(t, amqp.Publishing{MessageId: "cc", Headers: amqp.Table{"CC": []any{"other"}}}))
	in, err := checkInput(strings.NewReader(strings.Join(lines, "\n")), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer in.close()
	if in.badCount != 8 || len(in.bad) != maxReportedLines-2 {
		t.Fatalf("bad %d, reported %d", in.badCount, len(in.bad))
	}
	var re *RecordError
	if !errors.As(in.bad[0], &re) || re.Line != 2 || !strings.Contains(re.Error(), `line 2: no "version"`) {
		t.Errorf("first: %v", in.bad[0])
	}
	if last := in.bad[len(in.bad)-1].Error(); !strings.Contains(last, "line 16: header CC") {
		t.Errorf("last: %s", last)
	}
}

func TestScanLinesTooLong(t *testing.T) {
	defer func(n int) { maxRecordLine = n }(maxRecordLine)
	maxRecordLine = 4 << 20
	r := io.MultiReader(strings.NewReader("{}\n"), io.LimitReader(zeros{}, int64(maxRecordLine+(2<<20))))
	n := 0
	err := scanLines(r, func(int, []byte) error { n++; return nil })
	var re *RecordError
	if !errors.As(err, &re) || re.Line != 2 || n != 1 {
		t.Fatalf("err %v after %d lines", err, n)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}
