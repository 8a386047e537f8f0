module github.com/warrenq/warren

go 1.26.0

require (
	github.com/eapache/go-resiliency v1.7.0
	github.com/google/uuid v1.6.0
	github.com/rabbitmq/amqp091-go v1.16.0
)
