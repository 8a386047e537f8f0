//go:build integration

package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/internal/testbroker"
)

// records parses an export, one record a line, leaving out each header
// x-delivery-count (the broker raises it at every pass over the queue).
func records(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("record %q: %v", line, err)
		}
		if h, ok := r["headers"].(map[string]any); ok {
			delete(h, "x-delivery-count")
		}
		recs = append(recs, r)
	}
	return recs
}

func recordIDs(recs []map[string]any) []string {
	var ids []string
	for _, r := range recs {
		p, _ := r["properties"].(map[string]any)
		id, _ := p["message_id"].(string)
		ids = append(ids, id)
	}
	return ids
}

func sameRecords(t *testing.T, what string, want, got []map[string]any) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(want[i], got[i]) {
			t.Fatalf("%s: record %d differs:\nwant %v\ngot  %v", what, i, want[i], got[i])
		}
	}
}

func mustRun(t *testing.T, r cliResult) cliResult {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%.2000s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	return r
}

// TestDLQExportPurgeImport: export changes nothing; export, purge and
// import give back the same dead letters (every property, header type and
// body byte, as the canonical records show), in order; importing the same
// file again imports nothing.
func TestDLQExportPurgeImport(t *testing.T) {
	conn := testbroker.Dial(t)
	q := dlqQueue(t, conn)
	dlq := warren.DeadLetterQueue(q)
	fillDLQ(t, conn, q, 30, func(i int) string { return []string{"a", "b", "c"}[i%3] })
	publishDeadLetter(t, conn, q, "odd-1", "a", "boom\n\twith \"quotes\" and \xff bytes")
	eventually(t, 30*time.Second, func() bool { return ready(t, conn, dlq) == 31 }, "dead letters not stored")

	first := mustRun(t, warrenRun(t, time.Minute, nil, "dlq", "export", "--queue", q))
	if !strings.Contains(first.stderr, "exported 31 dead letters from "+dlq+" to stdout") {
		t.Errorf("summary: %s", first.stderr)
	}
	want := records(t, first.stdout)
	if ids := recordIDs(want); ids[0] != "dl-00000" || ids[29] != "dl-00029" || ids[30] != "odd-1" {
		t.Fatalf("exported in this order: %v", ids)
	}
	// Export without --remove leaves the queue as it was: a second export
	// reads the same dead letters, byte for byte, in the same order.
	sameRecords(t, "second export", want, records(t, mustRun(t, warrenRun(t, time.Minute, nil, "dlq", "export", "--queue", q)).stdout))

	mustRun(t, warrenRun(t, time.Minute, nil, "dlq", "purge", "--queue", q, "--all", "--yes"))
	if n := ready(t, conn, dlq); n != 0 {
		t.Fatalf("%d dead letters left after purge", n)
	}
	r := mustRun(t, warrenRun(t, time.Minute, strings.NewReader(first.stdout), "dlq", "import", "--queue", q))
	if !strings.Contains(r.stderr, "imported 31 dead letters from stdin into "+dlq) {
		t.Errorf("import summary: %s", r.stderr)
	}
	sameRecords(t, "export after import", want, records(t, mustRun(t, warrenRun(t, time.Minute, nil, "dlq", "export", "--queue", q)).stdout))

	// The same file again: nothing imported, nothing duplicated.
	path := filepath.Join(t.TempDir(), "dead.ndjson")
	if err := os.WriteFile(path, []byte(first.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, warrenRun(t, time.Minute, nil, "dlq", "import", "--queue", q, "--file", path, "--output", "json"))
	var sum importJSON
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || sum.Records != 31 || sum.Imported != 0 || sum.Duplicates != 31 || sum.Queue != dlq {
		t.Fatalf("second import: %v\n%s", err, r.stdout)
	}
	if n := ready(t, conn, dlq); n != 31 {
		t.Fatalf("%s holds %d after importing twice, want 31", dlq, n)
	}
}

// TestDLQExportRemove: --remove takes out exactly the selected dead
// letters, written to --file, and leaves the others in their order.
func TestDLQExportRemove(t *testing.T) {
	conn := testbroker.Dial(t)
	q := dlqQueue(t, conn)
	dlq := warren.DeadLetterQueue(q)
	fillDLQ(t, conn, q, 30, func(i int) string { return []string{"a", "b", "c"}[i%3] })
	eventually(t, 30*time.Second, func() bool { return ready(t, conn, dlq) == 30 }, "dead letters not stored")
	all := records(t, mustRun(t, warrenRun(t, time.Minute, nil, "dlq", "export", "--queue", q)).stdout)

	path := filepath.Join(t.TempDir(), "a.ndjson")
	r := mustRun(t, warrenRun(t, time.Minute, nil, "dlq", "export", "--queue", q, "--type", "a", "--remove", "--file", path, "--output", "json"))
	var sum exportJSON
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || sum.Exported != 10 || sum.Removed != 10 || sum.Skipped != 20 || sum.File != path {
		t.Fatalf("export --remove: %v\n%s", err, r.stdout)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the export file: %v, %v", st, err)
	}
	b, _ := os.ReadFile(path)
	var wantOut, wantLeft []map[string]any
	for i, rec := range all {
		if i%3 == 0 {
			wantOut = append(wantOut, rec)
		} else {
			wantLeft = append(wantLeft, rec)
		}
	}
	sameRecords(t, "the removed", wantOut, records(t, string(b)))
	sameRecords(t, "the rest", wantLeft, records(t, mustRun(t, warrenRun(t, time.Minute, nil, "dlq", "export", "--queue", q)).stdout))

	// The file is never overwritten.
	r = warrenRun(t, time.Minute, nil, "dlq", "export", "--queue", q, "--file", path)
	if r.code != 2 || !strings.Contains(r.stderr, "exists") {
		t.Fatalf("export over an existing file: exit %d\n%s", r.code, r.stderr)
	}
	if b2, _ := os.ReadFile(path); string(b2) != string(b) {
		t.Fatal("the existing file changed")
	}
}

// TestDLQImportMalformed: a bad line fails the import with its line
// number, and nothing at all is imported.
func TestDLQImportMalformed(t *testing.T) {
	conn := testbroker.Dial(t)
	q := dlqQueue(t, conn)
	dlq := warren.DeadLetterQueue(q)
	fillDLQ(t, conn, q, 4, oneType)
	eventually(t, 30*time.Second, func() bool { return ready(t, conn, dlq) == 4 }, "dead letters not stored")
	path := filepath.Join(t.TempDir(), "dead.ndjson")
	mustRun(t, warrenRun(t, time.Minute, nil, "dlq", "export", "--queue", q, "--remove", "--all", "--file", path))
	out, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	bad := strings.Join([]string{lines[0], lines[1], `{"version":1,"properties":{},"headers":{"n":{"type":"int8","value":1000}},"body":""}`, lines[2], lines[3]}, "\n")
	r := warrenRun(t, time.Minute, strings.NewReader(bad), "dlq", "import", "--queue", q)
	if r.code != 1 || !strings.Contains(r.stderr, "line 3:") || !strings.Contains(r.stderr, "nothing imported") || !strings.Contains(r.stderr, "1 malformed line in 5 lines") {
		t.Fatalf("malformed import: exit %d\n%s", r.code, r.stderr)
	}
	if n := ready(t, conn, dlq); n != 0 {
		t.Fatalf("%d imported from a malformed file", n)
	}
	t.Logf("stderr: %s", strings.TrimSpace(r.stderr))
}

// TestDLQExportImportFailures: a missing queue or an unreachable broker
// exits 1 with a clear message and never the password; a usage error
// exits 2 before anything happens.
func TestDLQExportImportFailures(t *testing.T) {
	conn := testbroker.Dial(t)
	missing := testbroker.Queue(t, conn) // never declared
	r := warrenRun(t, time.Minute, strings.NewReader(""), "dlq", "import", "--queue", missing)
	if r.code != 1 || !strings.Contains(r.stderr, warren.DeadLetterQueue(missing)+" does not exist") {
		t.Fatalf("import into a missing queue: exit %d\n%s", r.code, r.stderr)
	}
	r = warrenRun(t, time.Minute, strings.NewReader(""), "dlq", "import", "--to-queue", missing)
	if r.code != 1 || !strings.Contains(r.stderr, "queue "+missing+" does not exist") {
		t.Fatalf("import --to-queue a missing queue: exit %d\n%s", r.code, r.stderr)
	}
	path := filepath.Join(t.TempDir(), "out.ndjson")
	r = warrenRun(t, time.Minute, nil, "dlq", "export", "--queue", missing, "--file", path)
	if r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("export of a missing queue: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a failed export left %s behind: %v", path, err)
	}
	for _, args := range [][]string{
		{"--url", "amqp://guest:s3cr3tpw@127.0.0.1:1/", "dlq", "export", "--queue", "q"},
		{"--url", "amqp://guest:s3cr3tpw@127.0.0.1:1/", "dlq", "import", "--queue", "q"},
		{"--url", "amqp://guest:s3cr3tpw@" + hostOf(testbroker.URL()) + "/", "dlq", "import", "--queue", "q"},
	} {
		r := warrenRun(t, time.Minute, strings.NewReader(""), args...)
		if r.code != 1 || strings.Contains(r.stderr+r.stdout, "s3cr3tpw") || !strings.HasPrefix(r.stderr, "warren: ") {
			t.Errorf("warren %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	for _, args := range [][]string{
		{"dlq", "export"},
		{"dlq", "import"},
		{"dlq", "import", "--queue", "q", "--to-queue", "hold"},
		{"dlq", "export", "--queue", "q", "--remove"},
		{"dlq", "export", "--queue", "q", "--remove", "--all"}, // stdout is a pipe here
	} {
		if r := warrenRun(t, time.Minute, strings.NewReader(""), args...); r.code != 2 {
			t.Errorf("warren %s: exit %d, want 2\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// TestDLQProgressOnATerminal runs replay under script(1), which gives it
// a terminal: the bar is drawn on stderr, then erased before the summary.
// Without a terminal, no escape sequence is written at all.
func TestDLQProgressOnATerminal(t *testing.T) {
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) not found: no way to give warren a terminal")
	}
	conn := testbroker.Dial(t)
	q := dlqQueue(t, conn)
	dlq := warren.DeadLetterQueue(q)
	fillDLQ(t, conn, q, 200, oneType)
	eventually(t, 30*time.Second, func() bool { return ready(t, conn, dlq) == 200 }, "dead letters not stored")

	r := mustRun(t, warrenRun(t, time.Minute, nil, "dlq", "replay", "--queue", q, "--limit", "50", "--all", "--dry-run"))
	if strings.Contains(r.stderr, "\x1b[") || strings.Contains(r.stderr, "\r") {
		t.Fatalf("a progress bar off a terminal: %q", r.stderr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmdline := strings.Join([]string{bin, "--url", testbroker.URL(), "dlq", "replay", "--queue", q, "--all", "--rate", "400/s"}, " ")
	c := exec.CommandContext(ctx, scriptBin, "-qec", cmdline, "/dev/null")
	c.Env = cliEnv()
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("script: %v\n%q", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "\r\x1b[K[") || !strings.Contains(s, "/200  replayed ") {
		t.Fatalf("no progress bar on the terminal: %q", tail(s, 2000))
	}
	i := strings.LastIndex(s, "\r\x1b[K")
	if j := strings.Index(s, "replayed 200 dead letters from "+dlq); j < i {
		t.Fatalf("the summary is not after the erased bar: %q", tail(s, 600))
	}
	if n := ready(t, conn, q); n != 200 {
		t.Errorf("%s holds %d, want 200", q, n)
	}
}
