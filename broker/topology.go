package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/internal/check"
)

// QueueType is the RabbitMQ queue type of a Warren queue.
type QueueType string

// Queue types.
const (
	Quorum  QueueType = "quorum"
	Classic QueueType = "classic"
)

// DefaultDeliveryLimit is the x-delivery-limit of a quorum Warren queue:
// how many times the broker redelivers a task whose worker died (or closed
// its channel) while holding it before it dead-letters it.
const DefaultDeliveryLimit = 20

// QueueOptions shape a Warren queue. The zero value is a quorum queue with
// the default delivery limit. Every producer and worker of a queue must
// declare it with the same options: the broker refuses a redeclaration with
// other arguments (ErrQueueMismatch).
type QueueOptions struct {
	// Type is Quorum ("" means Quorum) or Classic. Classic queues have no
	// delivery limit in RabbitMQ 3.10, so a task that crashes its worker
	// every time loops until an operator intervenes.
	Type QueueType
	// DeliveryLimit is the quorum queue's x-delivery-limit. 0 means
	// DefaultDeliveryLimit.
	DeliveryLimit int
}

func (o QueueOptions) withDefaults() QueueOptions {
	o.Type = cmp.Or(o.Type, Quorum)
	o.DeliveryLimit = cmp.Or(o.DeliveryLimit, DefaultDeliveryLimit)
	return o
}

// Validate reports every problem with o.
func (o QueueOptions) Validate() error {
	var errs []error
	if o.Type != "" && o.Type != Quorum && o.Type != Classic {
		errs = append(errs, fmt.Errorf("broker: queue type %q: want quorum or classic", o.Type))
	}
	errs = append(errs, check.NotNegative("broker: DeliveryLimit", o.DeliveryLimit))
	return errors.Join(errs...)
}

// QueueArgs returns the x-arguments of Warren queue name.
func QueueArgs(name string, o QueueOptions) amqp.Table {
	o = o.withDefaults()
	args := amqp.Table{
		"x-queue-type":              string(o.Type),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": warren.DeadLetterQueue(name),
	}
	if o.Type == Quorum {
		args["x-delivery-limit"] = int64(o.DeliveryLimit)
		args["x-dead-letter-strategy"] = "at-least-once"
		args["x-overflow"] = "reject-publish"
	}
	return args
}

// DeclareShared declares the delay levels, the delivery exchange and the
// unroutable exchange and queue shared by every Warren queue. It is
// idempotent.
func DeclareShared(ctx context.Context, c *Conn) error {
	return c.withChannel(ctx, "declare shared topology", func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare(UnroutableExchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
			return classify(err, OpDeclare, "declare exchange "+UnroutableExchange)
		}
		if _, err := ch.QueueDeclare(UnroutableQueue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
			return classify(err, OpDeclare, "declare queue "+UnroutableQueue)
		}
		if err := ch.QueueBind(UnroutableQueue, "", UnroutableExchange, false, nil); err != nil {
			return classify(err, OpBind, "bind "+UnroutableQueue)
		}
		if err := ch.ExchangeDeclare(DeliveryExchange, amqp.ExchangeTopic, true, false, false, false,
			amqp.Table{"alternate-exchange": UnroutableExchange}); err != nil {
			return classify(err, OpDeclare, "declare exchange "+DeliveryExchange)
		}
		for k := 0; k < DelayLevels; k++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			name, next := DelayExchange(k), DelayNext(k)
			if err := ch.ExchangeDeclare(name, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
				return classify(err, OpDeclare, "declare exchange "+name)
			}
			if _, err := ch.QueueDeclare(name, true, false, false, false, DelayQueueArgs(k)); err != nil {
				return classify(err, OpDeclare, "declare queue "+name)
			}
			if err := ch.QueueBind(name, levelPattern(k, '1'), name, false, nil); err != nil {
				return classify(err, OpBind, "bind "+name)
			}
			if err := ch.ExchangeBind(next, levelPattern(k, '0'), name, false, nil); err != nil {
				return classify(err, OpBind, "bind "+name+" to "+next)
			}
		}
		return nil
	})
}

