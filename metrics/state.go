package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/producer"
)

var (
	reconnectsDesc = prometheus.NewDesc("warren_reconnects_total",
		"Connections to the broker re-established after a loss.", nil, nil)
	connectedDesc = prometheus.NewDesc("warren_broker_connected",
		"1 while connected to the broker, 0 while down or reconnecting.", nil, nil)
	blockedDesc = prometheus.NewDesc("warren_broker_blocked",
		"1 while the broker blocks publishing (a memory or disk alarm).", nil, nil)
	breakerDesc = prometheus.NewDesc("warren_publish_breaker_state",
		"The producer's publish circuit breaker: 0 closed, 1 half-open, 2 open.", nil, nil)
)

// stateCollector reads connections and producers at scrape time.
type stateCollector struct {
	mu        sync.Mutex
	conns     []*broker.Conn
	producers []*producer.Producer
}

func (s *stateCollector) addConn(c *broker.Conn) { add(s, &s.conns, c) }

func (s *stateCollector) addProducer(p *producer.Producer) { add(s, &s.producers, p) }

// add appends v (unless nil) to the list under s's lock.
func add[T any](s *stateCollector, list *[]*T, v *T) {
	if v == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	*list = append(*list, v)
}

// Describe implements prometheus.Collector.
func (s *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- reconnectsDesc
	ch <- connectedDesc
	ch <- blockedDesc
	ch <- breakerDesc
}

// Collect implements prometheus.Collector.
func (s *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	conns := append([]*broker.Conn(nil), s.conns...)
	producers := append([]*producer.Producer(nil), s.producers...)
	s.mu.Unlock()
	if len(conns) > 0 {
		var reconnects uint64
		connected, blocked := 1.0, 0.0
		for _, c := range conns {
			reconnects += c.Reconnects()
			if !c.Connected() {
				connected = 0
			}
			if c.Blocked() != "" {
				blocked = 1
			}
		}
		ch <- prometheus.MustNewConstMetric(reconnectsDesc, prometheus.CounterValue, float64(reconnects))
		ch <- prometheus.MustNewConstMetric(connectedDesc, prometheus.GaugeValue, connected)
		ch <- prometheus.MustNewConstMetric(blockedDesc, prometheus.GaugeValue, blocked)
	}
	if len(producers) > 0 {
		worst := 0.0
		for _, p := range producers {
			worst = max(worst, BreakerValue(p.BreakerState()))
		}
		ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, worst)
	}
}

// BreakerValue maps producer.Producer.BreakerState to the value of
// warren_publish_breaker_state: 0 closed, 1 half-open, 2 open.
func BreakerValue(state string) float64 {
	switch state {
	case "open":
		return 2
	case "half-open":
		return 1
	default:
		return 0
	}
}
