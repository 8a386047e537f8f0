package admin

import (
	"fmt"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// Topology describes what broker.DeclareShared and broker.DeclareQueue
// declare for a set of queues: the shape of `warren topology declare
// --output json`, for any caller reporting it.
type Topology struct {
	// Exchanges: the delivery and unroutable exchanges, then the delay levels.
	Exchanges []string `json:"exchanges"`
	// Shared: the queues every Warren queue shares (the unroutable queue,
	// the delay levels).
	Shared []string `json:"shared_queues"`
	// Queues: one per queue named, never nil.
	Queues []TopologyQueue `json:"queues"`
}

// TopologyQueue is one Warren queue of a Topology.
type TopologyQueue struct {
	Name            string `json:"name"`
	DeadLetterQueue string `json:"dead_letter_queue"`
	Type            string `json:"type"`                     // "quorum" or "classic"
	DeliveryLimit   int    `json:"delivery_limit,omitempty"` // quorum queues only
}

// DescribeTopology returns the topology of queues declared with qo.
func DescribeTopology(queues []string, qo broker.QueueOptions) Topology {
	t := Topology{
		Exchanges: []string{broker.DeliveryExchange, broker.UnroutableExchange},
		Shared:    []string{broker.UnroutableQueue},
		Queues:    []TopologyQueue{},
	}
	for k := 0; k < broker.DelayLevels; k++ {
		t.Exchanges = append(t.Exchanges, broker.DelayExchange(k))
		t.Shared = append(t.Shared, broker.DelayExchange(k))
	}
	for _, q := range queues {
		tq := TopologyQueue{Name: q, DeadLetterQueue: warren.DeadLetterQueue(q), Type: string(qo.Type)}
		if qo.Type == broker.Quorum {
			tq.DeliveryLimit = qo.DeliveryLimit
		}
		t.Queues = append(t.Queues, tq)
	}
	return t
}

// Kind describes the queue's type in words: "classic", or "quorum,
// delivery limit N".
func (q TopologyQueue) Kind() string {
	if q.Type == string(broker.Quorum) {
		return fmt.Sprintf("%s, delivery limit %d", q.Type, q.DeliveryLimit)
	}
	return q.Type
}
