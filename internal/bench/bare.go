package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// RunBaseline runs the workload of o with bare amqp091-go, the way a
// careful user of the client would write it: one confirm-mode channel shared
// by the producers, each publishing persistent mandatory messages with
// deferred confirms and waiting for them; one consuming channel with the
// same prefetch, o.Concurrency goroutines ranging over its deliveries and
// acking each one. The queue is declared with the same arguments as a
// Warren queue. ModeRetry and ModeIdle have no baseline.
func RunBaseline(ctx context.Context, o Options) (Report, error) {
	if err := o.Validate(); err != nil {
		return Report{}, err
	}
	o = o.withDefaults()
	switch o.Mode {
	case ModeRetry, ModeIdle:
		return Report{}, fmt.Errorf("bench: mode %s has no baseline", o.Mode)
	}
	c, err := dialBare(o)
	if err != nil {
		return Report{}, err
	}
	defer c.close()
	return drive(ctx, o, c, "bare")
}

type bareClient struct {
	o        Options
	pub, sub *amqp.Connection
}

func dialBare(o Options) (*bareClient, error) {
	dial := func(role string) (*amqp.Connection, error) {
		props := amqp.NewConnectionProperties()
		props.SetClientConnectionName(fmt.Sprintf("warren bench bare %s (pid %d)", role, os.Getpid()))
		c, err := amqp.DialConfig(o.URL, amqp.Config{Heartbeat: 10 * time.Second, Locale: "en_US", Properties: props})
		if err != nil {
			return nil, fmt.Errorf("bench: bare: connect to %s: %w", broker.RedactURL(o.URL), err)
		}
		return c, nil
	}
	// Producers and consumers on their own connections, as Warren's are.
	pub, err := dial("producer")
	if err != nil {
		return nil, err
	}
	sub, err := dial("consumer")
	if err != nil {
		pub.Close()
		return nil, err
	}
	return &bareClient{o: o, pub: pub, sub: sub}, nil
}

func (c *bareClient) close() error {
	return errors.Join(c.pub.Close(), c.sub.Close())
}

func (c *bareClient) declare(_ context.Context, queue string) error {
	ch, err := c.pub.Channel()
	if err != nil {
		return fmt.Errorf("bench: bare: %w", err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(warren.DeadLetterQueue(queue), true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return fmt.Errorf("bench: bare: declare: %w", err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, broker.QueueArgs(queue, broker.QueueOptions{Type: c.o.QueueType})); err != nil {
		return fmt.Errorf("bench: bare: declare: %w", err)
	}
	return nil
}

func (c *bareClient) remove(_ context.Context, queue string) error {
	ch, err := c.pub.Channel()
	if err != nil {
		return fmt.Errorf("bench: bare: delete %s: %w", queue, err)
	}
	defer ch.Close()
	var errs []error
	for _, q := range []string{queue, warren.DeadLetterQueue(queue)} {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			errs = append(errs, fmt.Errorf("bench: bare: delete %s: %w", q, err))
		}
	}
	return errors.Join(errs...)
}

type barePublisher struct {
	ch    *amqp.Channel
	queue string
}

func (c *bareClient) publisher(_ context.Context, queue string) (publisher, error) {
	ch, err := c.pub.Channel()
	if err != nil {
		return nil, fmt.Errorf("bench: bare: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("bench: bare: confirm mode: %w", err)
	}
	return &barePublisher{ch: ch, queue: queue}, nil
}

func (p *barePublisher) publish(ctx context.Context, bodies [][]byte) error {
	var one [1]*amqp.DeferredConfirmation
	dcs := one[:0]
	if len(bodies) > 1 {
		dcs = make([]*amqp.DeferredConfirmation, 0, len(bodies))
	}
	for _, b := range bodies {
		dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, "", p.queue, true, false, amqp.Publishing{
			ContentType:  broker.DefaultContentType,
			DeliveryMode: amqp.Persistent,
			Body:         b,
		})
		if err != nil {
			return err
		}
		dcs = append(dcs, dc)
	}
	for _, dc := range dcs {
		ack, err := dc.WaitContext(ctx)
		if err != nil {
			return err
		}
		if !ack {
			return broker.ErrNacked
		}
	}
	return nil
}

func (p *barePublisher) close() error {
	if err := p.ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return err
	}
	return nil
}

func (c *bareClient) consume(_ context.Context, queue string, h func([]byte)) (func() error, <-chan error, error) {
	ch, err := c.sub.Channel()
	if err != nil {
		return nil, nil, fmt.Errorf("bench: bare: %w", err)
	}
	if err := ch.Qos(c.o.Prefetch, 0, false); err != nil {
		ch.Close()
		return nil, nil, fmt.Errorf("bench: bare: qos: %w", err)
	}
	msgs, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		ch.Close()
		return nil, nil, fmt.Errorf("bench: bare: consume: %w", err)
	}
	failed := make(chan error, 1)
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	var wg sync.WaitGroup
	for range c.o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range msgs {
				h(d.Body)
				if err := d.Ack(false); err != nil {
					select {
					case failed <- fmt.Errorf("bench: bare: ack: %w", err):
					default:
					}
					return
				}
			}
		}()
	}
	go func() {
		if e, ok := <-closed; ok && e != nil {
			select {
			case failed <- fmt.Errorf("bench: bare: channel closed: %w", e):
			default:
			}
		}
	}()
	stop := func() error {
		err := ch.Close()
		wg.Wait()
		if errors.Is(err, amqp.ErrClosed) {
			err = nil
		}
		return err
	}
	return stop, failed, nil
}

// Describe returns the environment of a run against the broker at url: the
// Go runtime, the machine, and the broker's product and version when it can
// be reached.
func Describe(url string) Environment {
	env := Environment{
		GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
		Time: time.Now().UTC().Format(time.RFC3339),
	}
	conn, err := amqp.DialConfig(cmp.Or(url, broker.DefaultURL), amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return env
	}
	defer conn.Close()
	env.BrokerProduct, _ = conn.Properties["product"].(string)
	env.BrokerVersion, _ = conn.Properties["version"].(string)
	return env
}
