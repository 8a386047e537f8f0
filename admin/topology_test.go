package admin

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/warrenq/warren/broker"
)

func TestDescribeTopology(t *testing.T) {
	top := DescribeTopology([]string{"a", "b"}, broker.QueueOptions{Type: broker.Quorum, DeliveryLimit: 5})
	if len(top.Exchanges) != 2+broker.DelayLevels || len(top.Shared) != 1+broker.DelayLevels || len(top.Queues) != 2 {
		t.Fatalf("%+v", top)
	}
	if q := top.Queues[1]; q.Name != "b" || q.DeadLetterQueue != "b.dlq" || q.Kind() != "quorum, delivery limit 5" {
		t.Errorf("queue %+v, kind %q", q, q.Kind())
	}
	b, err := json.Marshal(DescribeTopology(nil, broker.QueueOptions{Type: broker.Classic, DeliveryLimit: 5}))
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); !strings.HasPrefix(s, `{"exchanges":["`+broker.DeliveryExchange) || !strings.HasSuffix(s, `"queues":[]}`) {
		t.Errorf("JSON %s", s)
	}
	if k := (TopologyQueue{Type: "classic", DeliveryLimit: 5}).Kind(); k != "classic" {
		t.Errorf("classic kind %q", k)
	}
}
