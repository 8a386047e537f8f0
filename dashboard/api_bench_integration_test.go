//go:build integration

package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/dashboard"
	"github.com/warrenq/warren/internal/testbroker"
	"github.com/warrenq/warren/producer"
)

// BenchmarkHTTPEnqueueBatch enqueues b.N tasks through POST
// /api/v1/queues/{q}/tasks/batch on keep-alive connections, and, for
// comparison, the same tasks as NDJSON lines through
// producer.EnqueueStream (what `warren enqueue --from-file` runs).
// It reports tasks/s. Run it with a fixed count, e.g.
//
//	go test -tags integration -run '^$' -bench HTTPEnqueueBatch -benchtime 20000x ./dashboard/
func BenchmarkHTTPEnqueueBatch(b *testing.B) {
	payload := func(i int) string {
		return fmt.Sprintf(`{"n":%d,"to":"user%d@example.com","template":"welcome"}`, i, i)
	}
	for _, c := range []struct {
		batch, clients int
	}{{500, 1}, {500, 4}, {1000, 4}} {
		b.Run(fmt.Sprintf("http/batch=%d/clients=%d", c.batch, c.clients), func(b *testing.B) {
			e := newEnv(b, dashboard.Config{MaxBatch: c.batch})
			q := e.queue()
			bodies := make(chan []byte, c.clients)
			go func() {
				defer close(bodies)
				for done := 0; done < b.N; done += c.batch {
					var buf bytes.Buffer
					buf.WriteString(`{"tasks":[`)
					for i := done; i < min(done+c.batch, b.N); i++ {
						if i > done {
							buf.WriteByte(',')
						}
						fmt.Fprintf(&buf, `{"type":"email:send","payload":%s}`, payload(i))
					}
					buf.WriteString(`]}`)
					bodies <- buf.Bytes()
				}
			}()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.clients}}
			defer client.CloseIdleConnections()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range c.clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for body := range bodies {
						resp, err := client.Post(e.ts.URL+"/api/v1/queues/"+q+"/tasks/batch", "application/json", bytes.NewReader(body))
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusCreated {
							b.Errorf("batch: %d", resp.StatusCode)
							return
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "tasks/s")
			if n := e.ready(q); n != b.N {
				b.Errorf("%d tasks on the queue, want %d", n, b.N)
			}
		})
	}
	b.Run("stream", func(b *testing.B) {
		conn := testbroker.Dial(b)
		q := testbroker.Queue(b, conn)
		ctx := testbroker.Context(b, 5*time.Minute)
		p, err := producer.New(ctx, conn, producer.Config{Queues: []string{q}, Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close(context.Background())
		var in bytes.Buffer
		for i := range b.N {
			fmt.Fprintf(&in, `{"type":"email:send","payload":%s}`+"\n", payload(i))
		}
		b.ResetTimer()
		start := time.Now()
		tot, err := p.EnqueueStream(ctx, &in, producer.StreamConfig{Queue: q})
		el := time.Since(start)
		b.StopTimer()
		if err != nil || tot.Enqueued != b.N {
			b.Fatalf("stream: %+v, %v", tot, err)
		}
		b.ReportMetric(float64(b.N)/el.Seconds(), "tasks/s")
	})
}

// BenchmarkAPIOverview200Queues measures GET /api/v1/overview on a
// dashboard that samples 200 queues, sequentially and from 8 clients,
// reporting the p50 and p99 latency (not asserted).
func BenchmarkAPIOverview200Queues(b *testing.B) {
	conn := testbroker.Dial(b)
	ctx := testbroker.Context(b, 10*time.Minute)
	names := make([]string, 200)
	for i := range names {
		names[i] = testbroker.Queue(b, conn)
	}
	if err := broker.Declare(ctx, conn, broker.QueueOptions{Type: broker.Classic}, names...); err != nil {
		b.Fatal(err)
	}
	e := newEnv(b, dashboard.Config{Queues: names, SampleInterval: time.Second})
	eventually(b, 60*time.Second, "a sample of 200 queues", func() bool {
		r := e.do("GET", "/api/v1/overview", nil)
		var ov struct {
			Queues []json.RawMessage `json:"queues"`
		}
		_ = json.Unmarshal(r.body, &ov)
		return len(ov.Queues) == 200
	})
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
			defer client.CloseIdleConnections()
			lat := make([]time.Duration, b.N)
			var next sync.Mutex
			i := 0
			size := 0
			var wg sync.WaitGroup
			b.ResetTimer()
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						next.Lock()
						k := i
						i++
						next.Unlock()
						if k >= b.N {
							return
						}
						t0 := time.Now()
						resp, err := client.Get(e.ts.URL + "/api/v1/overview")
						if err != nil {
							b.Error(err)
							return
						}
						n, _ := io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						lat[k] = time.Since(t0)
						if resp.StatusCode != 200 {
							b.Errorf("overview: %d", resp.StatusCode)
							return
						}
						size = int(n)
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(size), "bytes/resp")
		})
	}
}

