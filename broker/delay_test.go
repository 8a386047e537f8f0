package broker

import (
	"strings"
	"testing"
	"time"
)

// topicMatch implements RabbitMQ's topic matching (* one word, # zero or more).
func topicMatch(pattern, key string) bool {
	return match(strings.Split(pattern, "."), strings.Split(key, "."))
}

func match(p, k []string) bool {
	if len(p) == 0 {
		return len(k) == 0
	}
	switch p[0] {
	case "#":
		for i := 0; i <= len(k); i++ {
			if match(p[1:], k[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(k) > 0 && match(p[1:], k[1:])
	default:
		return len(k) > 0 && k[0] == p[0] && match(p[1:], k[1:])
	}
}

// simulate walks a routing key through the level bindings exactly as the
// broker would, and returns the total wait and the queue it reaches.
func simulate(t *testing.T, exchange, key string, queues []string) (time.Duration, string) {
	t.Helper()
	var wait time.Duration
	entry := -1
	for k := DelayLevels - 1; k >= 0; k-- {
		if exchange == DelayExchange(k) {
			entry = k
			break
		}
	}
	if entry < 0 {
		t.Fatalf("message enters at %s, not a delay level", exchange)
	}
	// The levels above the entry would only have passed it on: its bits
	// there must be 0.
	for k := DelayLevels - 1; k > entry; k-- {
		if !topicMatch(levelPattern(k, '0'), key) {
			t.Fatalf("key %s enters at level %d but has bit %d set", key, entry, k)
		}
	}
	for k := entry; k >= 0; k-- {
		if exchange != DelayExchange(k) {
			t.Fatalf("at level %d the message is in exchange %s", k, exchange)
		}
		in := topicMatch(levelPattern(k, '1'), key)
		on := topicMatch(levelPattern(k, '0'), key)
		if in == on {
			t.Fatalf("level %d: key %s matches queue=%v and next=%v: exactly one must match", k, key, in, on)
		}
		if in {
			wait += time.Duration(1<<k) * time.Second
		}
		if k > 0 {
			exchange = DelayExchange(k - 1)
		} else {
			exchange = DeliveryExchange
		}
	}
	var hit []string
	for _, q := range queues {
		if topicMatch(deliveryPattern(q), key) {
			hit = append(hit, q)
		}
	}
	if len(hit) != 1 {
		t.Fatalf("key %s reaches queues %v, want exactly one", key, hit)
	}
	return wait, hit[0]
}

func TestDelayRouteReachesTheRightQueueAfterTheRightWait(t *testing.T) {
	queues := []string{"emails", "a.emails", "emails.b", "x:y-z_1", "a.b.c"}
	delays := []time.Duration{
		time.Second, 1500 * time.Millisecond, 2 * time.Second, 3 * time.Second, 5 * time.Second,
		100 * time.Second, time.Hour, 24 * time.Hour, 7*24*time.Hour + 13*time.Second, MaxDelay,
	}
	for s := int64(1); s < 300; s += 7 {
		delays = append(delays, time.Duration(s)*time.Second)
	}
	for _, q := range queues {
		for _, d := range delays {
			ex, key, err := DelayRoute(q, d)
			if err != nil {
				t.Fatalf("DelayRoute(%s, %s): %v", q, d, err)
			}
			wait, got := simulate(t, ex, key, queues)
			if got != q {
				t.Errorf("delay %s to %s reached %s", d, q, got)
			}
			if want := time.Duration(DelaySeconds(d)) * time.Second; wait != want {
				t.Errorf("delay %s to %s waited %s, want %s", d, q, wait, want)
			}
			if diff := wait - d; diff > time.Second/2 || diff < -time.Second/2 {
				t.Errorf("delay %s rounds to %s: more than half a second off", d, wait)
			}
		}
	}
}

func TestDelayRouteShortAndInvalid(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second, 400 * time.Millisecond} {
		ex, key, err := DelayRoute("q", d)
		if err != nil || ex != "" || key != "q" {
			t.Errorf("DelayRoute(q, %s) = %q %q %v, want the default exchange straight to q", d, ex, key, err)
		}
	}
	if _, _, err := DelayRoute("q", MaxDelay+time.Second); err == nil {
		t.Error("a delay past MaxDelay was accepted")
	}
	ex, key, _ := DelayRoute("q", 5*time.Second)
	if ex != "warren.delay.2" || key != strings.Repeat("0.", 21)+"1.0.1.q" {
		t.Errorf("5s: %s %s", ex, key)
	}
}