// DeclareQueue declares Warren queue name with its dead-letter queue and
// its binding to the delivery exchange. DeclareShared must have run (it is
// enough once per broker). It is idempotent. A dead-letter queue
// (warren.IsDeadLetterQueue: a worker may consume one) is declared as its
// queue declares it, with its binding and without a dead-letter queue of
// its own; o does not apply to it.
func DeclareQueue(ctx context.Context, c *Conn, name string, o QueueOptions) error {
	if err := warren.ValidateQueueName(name); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	dlq := warren.DeadLetterQueue(name)
	return c.withChannel(ctx, "declare queue "+name, func(ch *amqp.Channel) error {
		if _, err := ch.QueueDeclare(dlq, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
			return mismatchHint(classify(err, OpDeclare, "declare queue "+dlq))
		}
		if dlq != name {
			if _, err := ch.QueueDeclare(name, true, false, false, false, QueueArgs(name, o)); err != nil {
				return mismatchHint(classify(err, OpDeclare, "declare queue "+name))
			}
		}
		if err := ch.QueueBind(name, deliveryPattern(name), DeliveryExchange, false, nil); err != nil {
			if errors.Is(classify(err, OpBind, ""), ErrQueueNotFound) {
				return fmt.Errorf("broker: bind %s: the shared topology is missing; run warren topology declare: %w", name, classify(err, OpBind, "bind"))
			}
			return classify(err, OpBind, "bind "+name)
		}
		return nil
	})
}

// Declare declares the shared topology and each of queues.
func Declare(ctx context.Context, c *Conn, o QueueOptions, queues ...string) error {
	if err := DeclareShared(ctx, c); err != nil {
		return err
	}
	for _, q := range queues {
		if err := DeclareQueue(ctx, c, q, o); err != nil {
			return err
		}
	}
	return nil
}

func mismatchHint(err error) error {
	if errors.Is(err, ErrQueueMismatch) && strings.Contains(err.Error(), "inequivalent arg") {
		return fmt.Errorf("%w (it was declared with other options: use the same queue type and delivery limit, or delete it first)", err)
	}
	return err
}

// DeclareOptions shape a queue that is not a Warren task queue: a replay
// journal, a dead-letter queue redeclared to check it, a lock. The zero
// value is a durable quorum queue with no other arguments, as DeclareQueue
// declares a dead-letter queue.
type DeclareOptions struct {
	// Exclusive declares a classic queue that belongs to the declaring
	// connection: not durable, auto-delete, refused to any other
	// connection (RESOURCE_LOCKED), and deleted by the broker when the
	// connection closes. false means the durable quorum queue.
	Exclusive bool
}

// DeclarePlain declares queue as o says. It is idempotent; a queue that
// exists with other arguments fails with ErrQueueMismatch.
func DeclarePlain(ctx context.Context, c *Conn, queue string, o DeclareOptions) error {
	return c.withChannel(ctx, "declare queue "+queue, func(ch *amqp.Channel) error {
		var err error
		if o.Exclusive {
			_, err = ch.QueueDeclare(queue, false, true, true, false, amqp.Table{"x-queue-type": string(Classic)})
		} else {
			_, err = ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": string(Quorum)})
		}
		if err != nil {
			return classify(err, OpDeclare, "declare queue "+queue)
		}
		return nil
	})
}

// DeleteOptions are the conditions of DeleteQueue. The zero value deletes
// the queue whatever it holds.
type DeleteOptions struct {
	// IfUnused deletes the queue only if it has no consumers.
	IfUnused bool
	// IfEmpty deletes the queue only if it holds no messages.
	IfEmpty bool
}

// DeleteQueue deletes queue and returns how many messages it held. A queue
// that does not exist is no error (RabbitMQ answers delete-ok with 0).
func DeleteQueue(ctx context.Context, c *Conn, queue string, o DeleteOptions) (int, error) {
	var n int
	err := c.withChannel(ctx, "delete queue "+queue, func(ch *amqp.Channel) error {
		var err error
		if n, err = ch.QueueDelete(queue, o.IfUnused, o.IfEmpty, false); err != nil {
			return classify(err, OpDelete, "delete queue "+queue)
		}
		return nil
	})
	return n, err
}

// QueueStats is what the broker reports for a queue over AMQP.
type QueueStats struct {
	Name      string
	Ready     int // messages ready for delivery
	Consumers int
}

// Inspect returns the stats of queue, or ErrQueueNotFound.
func Inspect(ctx context.Context, c *Conn, queue string) (QueueStats, error) {
	var st QueueStats
	err := c.withChannel(ctx, "inspect queue "+queue, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			return classify(err, OpInspect, "queue "+queue)
		}
		st = QueueStats{Name: q.Name, Ready: q.Messages, Consumers: q.Consumers}
		return nil
	})
	return st, err
}

// withChannel runs f on a fresh channel and closes it afterwards. A channel
// error closes the channel on the broker side, so each call gets its own.
func (c *Conn) withChannel(ctx context.Context, what string, f func(*amqp.Channel) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("broker: %s: %w", what, err)
	}
	ch, err := c.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	return f(ch)
}
