//go:build integration

package admin

import (
	"bufio"
	"bytes"
	"errors"
	"maps"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// snapshot reads every dead letter of b's DLQ in a pass, as Export does,
// and returns them as stored (every property, header and the body), in
// queue order, leaving the queue as it was.
func snapshot(t testing.TB, b *bundle) []amqp.Publishing {
	t.Helper()
	p, err := b.adm.begin(b.ctx, b.q)
	if err != nil {
		t.Fatal(err)
	}
	var out []amqp.Publishing
	for {
		d, ok, err := p.next(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		out = append(out, publishingOf(&d))
		p.keep(&d)
	}
	if _, err := p.finish(b.ctx); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameMessages checks that got holds the messages of want, in order, equal
// in body bytes, every property and every header with its Go (AMQP) type,
// but for x-delivery-count, which the broker raises at every pass.
func sameMessages(t testing.TB, want, got []amqp.Publishing) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	strip := func(m amqp.Publishing) amqp.Publishing {
		m.Headers = maps.Clone(m.Headers)
		delete(m.Headers, deliveryCountHeader)
		if len(m.Headers) == 0 {
			m.Headers = nil
		}
		return m
	}
	for i := range want {
		w, g := strip(want[i]), strip(got[i])
		if !bytes.Equal(w.Body, g.Body) {
			t.Errorf("message %d (%s): body %q, want %q", i, w.MessageId, g.Body, w.Body)
		}
		w.Body, g.Body = nil, nil
		if !reflect.DeepEqual(w, g) {
			t.Errorf("message %d (%s) differs:\nwant %#v\ngot  %#v", i, w.MessageId, w, g)
		}
	}
}

// urlUser is the user name of the test broker's URL.
func urlUser(t testing.TB) string {
	u, err := url.Parse(testbroker.URL())
	if err != nil || u.User == nil {
		t.Fatalf("test URL without a user: %v", err)
	}
	return u.User.Username()
}

// publishOddities stores, in b's DLQ, a dead letter with a header of every
// AMQP type and every property set, and one the broker dead-lettered
// itself (a real x-death: nested tables and arrays, int64, timestamps).
func publishOddities(t testing.TB, b *bundle) {
	t.Helper()
	pub, err := broker.NewPublisher(b.conn, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	m := everyType()
	m.UserId = urlUser(t)     // RabbitMQ refuses any other without the impersonator tag
	m.Expiration = "86400000" // not to expire during the test
	if err := pub.PublishWait(b.ctx, "", b.dlq, m); err != nil {
		t.Fatal(err)
	}
	// Rejected from b.q by a consumer: the broker dead-letters it to b.dlq.
	if err := pub.PublishWait(b.ctx, "", b.q, amqp.Publishing{MessageId: "rejected-1", Type: "t", Body: []byte("r"),
		Headers: amqp.Table{"tenant": "acme"}, DeliveryMode: amqp.Persistent}); err != nil {
		t.Fatal(err)
	}
	ch, err := b.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	n := ready(t, b, b.dlq)
	eventually(t, 30*time.Second, "the rejected message", func() (bool, error) {
		d, ok, err := ch.Get(b.q, false)
		if err != nil || !ok {
			return false, err
		}
		return true, d.Nack(false, false)
	})
	waitCount(t, b, b.dlq, n+1)
}

// TestExportPurgeImportRoundTrip: export, purge, import gives back every
// dead letter byte for byte, with the same properties and header types,
// in order; export alone changes nothing; importing again imports nothing.
func TestExportPurgeImportRoundTrip(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	publishDead(t, b, 20, typeAB)
	publishOddities(t, b)
	publishDeadFrom(t, b, 20, 5)
	before := snapshot(t, b)
	if len(before) != 27 {
		t.Fatalf("%d dead letters stored, want 27", len(before))
	}
	deaths, _ := before[21].Headers["x-death"].([]any)
	if len(deaths) != 1 || before[21].MessageId != "rejected-1" {
		t.Fatalf("the broker's dead letter: %v", before[21].Headers)
	}
	if death, _ := deaths[0].(amqp.Table); death["reason"] != "rejected" || reflect.TypeOf(death["count"]) != reflect.TypeFor[int64]() ||
		reflect.TypeOf(death["time"]) != reflect.TypeFor[time.Time]() {
		t.Fatalf("x-death: %#v", deaths[0])
	}

	var file bytes.Buffer
	res, err := b.adm.Export(b.ctx, b.q, Filter{}, &file, ExportOptions{})
	if err != nil || res.Exported != 27 || res.Removed != 0 || res.Skipped != 0 {
		t.Fatalf("Export = %+v, %v", res, err)
	}
	if lines := strings.Count(file.String(), "\n"); lines != 27 {
		t.Fatalf("%d lines exported", lines)
	}
	// Export without Remove leaves the queue as it was, in order.
	sameMessages(t, before, snapshot(t, b))

	if pr, err := b.adm.Purge(b.ctx, b.q, Filter{All: true}); err != nil || pr.Purged != 27 {
		t.Fatalf("Purge = %+v, %v", pr, err)
	}
	ir, err := b.adm.Import(b.ctx, b.q, bytes.NewReader(file.Bytes()), ImportOptions{})
	if err != nil || ir.Records != 27 || ir.Imported != 27 || ir.Duplicates != 0 || ir.Failed != 0 {
		t.Fatalf("Import = %+v, %v", ir, err)
	}
	sameMessages(t, before, snapshot(t, b))

	// The same file again: every record is already there.
	ir, err = b.adm.Import(b.ctx, b.q, bytes.NewReader(file.Bytes()), ImportOptions{})
	if err != nil || ir.Imported != 0 || ir.Duplicates != 27 {
		t.Fatalf("second Import = %+v, %v", ir, err)
	}
	sameMessages(t, before, snapshot(t, b))

	// Half of it lost from the queue: a third import brings back that half only.
	if _, err := b.adm.Purge(b.ctx, b.q, Filter{Types: []string{"type:a"}}); err != nil {
		t.Fatal(err)
	}
	ir, err = b.adm.Import(b.ctx, b.q, bytes.NewReader(file.Bytes()), ImportOptions{})
	if err != nil || ir.Imported != 13 || ir.Duplicates != 14 {
		t.Fatalf("third Import = %+v, %v", ir, err)
	}
	if n := ready(t, b, b.dlq); n != 27 {
		t.Fatalf("DLQ holds %d, want 27", n)
	}
}

// TestExportRemoveSelected: Export with Remove takes exactly the selected
// dead letters out, in order, and leaves the others in theirs.
func TestExportRemoveSelected(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	all := publishDead(t, b, 40, typeAB)
	before := snapshot(t, b)
	if _, err := b.adm.Export(b.ctx, b.q, Filter{}, &bytes.Buffer{}, ExportOptions{Remove: true}); !errors.Is(err, ErrNoSelector) {
		t.Fatalf("Remove with an empty filter: %v", err)
	}

	var file bytes.Buffer
	var seen []Progress
	ctx := WithProgress(b.ctx, func(p Progress) { seen = append(seen, p) })
	res, err := b.adm.Export(ctx, b.q, Filter{Types: []string{"type:a"}, Limit: 15}, &file, ExportOptions{Remove: true})
	if err != nil || res.Exported != 15 || res.Removed != 15 || res.Skipped != 14 { // 14 type:b before the 15th type:a
		t.Fatalf("Export = %+v, %v", res, err)
	}
	var exported []string
	sc := bufio.NewScanner(&file)
	for sc.Scan() {
		_, m, err := decodeRecord(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		exported = append(exported, m.MessageId)
	}
	var wantOut, wantLeft []string
	var left []amqp.Publishing
	for i, id := range all {
		if i%2 == 0 && i < 30 {
			wantOut = append(wantOut, id)
		} else {
			wantLeft = append(wantLeft, id)
			left = append(left, before[i])
		}
	}
	if !slices.Equal(exported, wantOut) {
		t.Errorf("exported %v, want %v", exported, wantOut)
	}
	sameMessages(t, left, snapshot(t, b))

	last := seen[len(seen)-1]
	if last.Op != "export" || last.Total != 40 || last.Read != 40 || last.Done != 15 || last.Skipped != 14 {
		t.Errorf("last progress %+v", last)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Read < seen[i-1].Read || seen[i].Done < seen[i-1].Done {
			t.Fatalf("progress went back: %+v then %+v", seen[i-1], seen[i])
		}
	}
}

// failingWriter takes n bytes, then fails.
type failingWriter struct {
	buf bytes.Buffer
	n   int
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.n {
		k := w.n - w.buf.Len()
		w.buf.Write(p[:k])
		return k, errors.New("disk full")
	}
	return w.buf.Write(p)
}

// TestExportRemoveWriteFailureLosesNothing: when the output fails midway,
// every dead letter is either in the output, whole, and removed, or still
// in the queue; none is both removed and missing.
func TestExportRemoveWriteFailureLosesNothing(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	const n = 1000
	all := publishDead(t, b, n, typeAB)
	w := &failingWriter{n: 700 << 10} // a few hundred records
	res, err := b.adm.Export(b.ctx, b.q, Filter{All: true}, w, ExportOptions{Remove: true})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Export = %+v, %v; want the write error", res, err)
	}
	t.Logf("Export = %+v: %v", res, err)
	if res.Exported == 0 || res.Exported >= n || res.Removed != res.Exported {
		t.Fatalf("Export = %+v: want some exported and removed, not all", res)
	}
	written := map[string]bool{}
	for _, line := range strings.Split(w.buf.String(), "\n") {
		if _, m, err := decodeRecord([]byte(line)); err == nil {
			written[m.MessageId] = true
		}
	}
	inQueue := map[string]bool{}
	for _, m := range snapshot(t, b) {
		inQueue[m.MessageId] = true
	}
	if len(inQueue) != n-res.Removed {
		t.Errorf("queue holds %d, want %d", len(inQueue), n-res.Removed)
	}
	for _, id := range all {
		if !written[id] && !inQueue[id] {
			t.Errorf("dead letter %s is neither in the output nor in the queue", id)
		}
	}
}

// TestImportMalformedImportsNothing: one bad line fails the whole import,
// naming every bad line, before anything is published.
func TestImportMalformedImportsNothing(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	publishDead(t, b, 5, typeAB)
	var file bytes.Buffer
	if _, err := b.adm.Export(b.ctx, b.q, Filter{}, &file, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.adm.Purge(b.ctx, b.q, Filter{All: true}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(file.String(), "\n"), "\n")
	bad := strings.Join([]string{lines[0], lines[1], `{"version":1,"properties":{},"body":"!"}`, "", lines[2], lines[3], lines[4][:len(lines[4])/2]}, "\n")
	res, err := b.adm.Import(b.ctx, b.q, strings.NewReader(bad), ImportOptions{})
	var re *RecordError
	if !errors.As(err, &re) || re.Line != 3 || !strings.Contains(err.Error(), "line 7: the record is cut short") ||
		!strings.Contains(err.Error(), "2 malformed lines") || !strings.Contains(err.Error(), "nothing imported") {
		t.Fatalf("Import = %+v, %v", res, err)
	}
	if res.Imported != 0 || ready(t, b, b.dlq) != 0 {
		t.Fatalf("imported %d; DLQ holds %d", res.Imported, ready(t, b, b.dlq))
	}
	// Fixed, from a pipe (not seekable: copied to a temporary file).
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() {
		_, _ = w.WriteString(strings.Join(lines, "\n"))
		_ = w.Close()
	}()
	res, err = b.adm.Import(b.ctx, b.q, r, ImportOptions{})
	if err != nil || res.Imported != 5 {
		t.Fatalf("Import = %+v, %v", res, err)
	}
}

// TestImportTargets: a missing dead-letter queue, or a missing ToQueue, is
// refused; ToQueue receives the records.
func TestImportTargets(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	publishDead(t, b, 3, typeAB)
	var file bytes.Buffer
	if _, err := b.adm.Export(b.ctx, b.q, Filter{}, &file, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	missing := testbroker.Queue(t, b.conn)
	if _, err := b.adm.Import(b.ctx, missing, bytes.NewReader(file.Bytes()), ImportOptions{}); !errors.Is(err, broker.ErrQueueNotFound) ||
		!strings.Contains(err.Error(), warren.DeadLetterQueue(missing)+" does not exist") {
		t.Fatalf("import into a missing DLQ: %v", err)
	}
	if _, err := b.adm.Import(b.ctx, "", bytes.NewReader(file.Bytes()), ImportOptions{ToQueue: missing}); !errors.Is(err, broker.ErrQueueNotFound) {
		t.Fatalf("import into a missing ToQueue: %v", err)
	}
	hold := testbroker.Queue(t, b.conn)
	if err := broker.DeclareQueue(b.ctx, b.conn, hold, broker.QueueOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // no duplicate check there
		if res, err := b.adm.Import(b.ctx, "", bytes.NewReader(file.Bytes()), ImportOptions{ToQueue: hold}); err != nil || res.Imported != 3 {
			t.Fatalf("Import to %s = %+v, %v", hold, res, err)
		}
	}
	if got := deliveryIDs(drain(t, b, hold)); !slices.Equal(got, []string{"id-000000", "id-000001", "id-000002", "id-000000", "id-000001", "id-000002"}) {
		t.Fatalf("%s holds %v", hold, got)
	}
	if n := ready(t, b, b.dlq); n != 3 {
		t.Fatalf("the DLQ holds %d, want 3 (untouched)", n)
	}
}

// TestImportRefusedUserID: a record whose user_id is not the importing
// user's fails clearly, after the records before it are confirmed.
func TestImportRefusedUserID(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	publishDead(t, b, 3, typeAB)
	var file bytes.Buffer
	if _, err := b.adm.Export(b.ctx, b.q, Filter{}, &file, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.adm.Purge(b.ctx, b.q, Filter{All: true}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(file.String(), "\n"), "\n")
	lines[1] = strings.Replace(lines[1], `"properties":{`, `"properties":{"user_id":"someone-else",`, 1)
	res, err := b.adm.Import(b.ctx, b.q, strings.NewReader(strings.Join(lines, "\n")), ImportOptions{})
	var re *RecordError
	if !errors.As(err, &re) || re.Line != 2 || !strings.Contains(err.Error(), "impersonator") {
		t.Fatalf("Import = %+v, %v", res, err)
	}
	if res.Imported != 1 || res.Failed != 1 {
		t.Fatalf("Import = %+v", res)
	}
	if n := ready(t, b, b.dlq); n != 1 {
		t.Fatalf("DLQ holds %d, want the 1 record before the refused one", n)
	}
}
