package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/worker"
)

// Task types the agents use.
const (
	TypeJob    = "job"    // completes after a short random sleep
	TypeFlaky  = "flaky"  // fails its first attempt (a broker-delayed retry), then completes
	TypePoison = "poison" // SIGKILLs the worker that runs it, every time
)

// Payload is the body of every chaos job.
type Payload struct {
	Key string `json:"key"`
}

// ProducerConfig drives the producer role.
type ProducerConfig struct {
	URL    string // one URL or a comma-separated list
	Queue  string
	Prefix string // keys are Prefix-000000, Prefix-000001, ... and Prefix-poison-N
	Jobs   int    // healthy jobs
	Poison int    // poison jobs, spread evenly among the healthy ones
	// PoisonPhase places the poison jobs: the j-th (from 0) comes after
	// (j+PoisonPhase)/Poison of the healthy jobs. 0 means 0.5.
	PoisonPhase float64
	// FlakyEvery makes every n-th healthy job a flaky one (0: none).
	FlakyEvery int
	// Rate is jobs per second over all in-flight enqueues; 0 means no pacing.
	Rate float64
	// InFlight is how many enqueues run at once. 0 means 8.
	InFlight int
	// DeliveryLimit declares the queue's x-delivery-limit.
	DeliveryLimit int
	// EnqueueTimeout bounds one Enqueue call. 0 means 30s.
	EnqueueTimeout time.Duration
	// GiveUpAfter is how long one job is tried before it is written off
	// (EvGaveUp). 0 means 3 minutes.
	GiveUpAfter time.Duration
	Ledger      string
	Logger      *slog.Logger
}

// WorkerConfig drives the worker role.
type WorkerConfig struct {
	URL           string
	Queue         string
	Concurrency   int
	Prefetch      int
	DeliveryLimit int
	// MinSleep and MaxSleep bound a job's handler time.
	MinSleep, MaxSleep time.Duration
	// ShutdownTimeout is the pool's drain bound after SIGTERM.
	ShutdownTimeout time.Duration
	Ledger          string
	Logger          *slog.Logger
}

// dialLoop dials until it succeeds or ctx ends: an agent may be started
// while its only broker is down.
func dialLoop(ctx context.Context, url, name string, log *slog.Logger, led *LedgerWriter) (*broker.Conn, error) {
	for {
		c, err := broker.Dial(ctx, url, broker.Config{Name: name, DialRetries: -1, Logger: log})
		if err == nil {
			c.OnReconnect(func(context.Context, *broker.Conn) error {
				_ = led.Write(EvReconnect, "", "")
				return nil
			})
			return c, nil
		}
		log.Warn("chaos: dial failed; trying again", "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("chaos: dial: %w", err)
		case <-time.After(time.Duration(250+rand.IntN(500)) * time.Millisecond):
		}
	}
}

