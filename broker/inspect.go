package broker

import (
	"context"
	"errors"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DelayNext returns where delay level k's queue dead-letters its expired
// messages: the level below, or DeliveryExchange for level 0.
func DelayNext(k int) string {
	if k == 0 {
		return DeliveryExchange
	}
	return DelayExchange(k - 1)
}

// DelayQueueArgs returns the x-arguments of delay level k's queue, as
// DeclareShared declares them.
func DelayQueueArgs(k int) amqp.Table {
	return amqp.Table{
		"x-queue-type":           "quorum",
		"x-message-ttl":          int64(1000) << k,
		"x-dead-letter-exchange": DelayNext(k),
		"x-dead-letter-strategy": "at-least-once",
		"x-overflow":             "reject-publish",
	}
}

// DelayBindingKeys returns the binding keys of delay level k, as
// DeclareShared binds them: toQueue binds level k's queue to its own
// exchange (the level's bit is 1), toNext binds DelayNext(k) to level k's
// exchange (the bit is 0).
func DelayBindingKeys(k int) (toQueue, toNext string) {
	return levelPattern(k, '1'), levelPattern(k, '0')
}

// DeliveryBindingKey returns the binding key of Warren queue on
// DeliveryExchange, as DeclareQueue binds it.
func DeliveryBindingKey(queue string) string { return deliveryPattern(queue) }

// ExchangeExists reports whether exchange exists, with a passive declare.
func ExchangeExists(ctx context.Context, c *Conn, exchange string) (bool, error) {
	exists := true
	err := c.withChannel(ctx, "inspect exchange "+exchange, func(ch *amqp.Channel) error {
		err := ch.ExchangeDeclarePassive(exchange, amqp.ExchangeTopic, true, false, false, false, nil)
		if err == nil {
			return nil
		}
		if err = classify(err, OpInspect, "exchange "+exchange); errors.Is(err, ErrQueueNotFound) { // NOT_FOUND
			exists = false
			return nil
		}
		return err
	})
	return exists, err
}
