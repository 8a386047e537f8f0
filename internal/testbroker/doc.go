// Package testbroker gives integration tests a real RabbitMQ: the URL,
// a connection named after the test, and queue names unique to each test
// that are deleted when it ends.
package testbroker