// RunProducer enqueues cfg.Jobs jobs and cfg.Poison poison jobs and writes
// EvConfirmed for each job only after Enqueue returned nil. A failed
// enqueue is tried again with the same task ID until GiveUpAfter. It
// returns nil once every job is confirmed or given up, or when ctx ends.
func RunProducer(ctx context.Context, cfg ProducerConfig) error {
	cfg.InFlight = max(cfg.InFlight, 0)
	if cfg.InFlight == 0 {
		cfg.InFlight = 8
	}
	if cfg.EnqueueTimeout == 0 {
		cfg.EnqueueTimeout = 30 * time.Second
	}
	if cfg.GiveUpAfter == 0 {
		cfg.GiveUpAfter = 3 * time.Minute
	}
	log := cfg.Logger
	led, err := OpenLedger(cfg.Ledger)
	if err != nil {
		return err
	}
	defer led.Close()
	conn, err := dialLoop(ctx, cfg.URL, fmt.Sprintf("chaos producer %s (pid %d)", cfg.Prefix, os.Getpid()), log, led)
	if err != nil {
		return err
	}
	defer conn.Close()
	qopts := broker.QueueOptions{DeliveryLimit: cfg.DeliveryLimit}
	var p *producer.Producer
	for {
		p, err = producer.New(ctx, conn, producer.Config{Queues: []string{cfg.Queue}, QueueOptions: qopts, Logger: log})
		if err == nil {
			break
		}
		// The connection may have dropped during the declarations.
		log.Warn("chaos: producer.New failed; trying again", "err", err)
		if werr := conn.Await(ctx); werr != nil {
			return fmt.Errorf("chaos: %w (after %w)", werr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	_ = led.Write(EvUp, "", "producer")

	total := cfg.Jobs + cfg.Poison
	type item struct{ key, typ string }
	items := make([]item, 0, total)
	poisonAt := map[int]bool{}
	phase := cfg.PoisonPhase
	if phase <= 0 || phase >= 1 {
		phase = 0.5
	}
	for j := 0; j < cfg.Poison; j++ {
		poisonAt[int((float64(j)+phase)*float64(cfg.Jobs)/float64(cfg.Poison))] = true
	}
	pn := 0
	for i := 0; i < cfg.Jobs; i++ {
		if poisonAt[i] {
			items = append(items, item{fmt.Sprintf("%s-poison-%d", cfg.Prefix, pn), TypePoison})
			pn++
			delete(poisonAt, i)
		}
		typ := TypeJob
		if cfg.FlakyEvery > 0 && i%cfg.FlakyEvery == cfg.FlakyEvery-1 {
			typ = TypeFlaky
		}
		items = append(items, item{fmt.Sprintf("%s-%06d", cfg.Prefix, i), typ})
	}
	for ; pn < cfg.Poison; pn++ {
		items = append(items, item{fmt.Sprintf("%s-poison-%d", cfg.Prefix, pn), TypePoison})
	}

	work := make(chan item)
	var wg sync.WaitGroup
	var confirmed, gaveUp, errs int64
	var cmu sync.Mutex
	for range cfg.InFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				ok, nerr := enqueueOne(ctx, p, cfg, led, log, it.key, it.typ)
				cmu.Lock()
				errs += int64(nerr)
				if ok {
					confirmed++
				} else {
					gaveUp++
				}
				cmu.Unlock()
			}
		}()
	}
	start := time.Now()
feed:
	for i, it := range items {
		if cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					break feed
				case <-time.After(d):
				}
			}
		}
		select {
		case work <- it:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = p.Close(closeCtx)
	_ = led.Write(EvExit, "", fmt.Sprintf("confirmed=%d gaveup=%d enqerr=%d republished=%d reconnects=%d",
		confirmed, gaveUp, errs, p.Republished(), conn.Reconnects()))
	log.Info("chaos: producer done", "confirmed", confirmed, "gave_up", gaveUp, "republished", p.Republished())
	return ctx.Err()
}

// enqueueOne enqueues one job until it is confirmed or given up, and
// reports whether it was confirmed and how many attempts failed.
func enqueueOne(ctx context.Context, p *producer.Producer, cfg ProducerConfig, led *LedgerWriter, log *slog.Logger, key, typ string) (bool, int) {
	body, _ := json.Marshal(Payload{Key: key})
	first := time.Now()
	fails := 0
	backoff := retry.Policy{Base: 100 * time.Millisecond, Cap: 2 * time.Second, Min: 100 * time.Millisecond}
	for {
		ectx, cancel := context.WithTimeout(ctx, cfg.EnqueueTimeout)
		id, err := p.Enqueue(ectx, cfg.Queue, typ, body, producer.WithID(key))
		cancel()
		if err == nil {
			_ = led.Write(EvConfirmed, key, id)
			return true, fails
		}
		fails++
		_ = led.Write(EvEnqErr, key, err.Error())
		log.Warn("chaos: enqueue failed; trying again", "key", key, "err", err)
		if ctx.Err() != nil || time.Since(first) > cfg.GiveUpAfter {
			_ = led.Write(EvGaveUp, key, "")
			return false, fails
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff.Backoff(fails)):
		}
	}
}

