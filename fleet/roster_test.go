package fleet

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// clock is a settable time for a Roster.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func testRoster(keep time.Duration) (*Roster, *clock) {
	c := &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	r := NewRoster(nil, RosterConfig{Keep: keep, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	r.now = c.now
	return r, c
}

func beat(id, host string, pid int) Beat {
	return Beat{ID: id, Host: host, PID: pid, Interval: time.Second, Queues: []string{"q-" + id}}
}

func states(ws []Worker) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteString(w.ID)
		if w.Gone {
			b.WriteString("(gone)")
		}
		b.WriteString(" ")
	}
	return strings.TrimSpace(b.String())
}

func TestRosterExpiry(t *testing.T) {
	r, c := testRoster(time.Minute)
	r.observe(beat("a", "h1", 1), c.t)
	r.observe(beat("b", "h1", 2), c.t)
	if got := states(r.Workers()); got != "a b" {
		t.Fatalf("at first: %s", got)
	}
	// Three intervals of silence: still live; past them: gone.
	c.advance(3 * time.Second)
	r.observe(beat("b", "h1", 2), c.t)
	if got := states(r.Workers()); got != "a b" {
		t.Fatalf("after 3 intervals: %s", got)
	}
	c.advance(time.Millisecond)
	if got := states(r.Workers()); got != "b a(gone)" {
		t.Fatalf("after 3 intervals and a bit: %s", got)
	}
	// A stopping beat: gone at once.
	st := beat("b", "h1", 2)
	st.Stopping = true
	r.observe(st, c.t)
	if got := states(r.Workers()); got != "a(gone) b(gone)" {
		t.Fatalf("after b stopped: %s", got)
	}
	// Gone pools stay Keep, then drop: a went away at 3s, b at 3.001s.
	c.advance(time.Minute - time.Millisecond)
	if got := states(r.Workers()); got != "a(gone) b(gone)" {
		t.Fatalf("just within Keep: %s", got)
	}
	c.advance(time.Millisecond)
	if got := states(r.Workers()); got != "b(gone)" {
		t.Fatalf("a past Keep: %s", got)
	}
	c.advance(time.Millisecond)
	if got := states(r.Workers()); got != "" {
		t.Fatalf("both past Keep: %s", got)
	}
	// A pool heard again comes back live.
	r.observe(beat("a", "h1", 1), c.t)
	if got := states(r.Workers()); got != "a" {
		t.Fatalf("a back: %s", got)
	}
}

func TestRosterDefaults(t *testing.T) {
	r, c := testRoster(0)
	if r.keep != DefaultKeep {
		t.Errorf("keep %s, want %s", r.keep, DefaultKeep)
	}
	b := beat("a", "h", 1)
	b.Interval = 0 // none stated: DefaultInterval
	r.observe(b, c.t)
	c.advance(goneAfter * DefaultInterval)
	if ws := r.Workers(); len(ws) != 1 || ws[0].Gone {
		t.Fatalf("within 3 default intervals: %+v", ws)
	}
	c.advance(time.Millisecond)
	if ws := r.Workers(); len(ws) != 1 || !ws[0].Gone {
		t.Fatalf("past 3 default intervals: %+v", ws)
	}
}

func TestRosterOrderAndQueues(t *testing.T) {
	r, c := testRoster(time.Hour)
	for _, b := range []Beat{beat("z", "h2", 1), beat("y", "h1", 20), beat("x", "h1", 3), beat("w", "h0", 1)} {
		r.observe(b, c.t)
	}
	gone := beat("w", "h0", 1)
	gone.Stopping = true
	r.observe(gone, c.t)
	shared := beat("v", "h3", 1)
	shared.Queues = []string{"q-x", "q-other"}
	r.observe(shared, c.t)
	if got := states(r.Workers()); got != "x y z v w(gone)" {
		t.Errorf("order: %s", got)
	}
	if got := strings.Join(r.Queues(), " "); got != "q-other q-x q-y q-z" {
		t.Errorf("queues: %s", got)
	}
	// What Workers returns is the caller's to change.
	ws := r.Workers()
	ws[0].Queues[0] = "changed"
	if r.Workers()[0].Queues[0] != "q-x" {
		t.Error("Workers shares its slices with the roster")
	}
}

func TestRosterIgnoresWhatIsNoBeat(t *testing.T) {
	r, c := testRoster(time.Hour)
	good, err := json.Marshal(Beat{ID: "h/1/1", Host: "h", PID: 1, Interval: time.Second, Running: []Running{{Queue: "q", Type: "t", ID: "task", Started: c.t}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range [][]byte{
		[]byte("not json"),
		[]byte(`{"host":"h"}`), // no id
		[]byte(`{"id":7}`),
		append(append([]byte(`{"id":"big","host":"`), strings.Repeat("x", MaxBeatSize)...), `"}`...),
		good,
	} {
		r.receive(body)
	}
	ws := r.Workers()
	if len(ws) != 1 || ws[0].ID != "h/1/1" || len(ws[0].Running) != 1 || ws[0].Running[0].ID != "task" || !ws[0].LastSeen.Equal(c.t) {
		t.Fatalf("workers: %+v", ws)
	}
}

func TestBeatJSON(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	b := Beat{ID: "h/1/1", Host: "h", PID: 1, Version: "v1", Queues: []string{"q"}, Concurrency: 2, Started: at, Sent: at,
		Interval: 2 * time.Second, Running: []Running{{Queue: "q", Type: "t", ID: "i", Started: at}}, RunningTotal: 1,
		Counts: map[string]QueueCounts{"q": {Succeeded: 1, Retried: 2, DeadLettered: 3, Unacked: 4}}, Paused: []string{"q"}}
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"h/1/1","host":"h","pid":1,"version":"v1","queues":["q"],"concurrency":2,"started":"2030-01-02T03:04:05Z","sent":"2030-01-02T03:04:05Z","interval_ns":2000000000,"running":[{"queue":"q","type":"t","id":"i","started":"2030-01-02T03:04:05Z"}],"running_total":1,"counts":{"q":{"succeeded":1,"retried":2,"dead_lettered":3,"unacked":4}},"paused":["q"]}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}
