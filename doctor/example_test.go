package doctor_test

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/warrenq/warren/doctor"
)

// HeaderBudget says how much room the negotiated frame_max leaves for a
// task's own headers once Warren's and the broker's are counted.
func ExampleHeaderBudget() {
	fmt.Println(doctor.HeaderBudget(131072) > 32<<10) // RabbitMQ's default frame_max
	fmt.Println(doctor.HeaderBudget(8192) < 0)        // too small for Warren's own metadata
	// Output:
	// true
	// true
}

// A Report prints as text for a terminal, or as JSON with stable field
// names for a program; Run fills one from a live broker.
func ExampleReport() {
	r := &doctor.Report{
		Broker:      "amqp://app:xxxxx@rabbit:5672/prod",
		Version:     "3.13.7",
		Rabbitmqctl: "node rabbit@rabbit",
		Checks: []doctor.Check{
			{Name: "consumer_timeout", Status: doctor.OK, Detail: "30m0s; handler timeout 5m0s"},
			{Name: "alarms", Status: doctor.Fail, Detail: "alarm on: memory on rabbit@rabbit; publishing is blocked",
				Fix: "free memory or disk on that node"},
		},
		OK: 1, Fail: 1,
	}
	_ = r.WriteText(os.Stdout)
	b, _ := json.Marshal(r.Checks[1])
	fmt.Println(string(b))
	fmt.Println("failed:", r.Failed())
	// Output:
	// broker amqp://app:xxxxx@rabbit:5672/prod (RabbitMQ 3.13.7); rabbitmqctl: node rabbit@rabbit
	// OK    consumer_timeout  30m0s; handler timeout 5m0s
	// FAIL  alarms            alarm on: memory on rabbit@rabbit; publishing is blocked
	//                         fix: free memory or disk on that node
	// 1 ok, 0 warn, 1 fail
	// {"name":"alarms","status":"FAIL","detail":"alarm on: memory on rabbit@rabbit; publishing is blocked","fix":"free memory or disk on that node"}
	// failed: true
}