// RunWorker runs a worker.Pool on cfg.Queue until ctx ends (SIGTERM), then
// drains. The job handler writes EvStart, sleeps, writes EvDone and
// returns nil; the poison handler writes EvPoison and SIGKILLs its own
// process.
func RunWorker(ctx context.Context, cfg WorkerConfig) error {
	log := cfg.Logger
	led, err := OpenLedger(cfg.Ledger)
	if err != nil {
		return err
	}
	defer led.Close()
	conn, err := dialLoop(ctx, cfg.URL, fmt.Sprintf("chaos worker (pid %d)", os.Getpid()), log, led)
	if err != nil {
		return err
	}
	defer conn.Close()

	mux := worker.NewMux()
	job := func(ctx context.Context, t *warren.Task) error {
		var p Payload
		if err := json.Unmarshal(t.Payload, &p); err != nil || p.Key == "" {
			return fmt.Errorf("chaos: bad payload %q: %v", t.Payload, err)
		}
		_ = led.Write(EvStart, p.Key, "dc="+strconv.Itoa(t.DeliveryCount)+" redelivered="+strconv.FormatBool(t.Redelivered)+
			" attempt="+strconv.Itoa(t.Attempt))
		if t.Type == TypeFlaky && t.Attempt == 1 {
			_ = led.Write(EvFail, p.Key, "first attempt fails")
			return errors.New("chaos: flaky job fails its first attempt")
		}
		d := cfg.MinSleep
		if cfg.MaxSleep > cfg.MinSleep {
			d += rand.N(cfg.MaxSleep - cfg.MinSleep)
		}
		select {
		case <-ctx.Done():
			_ = led.Write(EvAbort, p.Key, context.Cause(ctx).Error())
			return context.Cause(ctx)
		case <-time.After(d):
		}
		return led.Write(EvDone, p.Key, "")
	}
	mux.HandleFunc(TypeJob, job)
	mux.HandleFunc(TypeFlaky, job)
	mux.HandleFunc(TypePoison, func(ctx context.Context, t *warren.Task) error {
		var p Payload
		_ = json.Unmarshal(t.Payload, &p)
		_ = led.Write(EvPoison, p.Key, "dc="+strconv.Itoa(t.DeliveryCount))
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the kill lands at once
	})
	wcfg := worker.Config{
		Queues:          []string{cfg.Queue},
		Concurrency:     cfg.Concurrency,
		Prefetch:        cfg.Prefetch,
		ShutdownTimeout: cfg.ShutdownTimeout,
		QueueOptions:    broker.QueueOptions{DeliveryLimit: cfg.DeliveryLimit},
		// Flaky jobs retry after a broker delay of a second or two.
		Retry:  retry.Policy{MaxAttempts: 5, Base: 2 * time.Second, Cap: 2 * time.Second},
		Logger: log,
	}
	up := false
	for {
		pool, err := worker.New(conn, mux, wcfg)
		if err != nil {
			return err
		}
		if !up {
			_ = led.Write(EvUp, "", "worker")
			up = true
		}
		err = pool.Run(ctx)
		st := pool.Stats()
		stats := fmt.Sprintf("started=%d succeeded=%d redelivered=%d voided=%d requeued=%d dead=%d reconnects=%d",
			st.Started, st.Succeeded, st.Redelivered, st.Voided, st.Requeued, st.DeadLettered, st.Reconnects)
		if ctx.Err() != nil {
			_ = led.Write(EvExit, "", stats)
			return err
		}
		// Run could not start (the connection dropped while it declared the
		// topology) or lost its connection for good: note it, start again.
		_ = led.Write(EvRunErr, "", fmt.Sprintf("%v; %s", err, stats))
		log.Error("chaos: Pool.Run returned; starting a new pool", "err", err)
		if werr := conn.Await(ctx); werr != nil {
			if errors.Is(werr, broker.ErrClosed) {
				return fmt.Errorf("chaos: connection closed for good: %w", werr)
			}
			_ = led.Write(EvExit, "", stats)
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
