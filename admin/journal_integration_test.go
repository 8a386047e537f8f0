//go:build integration

package admin

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testbroker"
)

// TestBCCOnThisBroker checks the broker feature the replay journal rests
// on: a message published to the default exchange with the BCC header
// reaches both the routing key's queue and the BCC queue, confirmed, and
// neither copy carries the header.
func TestBCCOnThisBroker(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	journalQ := JournalQueue(b.q)
	if err := b.adm.declareJournal(b.ctx, b.q); err != nil {
		t.Fatal(err)
	}
	pub, err := broker.NewPublisher(b.conn, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	msg := amqp.Publishing{MessageId: "bcc-1", Body: []byte("x"), Headers: amqp.Table{"keep": "me", bccHeader: []any{journalQ}}}
	if err := pub.PublishWait(b.ctx, "", b.q, msg); err != nil {
		t.Fatalf("publish with BCC: %v", err)
	}
	for _, q := range []string{b.q, journalQ} {
		got := drain(t, b, q)
		if len(got) != 1 || got[0].MessageId != "bcc-1" || got[0].Headers["keep"] != "me" {
			t.Fatalf("%s holds %+v", q, got)
		}
		if _, ok := got[0].Headers[bccHeader]; ok {
			t.Errorf("%s: the BCC header was stored", q)
		}
	}
}

// publishJournal stores a journal entry as a replay would: the replayed
// message of task id with replay count n.
func publishJournal(t testing.TB, b *bundle, id string, n int) {
	t.Helper()
	if err := b.adm.declareJournal(b.ctx, b.q); err != nil {
		t.Fatal(err)
	}
	ch, err := b.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	msg := amqp.Publishing{MessageId: id, Body: []byte("{}"), Headers: amqp.Table{warren.HeaderReplayCount: int32(n)}}
	if err := ch.Publish("", JournalQueue(b.q), true, false, msg); err != nil {
		t.Fatal(err)
	}
}

// setReplayCount republishes the DLQ's dead letters with their replay
// count set to count(id).
func setReplayCount(t testing.TB, b *bundle, count func(id string) int) {
	t.Helper()
	pub, err := broker.NewPublisher(b.conn, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for _, d := range drain(t, b, b.dlq) {
		msg := broker.Derive(&d, amqp.Table{warren.HeaderReplayCount: int32(count(d.MessageId))})
		if err := pub.PublishWait(b.ctx, "", b.dlq, msg); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReplayResumesFromJournal: dead letters whose journal entry says
// they were replayed are removed without a publish; a task that was
// replayed, failed again and was dead-lettered again (its count equals
// the entry's) is replayed; then the journal is gone.
func TestReplayResumesFromJournal(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	all := publishDead(t, b, 6, typeAB)
	// id-000000, id-000001: replayed before (entry count 1), dead letter count 0 → resumed.
	// id-000002: replayed (entry 1), failed again, dead letter count 1 → replayed again.
	// id-000003: dead letter count 2, entry count 2 (an older replay) → replayed.
	setReplayCount(t, b, func(id string) int {
		switch id {
		case all[2]:
			return 1
		case all[3]:
			return 2
		}
		return 0
	})
	for _, e := range []struct {
		id string
		n  int
	}{{all[0], 1}, {all[1], 1}, {all[2], 1}, {all[3], 2}} {
		publishJournal(t, b, e.id, e.n)
	}
	waitCount(t, b, JournalQueue(b.q), 4)

	res, err := b.adm.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{DryRun: true})
	if err != nil || res.Resumed != 2 || res.Replayed != 4 {
		t.Fatalf("dry run: %+v, %v", res, err)
	}
	if n := ready(t, b, JournalQueue(b.q)); n != 4 {
		t.Fatalf("a dry run changed the journal: %d entries", n)
	}

	res, err = b.adm.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != 2 || res.Replayed != 4 || !slices.Equal(res.IDs, all[2:]) {
		t.Fatalf("Replay = %+v", res)
	}
	got := drain(t, b, b.q)
	if !slices.Equal(deliveryIDs(got), all[2:]) {
		t.Fatalf("queue holds %v", deliveryIDs(got))
	}
	wantCount := map[string]int64{all[2]: 2, all[3]: 3, all[4]: 1, all[5]: 1}
	for _, m := range got {
		if n, _ := broker.HeaderInt(m.Headers, warren.HeaderReplayCount); n != wantCount[m.MessageId] {
			t.Errorf("%s: replay count %d, want %d", m.MessageId, n, wantCount[m.MessageId])
		}
		if _, ok := m.Headers[bccHeader]; ok {
			t.Errorf("%s carries the BCC header", m.MessageId)
		}
	}
	if n := ready(t, b, b.dlq); n != 0 {
		t.Fatalf("DLQ holds %d", n)
	}
	if _, err := broker.Inspect(b.ctx, b.conn, JournalQueue(b.q)); err == nil {
		t.Error("the journal survived a completed replay")
	}
}

// TestReplayJournalSurvivesAKill: a replay whose connection dies after
// the broker confirmed some copies and before their dead letters were
// acked leaves journal entries; the next replay removes those dead
// letters without replaying them again.
func TestReplayJournalSurvivesAKill(t *testing.T) {
	b := setup(t, broker.QueueOptions{})
	all := publishDead(t, b, 300, typeAB)
	conn := testbroker.DialNamed(t, broker.Config{Name: fmt.Sprintf("%s-doomed", t.Name()), DialRetries: -1})
	doomed := New(conn, Config{Logger: quietLogger()})
	done := make(chan error, 1)
	go func() {
		_, err := doomed.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{})
		done <- err
	}()
	eventually(t, 30*time.Second, "some replays", func() (bool, error) {
		st, err := broker.Inspect(b.ctx, b.conn, b.q)
		return st.Ready >= 50, err
	})
	testbroker.CloseConnection(t, fmt.Sprintf("%s-doomed", t.Name()))
	<-done
	_ = conn.Close()
	// The lock goes with the connection; the held dead letters return.
	var res ReplayResult
	eventually(t, 30*time.Second, "a replay after the kill", func() (bool, error) {
		var err error
		res, err = b.adm.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{})
		if err != nil && errorsIsBusy(err) {
			return false, nil
		}
		return true, err
	})
	t.Logf("after the kill: %+v (without IDs)", ReplayResult{Replayed: res.Replayed, Resumed: res.Resumed, Failed: res.Failed})
	eventually(t, 30*time.Second, "DLQ empty", func() (bool, error) {
		if ready(t, b, b.dlq) == 0 {
			return true, nil
		}
		_, err := b.adm.Replay(b.ctx, b.q, Filter{All: true}, ReplayOptions{})
		if errorsIsBusy(err) {
			err = nil
		}
		return false, err
	})
	seen := map[string]int{}
	for _, id := range deliveryIDs(drain(t, b, b.q)) {
		seen[id]++
	}
	for _, id := range all {
		if seen[id] != 1 {
			t.Errorf("task %s replayed %d times", id, seen[id])
		}
	}
	if len(seen) != len(all) {
		t.Errorf("queue holds %d tasks, want %d", len(seen), len(all))
	}
}

func errorsIsBusy(err error) bool { return errors.Is(err, ErrBusy) }