// publishDeadLetters puts n dead letters into queue's dead-letter queue
// as a worker makes them (broker.EncodeDeadLetter), published directly.
func publishDeadLetters(t testing.TB, ctx context.Context, conn *broker.Conn, queue string, first, n int) {
	t.Helper()
	pub, err := broker.NewPublisher(conn, 512)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	now := time.Now()
	pend := make([]*broker.Pending, 0, n)
	for i := first; i < first+n; i++ {
		task := &warren.Task{ID: fmt.Sprintf("big-%07d", i), Type: []string{"email:send", "card:charge", "report"}[i%3],
			Queue: queue, Payload: fmt.Appendf(nil, `{"n":%d,"to":"user%d@example.com"}`, i, i), Attempt: 1, EnqueuedAt: now}
		msg := broker.Encode(task)
		d := amqp.Delivery{Headers: msg.Headers, ContentType: msg.ContentType, DeliveryMode: msg.DeliveryMode,
			MessageId: msg.MessageId, Timestamp: msg.Timestamp, Type: msg.Type, Body: msg.Body}
		cause := fmt.Errorf("dial tcp 10.0.%d.%d:5432: connection refused", i%200, i%250)
		if i%3 == 1 {
			cause = errors.New("card declined")
		}
		l, err := broker.EncodeDeadLetter(&d, broker.Failed{Task: task, Err: cause, At: now, Worker: "bench-host", FrameMax: conn.FrameMax()}, warren.ReasonPermanent)
		if err != nil {
			t.Fatal(err)
		}
		pd, err := pub.Publish(ctx, "", warren.DeadLetterQueue(queue), l.Msg)
		if err != nil {
			t.Fatal(err)
		}
		pend = append(pend, pd)
	}
	for _, pd := range pend {
		if err := pd.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAPIDeadListLarge lists a large dead-letter queue
// (WARREN_DASHBOARD_DEAD dead letters, default 5,000) and logs how long
// the first list (one pass to build the index) and the next ones (from
// the index) take. When a dead letter arrives, the list answers at once
// from the index marked stale, with the broker's new total, and then
// catches up.
func TestAPIDeadListLarge(t *testing.T) {
	n := 5000
	if s := os.Getenv("WARREN_DASHBOARD_DEAD"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, dashboard.Config{})
	e.ctx = testbroker.Context(t, 15*time.Minute)
	q := e.queue()
	t0 := time.Now()
	publishDeadLetters(t, e.ctx, e.conn, q, 0, n)
	t.Logf("published %d dead letters in %s", n, time.Since(t0).Round(time.Millisecond))
	base := "/api/v1/queues/" + q + "/dead-letters"
	type list struct {
		Total, Matched  int
		Stale, Indexing bool
		Items           []json.RawMessage
	}
	get := func(what, query string) (list, time.Duration) {
		t.Helper()
		t0 := time.Now()
		r := e.do("GET", base+query, nil)
		d := time.Since(t0)
		want(t, what, r, 200)
		var l list
		r.decode(t, &l)
		t.Logf("%-28s %8s  total %d matched %d stale %v indexing %v", what, d.Round(time.Millisecond), l.Total, l.Matched, l.Stale, l.Indexing)
		return l, d
	}
	t0 = time.Now()
	l, _ := get("first list", "")
	poll := time.NewTicker(time.Second) // a client asking again
	defer poll.Stop()
	for l.Indexing {
		if l.Total != n || l.Matched > n || !l.Stale {
			t.Fatalf("list while indexing: total %d matched %d stale %v", l.Total, l.Matched, l.Stale)
		}
		<-poll.C
		l, _ = get("list while indexing", "")
	}
	t.Logf("%-28s %8s", "index built after", time.Since(t0).Round(time.Millisecond))
	if l.Total != n || l.Matched != n || len(l.Items) != 50 || l.Stale {
		t.Fatalf("first list: total %d matched %d items %d stale %v", l.Total, l.Matched, len(l.Items), l.Stale)
	}
	get("second list", "?offset=1000&limit=100")
	l, _ = get("filtered list", "?type=card:charge&error=declined")
	if want := (n + 1) / 3; l.Matched != want {
		t.Errorf("filtered: matched %d, want %d", l.Matched, want)
	}
	t0 = time.Now()
	r := e.do("GET", "/api/v1/queues/"+q+"/dead-letter-groups?by=error", nil)
	t.Logf("%-28s %8s", "groups from the index", time.Since(t0).Round(time.Millisecond))
	want(t, "groups", r, 200)
	if !strings.Contains(string(r.body), `"key":"card declined"`) {
		t.Errorf("groups: %.300s", r.body)
	}

	publishDeadLetters(t, e.ctx, e.conn, q, n, 1)
	l, _ = get("list after one more (stale)", "")
	if l.Total != n+1 || !l.Stale || l.Matched != n {
		t.Errorf("after one more: total %d matched %d stale %v; want %d, %d, stale", l.Total, l.Matched, l.Stale, n+1, n)
	}
	t0 = time.Now()
	eventually(t, 10*time.Minute, "the index to catch up", func() bool {
		r := e.do("GET", base+"?limit=1", nil)
		var l list
		r.decode(t, &l)
		return !l.Stale && l.Matched == n+1
	})
	t.Logf("%-28s %8s", "caught up after", time.Since(t0).Round(time.Millisecond))
}
