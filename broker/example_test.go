package broker_test

import (
	"fmt"
	"time"

	"github.com/warrenq/warren/broker"
)

// A delayed task enters the highest delay level's exchange with a routing
// key that spells the delay in seconds as 24 binary digits, most
// significant first, followed by the destination queue. 5 s is 101 in
// binary: the task waits 4 s in warren.delay.2 and 1 s in warren.delay.0.
func ExampleDelayRoute() {
	exchange, key, err := broker.DelayRoute("emails", 5*time.Second)
	if err != nil {
		panic(err)
	}
	fmt.Println(exchange)
	fmt.Println(key)

	// A delay that rounds to 0 s goes straight to the queue through the
	// default exchange.
	exchange, key, _ = broker.DelayRoute("emails", 400*time.Millisecond)
	fmt.Printf("%q %q\n", exchange, key)
	// Output:
	// warren.delay.2
	// 0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.1.emails
	// "" "emails"
}

// QueueArgs are the x-arguments every producer and worker declares a
// Warren queue with; a queue declared with other arguments is refused.
func ExampleQueueArgs() {
	fmt.Println(broker.QueueArgs("emails", broker.QueueOptions{}))
	// Output:
	// map[x-dead-letter-exchange: x-dead-letter-routing-key:emails.dlq x-dead-letter-strategy:at-least-once x-delivery-limit:20 x-overflow:reject-publish x-queue-type:quorum]
}
