package admin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/fleet"
	"github.com/warrenq/warren/internal/rabbitmqctl"
)

// rabbitmqctlTimeout bounds the optional rabbitmqctl call of Queues.
const rabbitmqctlTimeout = 5 * time.Second

// QueueInfo is what Queues reports for one Warren queue.
type QueueInfo struct {
	// Name is the Warren queue.
	Name string
	// Ready counts the tasks waiting in the queue, Consumers its consumers.
	Ready, Consumers int
	// Unacked counts the tasks delivered to workers and not yet acked; -1
	// when unknown. AMQP cannot tell: Queues asks rabbitmqctl when the
	// broker is the local node (see Queues).
	Unacked int
	// DeadLetters counts the messages in the queue's dead-letter queue.
	DeadLetters int
	// Delayed counts every message waiting in the delay levels
	// (warren.delay.*). All queues share the levels, so it is the same
	// figure for each queue: tasks waiting to be retried or delivered later.
	// It counts the levels' ready messages, so it leaves out DelayedHeld.
	Delayed int
	// DelayedHeld counts the messages the delay levels have passed on
	// but that their queue has not confirmed yet: RabbitMQ 3.10's
	// at-least-once dead-letter worker holds them (while the node of the
	// queue's leader is down, for instance) and tries again every
	// dead_letter_worker_publisher_confirm_timeout (docs/reliability.md,
	// section 7). Shared by all queues, like Delayed; -1 when unknown, as
	// Unacked.
	DelayedHeld int
	// Exists is false if the queue does not exist; the counts are 0 then.
	Exists bool
	// Paused is true while the queue is paused (fleet.Pause): workers take
	// none of its tasks.
	Paused bool
}

// Queues reports, for each Warren queue named, its depth, consumers, dead
// letters, whether it is paused, and the tasks waiting in the shared delay
// levels. A queue that
// does not exist is reported with Exists false, not as an error.
//
// The counts come from passive declares, so they are what the broker calls
// ready messages. Unacked and DelayedHeld are -1 unless the connection goes
// to the local node's default listener (localhost, 127.0.0.1 or ::1, port
// 5672) and `rabbitmqctl list_queues` runs there within 5s; any failure to
// run it just leaves -1.
func (a *Inspector) Queues(ctx context.Context, names []string) ([]QueueInfo, error) {
	out := make([]QueueInfo, 0, len(names))
	for _, name := range names {
		if err := checkQueue(name); err != nil {
			return nil, err
		}
	}
	if len(names) == 0 {
		return out, nil
	}
	delayed, err := a.delayed(ctx)
	if err != nil {
		return nil, err
	}
	var counts map[string]queueCounts
	if vhost, ok := localVhost(a.conn.URL()); ok && a.counts != nil {
		if counts, err = a.counts(ctx, vhost); err != nil {
			a.log.Debug("admin: rabbitmqctl unavailable; unacked counts unknown", "err", err)
			counts = nil
		}
	}
	held := -1
	if counts != nil {
		held = 0
		for k := range broker.DelayLevels {
			c := counts[broker.DelayExchange(k)]
			held += max(0, c.Messages-c.Ready-c.Unacked)
		}
	}
	for _, name := range names {
		info := QueueInfo{Name: name, Unacked: -1, Delayed: delayed, DelayedHeld: held}
		st, err := broker.Inspect(ctx, a.conn, name)
		switch {
		case errors.Is(err, broker.ErrQueueNotFound):
		case err != nil:
			return nil, fmt.Errorf("admin: %w", err)
		default:
			info.Exists = true
			info.Ready, info.Consumers = st.Ready, st.Consumers
			if c, ok := counts[name]; ok {
				info.Unacked = c.Unacked
			}
		}
		if info.Paused, err = fleet.Paused(ctx, a.conn, name); err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
		dl, err := broker.Inspect(ctx, a.conn, warren.DeadLetterQueue(name))
		switch {
		case errors.Is(err, broker.ErrQueueNotFound):
		case err != nil:
			return nil, fmt.Errorf("admin: %w", err)
		default:
			info.DeadLetters = dl.Ready
		}
		out = append(out, info)
	}
	return out, nil
}

// delayed sums the messages ready in the delay levels, skipping missing ones.
func (a *Inspector) delayed(ctx context.Context) (int, error) {
	total := 0
	for k := range broker.DelayLevels {
		st, err := broker.Inspect(ctx, a.conn, broker.DelayExchange(k))
		if errors.Is(err, broker.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("admin: %w", err)
		}
		total += st.Ready
	}
	return total, nil
}

// localVhost returns the vhost of a broker URL that points at the local
// node's default listener, the node a bare rabbitmqctl talks to.
func localVhost(rawURL string) (string, bool) { return rabbitmqctl.LocalVhost(rawURL) }

// queueCounts is what rabbitmqctl list_queues reports for one queue.
type queueCounts struct {
	Messages, Ready, Unacked int
}

// rabbitmqctlCounts asks rabbitmqctl for messages, messages_ready and
// messages_unacknowledged of each queue of vhost.
func rabbitmqctlCounts(ctx context.Context, vhost string) (map[string]queueCounts, error) {
	out, err := rabbitmqctl.Runner{Timeout: rabbitmqctlTimeout}.Run(ctx, "list_queues", "-p", vhost,
		"name", "messages", "messages_ready", "messages_unacknowledged", "--no-table-headers")
	if err != nil {
		return nil, err
	}
	return parseListQueues(out)
}

// parseListQueues reads "name<TAB>messages<TAB>ready<TAB>unacked" lines.
// Queue names of Warren hold no white space; other lines are skipped. It
// fails if nothing parses from non-empty output, which is then not what
// was asked for.
func parseListQueues(out []byte) (map[string]queueCounts, error) {
	m := make(map[string]queueCounts)
	bad := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 4 {
			bad++
			continue
		}
		var n [3]int
		ok := true
		for i, f := range fields[1:] {
			v, err := strconv.Atoi(f)
			if err != nil || v < 0 {
				ok = false
				break
			}
			n[i] = v
		}
		if !ok {
			bad++
			continue
		}
		m[fields[0]] = queueCounts{Messages: n[0], Ready: n[1], Unacked: n[2]}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(m) == 0 && bad > 0 {
		return nil, fmt.Errorf("rabbitmqctl list_queues: unexpected output (%d lines unreadable)", bad)
	}
	return m, nil
}
