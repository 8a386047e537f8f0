package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
	"github.com/warrenq/warren/internal/testnode"
)

// Faults the schedule injects.
const (
	FaultKillWorker   = "kill-worker"                    // SIGKILL a worker while it runs jobs
	FaultTermWorker   = "term-worker"                    // SIGTERM a worker: it must drain and exit 0
	FaultCloseConns   = "close-connections"              // rabbitmqctl close_all_connections on every node
	FaultKillNode     = "kill-node"                      // SIGKILL a node (the queue's leader in a cluster), restart it
	FaultStopNode     = "stop-node"                      // cluster: stop_app the leader for a while, then start_app
	FaultMixedConns   = "kill-worker+close-connections"  // both at once
	FaultMixedNode    = "kill-node+kill-worker"          // a worker killed while the node is down
	FaultMixedLeader  = "kill-node+close-connections"    // cluster: leader killed, the survivors drop every client
	FaultStopMajority = "stop-majority"                  // cluster: stop_app two of three nodes for a while
	FaultPoison       = "poison (producers, throughout)" // not scheduled: producers enqueue poison jobs

	// Partitions (Scenario.Partitions: each node in a network namespace of its own).
	FaultPartitionLeader   = "partition-leader"   // cut the leader's link: it is alone, with the clients on its side
	FaultPartitionFollower = "partition-follower" // cut a follower's link: a 1 | 2 split that keeps the leader in the majority
	FaultFlapLink          = "flap-link"          // the leader's link goes down and up, slow and lossy while up
	FaultFreezeNode        = "freeze-node"        // SIGSTOP the leader's VM for Hold (> net_ticktime), then SIGCONT
)

// Scenario describes one run of the suite against one broker setup.
type Scenario struct {
	Name          string // "single" or "cluster"; also the queue and node name tag
	Nodes         int
	Producers     int
	Workers       int
	Concurrency   int // handlers per worker
	Prefetch      int // per worker
	DeliveryLimit int
	Jobs          int // healthy jobs over all producers
	Poison        int // poison jobs per producer
	FlakyEvery    int // every n-th job fails its first attempt and is retried through a delay queue
	// Duration is how long producers take to enqueue their jobs and how
	// long the fault schedule runs (at least one full cycle of Faults).
	Duration           time.Duration
	Faults             []string // one cycle, in order
	MinSleep, MaxSleep time.Duration
	// Hold is how long a stopped or killed cluster node stays down.
	Hold time.Duration
	// Gap is the pause between two faults.
	Gap time.Duration
	// Settle bounds the wait, after the producers finish, for every job
	// to be completed or dead-lettered.
	Settle time.Duration
	// Partitions puts each node in a network namespace of its own (Net,
	// root only) with cluster_partition_handling = PartitionHandling, and
	// spreads the agents over the namespaces: producer i and worker slot i
	// run next to node (i-1)%Nodes+1, so that a cut link leaves clients on
	// both sides.
	Partitions bool
}

// Env is what a scenario runs with.
type Env struct {
	AgentBin string // the chaos-agent binary
	Dir      string // this scenario's directory (nodes, ledgers, logs)
	Logf     func(format string, args ...any)
}

// Result is the outcome of one scenario.
type Result struct {
	Scenario  Scenario
	Tally     Tally
	Faults    []FaultResult
	Problems  []string // failures besides the tally's (unexpected exits, stalls, races)
	Notes     []string
	NodeStart time.Duration
	Wall      time.Duration
}

// Failures lists everything that fails the run.
func (r *Result) Failures() []string {
	return append(append([]string(nil), r.Problems...), r.Tally.Failures()...)
}

// Print writes the scenario's ledger and fault table.
func (r *Result) Print(w io.Writer) {
	sc := r.Scenario
	prefetch := strconv.Itoa(sc.Prefetch)
	if sc.Prefetch == 0 {
		prefetch = "the pool's default"
	}
	fmt.Fprintf(w, "== scenario %s: %d node(s), %d producers, %d workers x %d handlers (prefetch %s), delivery limit %d, %d jobs over %s; wall %s (nodes up in %s)\n",
		sc.Name, sc.Nodes, sc.Producers, sc.Workers, sc.Concurrency, prefetch, sc.DeliveryLimit, sc.Jobs, sc.Duration,
		r.Wall.Round(time.Second), r.NodeStart.Round(100*time.Millisecond))
	r.Tally.Print(w, "  ")
	fmt.Fprintln(w, "  faults (time since start, target, recovery):")
	PrintFaults(w, r.Faults, "  ")
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	for _, p := range r.Failures() {
		fmt.Fprintf(w, "  FAIL: %s\n", p)
	}
}

type slot struct {
	n      int
	inc    int
	cur    *Agent
	agents []*Agent // every incarnation, in order
	exits  []Exit
}

type runner struct {
	sc    Scenario
	env   Env
	nodes *testnode.Cluster
	net   *Net // nil unless Scenario.Partitions
	idx   *Index
	mon   *broker.Conn
	start time.Time
	// traffic is when the producers started: the schedule runs Duration from it.
	traffic time.Time
	urls    string
	queue   string

	mu        sync.Mutex
	slots     []*slot
	producers []*Agent
	problems  []string
	notes     []string
	stopping  bool
	down      int // cluster nodes held down right now
	all       []*Agent
	sup       sync.WaitGroup
}

func (r *runner) logf(format string, args ...any) {
	r.env.Logf("[%s +%5.1fs] %s", r.sc.Name, time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *runner) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.logf("PROBLEM: %s", msg)
	r.mu.Lock()
	r.problems = append(r.problems, msg)
	r.mu.Unlock()
}

func (r *runner) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.logf("note: %s", msg)
	r.mu.Lock()
	r.notes = append(r.notes, msg)
	r.mu.Unlock()
}

// Run runs the scenario: it starts the nodes and agents, injects the
// faults, settles, stops everything and computes the ledger. An error
// means the suite could not run (a node did not start); a run that found
// lost jobs returns a Result whose Failures are not empty.
func Run(ctx context.Context, sc Scenario, env Env) (*Result, error) {
	r := &runner{sc: sc, env: env, start: time.Now(), queue: "chaos-" + sc.Name, idx: NewIndex(env.Dir)}
	res := &Result{Scenario: sc}
	defer func() { res.Wall = time.Since(r.start) }()

	if sc.Partitions {
		nw, err := NewNet(ctx, sc.Nodes, r.logf)
		if err != nil {
			return nil, err
		}
		defer nw.Close() // after nodes.Close, deferred below
		r.net = nw
	}
	nodes, err := newCluster(env.Dir, sc, r.net, r.logf)
	if err != nil {
		return nil, err
	}
	r.nodes = nodes
	defer nodes.Close()
	t0 := time.Now()
	if err := nodes.Start(ctx); err != nil {
		return nil, err
	}
	res.NodeStart = time.Since(t0)
	r.urls = nodes.URLs()

	mon, err := broker.Dial(ctx, r.urls, broker.Config{Name: "chaos monitor", Logger: slog.New(slog.DiscardHandler), ReconnectMax: time.Second})
	if err != nil {
		return nil, fmt.Errorf("chaos: monitor connection: %w", err)
	}
	r.mon = mon
	defer mon.Close()

	// Workers first, so that the first jobs find consumers.
	r.slots = make([]*slot, sc.Workers)
	for i := range r.slots {
		r.slots[i] = &slot{n: i + 1}
		if err := r.startWorker(r.slots[i]); err != nil {
			return nil, err
		}
	}
	for _, s := range r.slots {
		r.sup.Add(1)
		go r.supervise(ctx, s)
	}
	defer r.stopAll()
	if err := r.waitFor(ctx, 60*time.Second, "workers up", r.workersUp); err != nil {
		return nil, err
	}
	per := sc.Jobs / sc.Producers
	rate := float64(per) / sc.Duration.Seconds()
	for i := 1; i <= sc.Producers; i++ {
		jobs := per
		if i == sc.Producers {
			jobs = sc.Jobs - per*(sc.Producers-1)
		}
		name := fmt.Sprintf("producer%d", i)
		a, err := startAgent(r.placeAgent(i), env.AgentBin, env.Dir, "producer", name, []string{
			"--url", r.urls, "--queue", r.queue, "--delivery-limit", strconv.Itoa(sc.DeliveryLimit),
			"--prefix", sc.Name + "p" + strconv.Itoa(i), "--jobs", strconv.Itoa(jobs), "--poison", strconv.Itoa(sc.Poison),
			"--flaky-every", strconv.Itoa(sc.FlakyEvery),
			// Producers' poison jobs come at different points, not together.
			"--poison-phase", strconv.FormatFloat(float64(i)/float64(sc.Producers+1), 'f', 3, 64),
			"--rate", strconv.FormatFloat(rate, 'f', 3, 64), "--lifetime", (sc.Duration + sc.Settle + 10*time.Minute).String(),
		})
		if err != nil {
			return nil, err
		}
		a.Side = r.side(i)
		r.mu.Lock()
		r.producers = append(r.producers, a)
		r.all = append(r.all, a)
		r.mu.Unlock()
	}
	r.traffic = time.Now()
	r.logf("started %d producers (%.1f jobs/s each) and %d workers on %s", sc.Producers, rate, sc.Workers, r.urls)

	if err := r.waitFor(ctx, 60*time.Second, "first jobs completed", func() bool { _, done := r.idx.Counts(); return done > 0 }); err != nil {
		r.problem("%v", err)
	}
	r.schedule(ctx, res)

	// Producers finish their jobs (paced over Duration, plus retries).
	for _, p := range r.producers {
		if err := r.waitFor(ctx, sc.Settle+time.Minute, p.Name+" finished", func() bool { return !p.Running() }); err != nil {
			r.problem("%v", err)
			continue
		}
		if e := p.exit(); !e.Expected {
			r.problem("%s", e.Desc)
		}
	}
	r.settle(ctx)
	r.stopAll()

	dead, queued, err := r.drain(ctx)
	if err != nil {
		r.problem("drain the queues: %v", err)
	}
	if err := r.idx.Refresh(); err != nil {
		r.problem("ledger: %v", err)
	}
	res.Tally = Compute(r.idx.Records(), dead, queued)
	r.checkAgents()
	r.mu.Lock()
	res.Problems = append(res.Problems, r.problems...)
	res.Notes = append(res.Notes, r.notes...)
	r.mu.Unlock()
	return res, nil
}

// startWorker starts the next incarnation of a worker slot.
func (r *runner) startWorker(s *slot) error {
	s.inc++
	name := fmt.Sprintf("worker%d.%d", s.n, s.inc)
	args := []string{
		"--url", r.urls, "--queue", r.queue, "--delivery-limit", strconv.Itoa(r.sc.DeliveryLimit),
		"--concurrency", strconv.Itoa(r.sc.Concurrency), "--prefetch", strconv.Itoa(r.sc.Prefetch),
		"--min-sleep", r.sc.MinSleep.String(), "--max-sleep", r.sc.MaxSleep.String(),
		"--lifetime", (r.sc.Duration + r.sc.Settle + 10*time.Minute).String(),
	}
	a, err := startAgent(r.placeAgent(s.n), r.env.AgentBin, r.env.Dir, "worker", name, args)
	if err != nil {
		return err
	}
	a.slot = s
	a.Side = r.side(s.n)
	r.mu.Lock()
	s.cur = a
	s.agents = append(s.agents, a)
	r.all = append(r.all, a)
	r.mu.Unlock()
	return nil
}

// supervise restarts the slot's worker whenever it exits, as a process
// manager would, until the scenario stops.
func (r *runner) supervise(ctx context.Context, s *slot) {
	defer r.sup.Done()
	for {
		r.mu.Lock()
		a := s.cur
		r.mu.Unlock()
		<-a.Done()
		e := a.exit()
		r.mu.Lock()
		s.exits = append(s.exits, e)
		stopping := r.stopping
		r.mu.Unlock()
		if !e.Expected {
			r.problem("%s", e.Desc)
		}
		if stopping || ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond): // a process manager's restart delay
		}
		r.mu.Lock()
		if r.stopping {
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		if err := r.startWorker(s); err != nil {
			r.problem("restart worker slot %d: %v", s.n, err)
			return
		}
		// stopAll may have looked at the slots just before this start.
		r.mu.Lock()
		late, a := r.stopping, s.cur
		r.mu.Unlock()
		if late {
			_ = a.Signal(syscall.SIGTERM, intentStop)
		}
	}
}

// stopAll SIGTERMs every running agent and waits for the supervisors.
func (r *runner) stopAll() {
	r.mu.Lock()
	already := r.stopping
	r.stopping = true
	var running []*Agent
	for _, s := range r.slots {
		if s.cur != nil && s.cur.Running() {
			running = append(running, s.cur)
		}
	}
	for _, p := range r.producers {
		if p.Running() {
			running = append(running, p)
		}
	}
	r.mu.Unlock()
	if already && len(running) == 0 {
		return
	}
	for _, a := range running {
		_ = a.Signal(syscall.SIGTERM, intentStop)
	}
	for _, a := range running {
		select {
		case <-a.Done():
		case <-time.After(60 * time.Second):
			r.problem("%s (pid %d) did not exit within 60s of SIGTERM; killing it", a.Name, a.PID)
			_ = a.Signal(syscall.SIGKILL, intentKill)
			<-a.Done()
		}
		if a.Role == "producer" {
			if e := a.exit(); !e.Expected {
				r.problem("%s", e.Desc)
			}
		}
	}
	r.sup.Wait()
}

// waitFor refreshes the ledger index and checks cond every 50ms until it
// holds, ctx ends or d passes.
func (r *runner) waitFor(ctx context.Context, d time.Duration, what string, cond func() bool) error {
	return testnode.Poll(ctx, d, 50*time.Millisecond, func() bool {
		_ = r.idx.Refresh()
		return cond()
	}, what)
}

// workersUp reports whether every slot has a running worker that has
// connected (written EvUp).
func (r *runner) workersUp() bool {
	for _, a := range r.currentWorkers() {
		if a == nil || !a.Running() {
			return false
		}
		if _, ok := r.idx.Last(a.PID, EvUp); !ok {
			return false
		}
	}
	return true
}

func (r *runner) currentWorkers() []*Agent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Agent, len(r.slots))
	for i, s := range r.slots {
		out[i] = s.cur
	}
	return out
}

func (r *runner) runningProducers() []*Agent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Agent
	for _, p := range r.producers {
		if p.Running() {
			out = append(out, p)
		}
	}
	return out
}

// pickWorker picks a running worker at random, preferring one that holds
// running jobs: it waits up to 5s for one.
func (r *runner) pickWorker(exclude ...*Agent) *Agent {
	var a *Agent
	busy := func() bool {
		var ok bool
		a, ok = r.pickOnce(exclude...)
		return ok
	}
	_ = testnode.Poll(context.Background(), 5*time.Second, 20*time.Millisecond, busy, "busy worker")
	return a
}

// pickOnce picks a worker and reports whether it holds running jobs.
func (r *runner) pickOnce(exclude ...*Agent) (*Agent, bool) {
	_ = r.idx.Refresh()
	var busy, idle []*Agent
outer:
	for _, a := range r.currentWorkers() {
		if a == nil || !a.Running() {
			continue
		}
		for _, x := range exclude {
			if x == a {
				continue outer
			}
		}
		if len(r.idx.Running(a.PID)) > 0 {
			busy = append(busy, a)
		} else {
			idle = append(idle, a)
		}
	}
	if len(busy) > 0 {
		return busy[rand.IntN(len(busy))], true
	}
	if len(idle) > 0 {
		return idle[rand.IntN(len(idle))], false
	}
	return nil, false
}

// schedule injects the faults of the cycle, in order, until Duration has
// passed and at least one full cycle ran.
func (r *runner) schedule(ctx context.Context, res *Result) {
	cycle := r.sc.Faults
	end := r.traffic.Add(r.sc.Duration)
	for i := 0; len(cycle) > 0; i++ {
		if ctx.Err() != nil {
			return
		}
		if i >= len(cycle) && time.Now().After(end) {
			return
		}
		// Each fault starts from a whole system: every worker up.
		if err := r.waitFor(ctx, 90*time.Second, "every worker up before the next fault", r.workersUp); err != nil {
			r.problem("%v", err)
			return
		}
		kind := cycle[i%len(cycle)]
		r.logf("fault %d: %s", i+1, kind)
		f := r.inject(ctx, kind)
		f.Kind = kind
		res.Faults = append(res.Faults, f)
		for _, m := range f.Metrics {
			v := "n/a"
			if m.OK {
				v = fmtDur(m.D)
			}
			r.logf("  %s: %s %s", m.Name, v, m.Note)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.sc.Gap):
		}
	}
}

func (r *runner) inject(ctx context.Context, kind string) FaultResult {
	f := FaultResult{At: time.Since(r.start)}
	switch kind {
	case FaultKillWorker:
		t := time.Now()
		if k := r.killWorker(&f, nil); k != nil {
			r.measureKill(ctx, &f, t, k)
		}
	case FaultTermWorker:
		r.termWorker(ctx, &f)
	case FaultCloseConns:
		t := time.Now()
		back := r.backSet(nil)
		r.closeConns(ctx, &f)
		f.Metrics = append(f.Metrics, r.reconnected(ctx, t, back), r.allBack(ctx, t, back), r.consumersBack(ctx, t))
	case FaultMixedConns:
		t := time.Now()
		victim := r.pickWorker()
		back := r.backSet(victim)
		k := r.killWorker(&f, victim)
		r.closeConns(ctx, &f)
		if k != nil {
			r.measureKill(ctx, &f, t, k)
		}
		f.Metrics = append(f.Metrics, r.reconnected(ctx, t, back), r.allBack(ctx, t, back), r.consumersBack(ctx, t))
	case FaultKillNode:
		r.killNode(ctx, &f, false)
	case FaultMixedNode:
		r.killNode(ctx, &f, true)
	case FaultStopNode:
		r.stopNode(ctx, &f)
	case FaultMixedLeader:
		r.killLeaderAndClose(ctx, &f)
	case FaultStopMajority:
		r.stopMajority(ctx, &f)
	case FaultPartitionLeader, FaultPartitionFollower, FaultFlapLink, FaultFreezeNode:
		r.partition(ctx, &f, kind)
	default:
		r.problem("unknown fault %q", kind)
	}
	return f
}

// kill is a worker the suite SIGKILLed and the jobs it was running.
type kill struct {
	victim  *Agent
	orphans []string
}

// killWorker SIGKILLs victim (or a busy worker) and returns it with the
// jobs it was running, or nil.
func (r *runner) killWorker(f *FaultResult, victim *Agent) *kill {
	if victim == nil {
		victim = r.pickWorker()
	}
	if victim == nil {
		r.problem("kill-worker: no running worker")
		return nil
	}
	if err := victim.Signal(syscall.SIGKILL, intentKill); err != nil {
		r.problem("%v", err)
		return nil
	}
	select {
	case <-victim.Done():
	case <-time.After(10 * time.Second):
		r.problem("%s (pid %d) still running 10s after SIGKILL", victim.Name, victim.PID)
		return nil
	}
	_ = r.idx.Refresh() // its ledger is complete now
	orphans := r.idx.Running(victim.PID)
	f.Target = strings.TrimSpace(f.Target + fmt.Sprintf(" %s (pid %d, %d jobs running)", victim.Name, victim.PID, len(orphans)))
	return &kill{victim: victim, orphans: orphans}
}

// measureKill measures how long the jobs the killed worker was running
// take to complete on other workers, and how long its replacement takes to
// connect.
func (r *runner) measureKill(ctx context.Context, f *FaultResult, t time.Time, k *kill) {
	f.Metrics = append(f.Metrics, r.orphansDone(ctx, t, k.orphans), r.replacementUp(ctx, t, k.victim))
}

// orphansDone measures how long the jobs a dead worker was running take to
// complete elsewhere.
func (r *runner) orphansDone(ctx context.Context, t time.Time, orphans []string) Metric {
	m := Metric{Name: "its running jobs completed elsewhere"}
	if len(orphans) == 0 {
		m.Note = "no job was running"
		return m
	}
	// A job whose workers kept dying may be dead-lettered instead: stop
	// waiting when the dead-letter queue grew by as many as are missing.
	dlqBase := r.dlqCount(ctx)
	_ = r.waitFor(ctx, 60*time.Second, "orphans done", func() bool {
		n := 0
		for _, k := range orphans {
			if _, ok := r.idx.DoneAfter(k, t); !ok {
				n++
			}
		}
		return n == 0 || (dlqBase >= 0 && n <= r.dlqCount(ctx)-dlqBase)
	})
	missing := 0
	for _, k := range orphans {
		at, ok := r.idx.DoneAfter(k, t)
		if !ok {
			missing++
			continue
		}
		if d := at.Sub(t); d > m.D {
			m.D = d
		}
	}
	m.OK = missing == 0
	m.Note = fmt.Sprintf("%d jobs", len(orphans))
	if missing > 0 {
		m.Note = fmt.Sprintf("%d of %d jobs not completed (dead-lettered? see the ledger)", missing, len(orphans))
	}
	return m
}

// dlqCount returns the number of dead letters waiting, or -1 if unknown.
func (r *runner) dlqCount(ctx context.Context) int {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := broker.Inspect(ictx, r.mon, warren.DeadLetterQueue(r.queue))
	if err != nil {
		return -1
	}
	return st.Ready
}

// replacementUp measures how long until the dead worker's slot has a new,
// connected worker.
func (r *runner) replacementUp(ctx context.Context, t time.Time, victim *Agent) Metric {
	m := Metric{Name: "replacement worker connected"}
	slotOf := victim.slot
	var upAt time.Time
	err := r.waitFor(ctx, 90*time.Second, "replacement of "+victim.Name+" up", func() bool {
		a := r.successor(slotOf, victim)
		if a == nil {
			return false
		}
		at, ok := r.idx.Last(a.PID, EvUp)
		upAt = at
		return ok
	})
	if err != nil {
		m.Note = err.Error()
		return m
	}
	m.D, m.OK = upAt.Sub(t), true
	return m
}

// successor returns the worker that replaced a in its slot, or nil.
func (r *runner) successor(s *slot, a *Agent) *Agent {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, x := range s.agents {
		if x == a && i+1 < len(s.agents) {
			return s.agents[i+1]
		}
	}
	return nil
}

// termWorker SIGTERMs a busy worker, which must finish what it runs and
// exit 0.
func (r *runner) termWorker(ctx context.Context, f *FaultResult) {
	victim := r.pickWorker()
	if victim == nil {
		r.problem("term-worker: no running worker")
		return
	}
	running := r.idx.Running(victim.PID)
	t := time.Now()
	if err := victim.Signal(syscall.SIGTERM, intentTerm); err != nil {
		r.problem("%v", err)
		return
	}
	f.Target = fmt.Sprintf("%s (pid %d, %d jobs running)", victim.Name, victim.PID, len(running))
	select {
	case <-victim.Done():
	case <-time.After(60 * time.Second):
		r.problem("%s (pid %d) did not exit within 60s of SIGTERM", victim.Name, victim.PID)
		return
	}
	e := victim.exit()
	m := Metric{Name: "drained and exited 0", D: e.After, OK: e.Expected}
	if !e.Expected {
		m.Note = "did not exit 0"
	}
	f.Metrics = append(f.Metrics, m)
	_ = r.idx.Refresh()
	if left := r.idx.Running(victim.PID); len(left) > 0 {
		r.problem("%s drained on SIGTERM but left %d started jobs unfinished: %s", victim.Name, len(left), sample(left, 5))
	}
	for _, k := range running {
		if r.idx.DoneBy(k, victim.PID) == 0 {
			r.problem("%s drained on SIGTERM but did not complete its running job %s", victim.Name, k)
		}
	}
	f.Metrics = append(f.Metrics, r.replacementUp(ctx, t, victim))
}

func (r *runner) upNodes() []*testnode.Node {
	var out []*testnode.Node
	for _, n := range r.nodes.Nodes {
		if _, err := n.PID(); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// closeConns has the broker close every client connection:
// close_all_connections on one running node acts on the whole cluster.
func (r *runner) closeConns(ctx context.Context, f *FaultResult) {
	for _, n := range r.upNodes() {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := n.CloseAllConnections(cctx, "chaos: close_all_connections")
		cancel()
		if err != nil {
			// A node that is stopped (stop_app) cannot do it; try the next.
			r.logf("close_all_connections on %s: %v", n.Name, err)
			continue
		}
		f.Target = strings.TrimSpace(f.Target + fmt.Sprintf(" all client connections (close_all_connections on node%d)", n.Index))
		return
	}
	r.problem("close_all_connections: no node could do it")
}

// backSet is the agents expected to work again after a fault: the running
// workers and producers, but the victim.
func (r *runner) backSet(victim *Agent) []*Agent {
	var out []*Agent
	for _, a := range r.currentWorkers() {
		if a != nil && a != victim && a.Running() {
			out = append(out, a)
		}
	}
	return append(out, r.runningProducers()...)
}

// progressEvent is the event that shows an agent working.
func progressEvent(a *Agent) string {
	if a.Role == "producer" {
		return EvConfirmed
	}
	return EvDone
}

// reconnected measures how long until every agent of set that lost its
// connection has a new one.
func (r *runner) reconnected(ctx context.Context, t time.Time, set []*Agent) Metric {
	return r.firstEvents(ctx, t, set, "every client reconnected", func(*Agent) string { return EvReconnect }, false)
}

// allBack measures how long until every agent of set has made progress
// again (a worker completed a job, a producer had one confirmed).
func (r *runner) allBack(ctx context.Context, t time.Time, set []*Agent) Metric {
	return r.firstEvents(ctx, t, set, "every worker and producer working again", progressEvent, true)
}

func (r *runner) firstEvents(ctx context.Context, t time.Time, set []*Agent, name string, event func(*Agent) string, strict bool) Metric {
	m := Metric{Name: name}
	if len(set) == 0 {
		m.Note = "no agent running"
		return m
	}
	pending := func() []*Agent {
		var out []*Agent
		for _, a := range set {
			if !a.Running() {
				continue // killed (poison) or finished meanwhile
			}
			if _, ok := r.idx.FirstAfter(a.PID, event(a), t); !ok {
				out = append(out, a)
			}
		}
		return out
	}
	// Workers can only show progress while there are jobs: once the
	// producers are done and the queue is empty, stop waiting for them.
	idle := false
	lastCheck := time.Now()
	err := r.waitFor(ctx, 90*time.Second, name, func() bool {
		p := pending()
		if len(p) == 0 {
			return true
		}
		if !strict || time.Since(lastCheck) < time.Second {
			return false
		}
		lastCheck = time.Now()
		for _, a := range p {
			if a.Role == "producer" {
				return false
			}
		}
		idle = !r.workAvailable(ctx)
		return idle
	})
	if idle {
		var names []string
		for _, a := range pending() {
			names = append(names, a.Name)
		}
		m.Note = "no jobs left to run for " + strings.Join(names, " ")
		return m
	}
	slowest := ""
	var gone []string
	for _, a := range set {
		at, ok := r.idx.FirstAfter(a.PID, event(a), t)
		if ok && at.Sub(t) > m.D {
			m.D, slowest = at.Sub(t), a.Name
		}
		if !ok && !a.Running() {
			gone = append(gone, a.Name)
		}
	}
	if err == nil && len(gone) > 0 {
		// Agents that exited (poison, or a finished producer) before they
		// showed the event: the figure covers the others only.
		if len(gone) == len(set) {
			m.Note = "every agent exited first: " + strings.Join(gone, " ")
			return m
		}
		slowest += "; exited first: " + strings.Join(gone, " ")
	}
	if err != nil {
		var names []string
		for _, a := range pending() {
			names = append(names, a.Name)
		}
		m.Note = "not within 90s: " + strings.Join(names, " ")
		if strict && len(names) > 0 && r.workAvailable(ctx) {
			r.problem("%s did not resume within 90s of the fault at +%.1fs although jobs were waiting%s",
				strings.Join(names, ", "), t.Sub(r.start).Seconds(), r.stallHint(pending(), t))
		}
		return m
	}
	m.OK = true
	m.Note = "slowest " + slowest
	return m
}

// consumersBack measures how long until the queue has one consumer per
// running worker again: a worker whose consumer never comes back would
// keep its connection and never run a job.
//
// While a cluster node is down the queue keeps counting the consumers of
// channels that lived on it (RabbitMQ marks them suspected down until the
// node returns), so during an outage the count may exceed the workers.
func (r *runner) consumersBack(ctx context.Context, t time.Time) Metric {
	r.mu.Lock()
	exact := r.down == 0
	r.mu.Unlock()
	m := Metric{Name: "one consumer per worker again"}
	var last string
	err := r.waitFor(ctx, 60*time.Second, m.Name, func() bool {
		want := 0
		for _, a := range r.currentWorkers() {
			if a != nil && a.Running() {
				if _, ok := r.idx.Last(a.PID, EvUp); ok {
					want++
				}
			}
		}
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		st, err := broker.Inspect(ictx, r.mon, r.queue)
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("%d consumers, %d workers running", st.Consumers, want)
		if !exact {
			return st.Consumers >= want && want == len(r.slots)
		}
		return st.Consumers == want && want == len(r.slots)
	})
	if err != nil {
		r.problem("the queue did not get one consumer per worker back within 60s of the fault at +%.1fs: %s",
			t.Sub(r.start).Seconds(), last)
		m.Note = last
		return m
	}
	m.D, m.OK = time.Since(t), true
	return m
}

// stallHint says what stalled agents were doing since t.
func (r *runner) stallHint(stalled []*Agent, t time.Time) string {
	var parts []string
	for _, a := range stalled {
		if a.Role != "producer" {
			parts = append(parts, a.Name+": no job completed (a consumer that never resumes?)")
			continue
		}
		recs, _ := ReadLedger(a.Ledger)
		nacked, other := 0, 0
		for _, rec := range recs {
			if rec.Event == EvEnqErr && rec.At.After(t) {
				if strings.Contains(rec.Detail, "nacked") {
					nacked++
				} else {
					other++
				}
			}
		}
		parts = append(parts, fmt.Sprintf("%s: %d enqueues nacked, %d failed otherwise (nacked without end: see TestEnqueueGoesOnThroughTheSurvivorsWhenTheLeaderDies)", a.Name, nacked, other))
	}
	return " — " + strings.Join(parts, "; ")
}

// workAvailable reports whether jobs are waiting or still being enqueued.
func (r *runner) workAvailable(ctx context.Context) bool {
	if len(r.runningProducers()) > 0 {
		return true
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := broker.Inspect(ictx, r.mon, r.queue)
	return err != nil || st.Ready > 0
}

// killNode SIGKILLs the node (in a cluster, the queue's leader). On a
// single node it restarts it at once; in a cluster it keeps it down for
// Hold while work goes on through the others. withWorker also kills a
// worker while the node is down.
func (r *runner) killNode(ctx context.Context, f *FaultResult, withWorker bool) {
	n := r.target(ctx)
	t := time.Now()
	back := r.backSet(nil)
	if err := n.Kill(ctx); err != nil {
		r.problem("kill node %s: %v", n.Name, err)
		return
	}
	if len(r.nodes.Nodes) > 1 {
		r.setDown(1) // until holdDown brings it back
	}
	f.Target = fmt.Sprintf("node%d (%s)", n.Index, n.Name)
	if len(r.nodes.Nodes) > 1 {
		f.Target += ", leader"
	}
	var k *kill
	if withWorker {
		// Killed while the node is down: its replacement dials a dead node.
		victim := r.pickWorker()
		back = without(back, victim)
		k = r.killWorker(f, victim)
	}
	if len(r.nodes.Nodes) > 1 {
		// The survivors carry the work while the node is down.
		f.Metrics = append(f.Metrics, r.allBack(ctx, t, back), r.consumersBack(ctx, t))
		r.holdDown(ctx, f, t, n.Start)
	} else {
		t1 := time.Now()
		if err := n.Start(ctx); err != nil {
			r.problem("restart node %s: %v", n.Name, err)
			return
		}
		f.Metrics = append(f.Metrics, Metric{Name: "node restarted", D: time.Since(t1), OK: true},
			r.reconnected(ctx, t, back), r.allBack(ctx, t, back), r.consumersBack(ctx, t))
	}
	if k != nil {
		r.measureKill(ctx, f, t, k)
	}
}

func without(set []*Agent, x *Agent) []*Agent {
	var out []*Agent
	for _, a := range set {
		if a != x {
			out = append(out, a)
		}
	}
	return out
}

// stopNode stops RabbitMQ on the queue's leader (stop_app) for Hold while
// work goes on through the other nodes, then starts it again.
func (r *runner) stopNode(ctx context.Context, f *FaultResult) {
	n := r.target(ctx)
	t := time.Now()
	back := r.backSet(nil)
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err := n.StopApp(sctx)
	cancel()
	if err != nil {
		r.problem("stop_app %s: %v", n.Name, err)
		return
	}
	r.setDown(1)
	f.Target = fmt.Sprintf("node%d (%s), leader", n.Index, n.Name)
	f.Metrics = append(f.Metrics, r.allBack(ctx, t, back), r.consumersBack(ctx, t))
	r.holdDown(ctx, f, t, func(ctx context.Context) error {
		sctx, cancel := context.WithTimeout(ctx, 150*time.Second)
		defer cancel()
		return n.StartApp(sctx)
	})
}

// stopMajority stops RabbitMQ on the queue's leader and one more node for
// Hold: the queue has no majority and must stop (no confirm, no delivery)
// without losing anything, then resume when both are back.
func (r *runner) stopMajority(ctx context.Context, f *FaultResult) {
	leader := r.target(ctx)
	var other *testnode.Node
	for _, n := range r.nodes.Nodes {
		if n != leader {
			other = n
			break
		}
	}
	for _, n := range []*testnode.Node{leader, other} {
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err := n.StopApp(sctx)
		cancel()
		if err != nil {
			r.problem("stop_app %s: %v", n.Name, err)
		}
	}
	r.setDown(2)
	gone := time.Now() // both stop_app calls have returned: no majority from here
	f.Target = fmt.Sprintf("node%d (leader) and node%d", leader.Index, other.Index)
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(gone.Add(r.sc.Hold))):
	}
	_ = r.idx.Refresh()
	// Jobs already running when the majority went may still finish (up to
	// MaxSleep, and their acks go nowhere); count from 1s after.
	from, now := gone.Add(time.Second), time.Now()
	done, conf := r.idx.DoneBetween(from, now), r.idx.ConfirmedBetween(from, now)
	f.Note = fmt.Sprintf("without a majority (%.1fs, counted from 1s after the second stop_app): %d jobs completed, %d enqueues confirmed",
		now.Sub(from).Seconds(), done, conf)
	t1 := time.Now()
	for _, n := range []*testnode.Node{other, leader} {
		sctx, cancel := context.WithTimeout(ctx, 150*time.Second)
		err := n.StartApp(sctx)
		cancel()
		if err != nil {
			r.problem("start_app %s: %v", n.Name, err)
		}
	}
	r.setDown(-2)
	back := r.backSet(nil)
	f.Metrics = append(f.Metrics, Metric{Name: "majority back", D: time.Since(t1), OK: true})
	m := r.allBack(ctx, t1, back)
	m.Name = "all working again, from majority back"
	f.Metrics = append(f.Metrics, m, r.consumersBack(ctx, t1))
}

// killLeaderAndClose kills the leader and has the survivors close every
// client connection at the same time.
func (r *runner) killLeaderAndClose(ctx context.Context, f *FaultResult) {
	n := r.target(ctx)
	t := time.Now()
	back := r.backSet(nil)
	if err := n.Kill(ctx); err != nil {
		r.problem("kill node %s: %v", n.Name, err)
		return
	}
	r.setDown(1)
	f.Target = fmt.Sprintf("node%d (%s), leader;", n.Index, n.Name)
	r.closeConns(ctx, f)
	f.Metrics = append(f.Metrics, r.reconnected(ctx, t, back), r.allBack(ctx, t, back), r.consumersBack(ctx, t))
	r.holdDown(ctx, f, t, n.Start)
}

func (r *runner) setDown(d int) {
	r.mu.Lock()
	r.down += d
	r.mu.Unlock()
}

// holdDown keeps a node down until Hold has passed since t, notes the
// progress made meanwhile, and brings it back with up.
func (r *runner) holdDown(ctx context.Context, f *FaultResult, t time.Time, up func(context.Context) error) {
	defer r.setDown(-1)
	// Work must go on through the survivors while producers are still
	// enqueueing for the whole outage.
	producing := len(r.runningProducers()) > 0
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(t.Add(r.sc.Hold))):
	}
	producing = producing && len(r.runningProducers()) > 0
	_ = r.idx.Refresh()
	now := time.Now()
	done, conf := r.idx.DoneBetween(t, now), r.idx.ConfirmedBetween(t, now)
	f.Note = fmt.Sprintf("while the node was down (%.1fs): %d jobs completed, %d enqueues confirmed through the other nodes",
		now.Sub(t).Seconds(), done, conf)
	if producing && (done == 0 || conf == 0) {
		r.problem("no progress through the surviving nodes during the %.1fs outage at +%.1fs (%d completed, %d confirmed)",
			now.Sub(t).Seconds(), t.Sub(r.start).Seconds(), done, conf)
	}
	t1 := time.Now()
	if err := up(ctx); err != nil {
		r.problem("bring node back: %v", err)
		return
	}
	f.Metrics = append(f.Metrics, Metric{Name: "node back", D: time.Since(t1), OK: true})
	cb := r.consumersBack(ctx, t1)
	cb.Name = "one consumer per worker, node back"
	f.Metrics = append(f.Metrics, cb)
}

// target is the node a node fault hits: the only node, or the leader of
// the queue in a cluster (a random node if the leader is unknown).
func (r *runner) target(ctx context.Context) *testnode.Node {
	if len(r.nodes.Nodes) == 1 {
		return r.nodes.Nodes[0]
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if n, err := r.leader(lctx); err == nil {
		return n
	} else {
		r.logf("leader of %s unknown (%v); picking a node at random", r.queue, err)
	}
	return r.nodes.Nodes[rand.IntN(len(r.nodes.Nodes))]
}

// leader asks a running node which node leads the queue.
func (r *runner) leader(ctx context.Context) (*testnode.Node, error) {
	for _, n := range r.upNodes() {
		out, err := n.Ctl(ctx, "list_queues", "name", "leader", "--quiet", "--formatter", "json")
		if err != nil {
			continue
		}
		var rows []struct{ Name, Leader string }
		i := strings.Index(out, "[")
		if i < 0 || json.Unmarshal([]byte(out[i:]), &rows) != nil {
			continue
		}
		for _, row := range rows {
			if row.Name != r.queue {
				continue
			}
			for _, m := range r.nodes.Nodes {
				if m.Name == row.Leader {
					return m, nil
				}
			}
		}
	}
	return nil, errors.New("no running node reported a leader")
}

// settle waits until every confirmed job is completed or dead-lettered.
// It gives up after Settle without any progress (a stall), or after three
// times Settle in all (a backlog the workers cannot drain).
func (r *runner) settle(ctx context.Context) {
	t := time.Now()
	var last string
	lastDone, lastProgress := -1, time.Now()
	stalled := false
	var quietSince time.Time // when the counts last became consistent
	err := r.waitFor(ctx, 3*r.sc.Settle, "every job completed or dead-lettered", func() bool {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		q, err1 := broker.Inspect(ictx, r.mon, r.queue)
		d, err2 := broker.Inspect(ictx, r.mon, warren.DeadLetterQueue(r.queue))
		if err1 != nil || err2 != nil {
			return false
		}
		unfinished := r.idx.Unfinished()
		_, done := r.idx.Counts()
		if done != lastDone {
			lastDone, lastProgress = done, time.Now()
		}
		delayed := r.delayed(ictx)
		last = fmt.Sprintf("%d confirmed jobs not completed, %d dead letters, %d ready on the queue, %d in the delay levels", unfinished, d.Ready, q.Ready, delayed)
		if time.Since(lastProgress) > r.sc.Settle {
			stalled = true
			return true
		}
		// Counts can match by chance (a job completed and also
		// dead-lettered, while another waits in a delay level or unacked
		// in a worker): nothing waiting anywhere, and the counts steady
		// for a few seconds.
		if q.Ready != 0 || delayed != 0 || unfinished > d.Ready {
			quietSince = time.Time{}
			return false
		}
		if quietSince.IsZero() {
			quietSince = time.Now()
		}
		return time.Since(quietSince) >= 3*time.Second
	})
	switch {
	case stalled:
		r.problem("no job completed for %s while settling: %s", r.sc.Settle, last)
	case err != nil:
		r.problem("not settled after %s: %s", 3*r.sc.Settle, last)
	default:
		r.logf("settled in %s: %s", time.Since(t).Round(time.Millisecond), last)
	}
}

// delayed counts the messages in the delay levels (the suite's nodes are
// its own: every delayed message is one of its jobs); -1 while the levels
// cannot be read. A passive declare counts only a quorum queue's ready
// messages, not those it has dead-lettered and still holds until the
// target confirms them: a retry that waits for RabbitMQ's dead-letter
// worker to forward it again (DeadLetterRetry) shows only in
// rabbitmqctl's "messages". So it asks rabbitmqctl, and falls back to the
// ready counts when no node answers.
func (r *runner) delayed(ctx context.Context) int {
	if n, err := r.delayedByCtl(ctx); err == nil {
		return n
	}
	n := 0
	for k := 0; k < broker.DelayLevels; k++ {
		st, err := broker.Inspect(ctx, r.mon, broker.DelayExchange(k))
		if err != nil {
			return -1
		}
		n += st.Ready
	}
	return n
}

// delayedByCtl sums "messages" of the delay levels as a running node's
// rabbitmqctl reports them.
func (r *runner) delayedByCtl(ctx context.Context) (int, error) {
	var last error = errors.New("no node is up")
	for _, n := range r.upNodes() {
		out, err := n.Ctl(ctx, "list_queues", "name", "messages", "--quiet", "--formatter", "json")
		if err != nil {
			last = err
			continue
		}
		return sumDelayLevels(out)
	}
	return 0, last
}

// sumDelayLevels adds up the messages of the warren.delay.* queues in the
// JSON output of rabbitmqctl list_queues name messages.
func sumDelayLevels(out string) (int, error) {
	i := strings.Index(out, "[")
	if i < 0 {
		return 0, fmt.Errorf("chaos: list_queues printed no JSON: %q", tail(out, 200))
	}
	var rows []struct {
		Name     string
		Messages int
	}
	if err := json.Unmarshal([]byte(out[i:]), &rows); err != nil {
		return 0, fmt.Errorf("chaos: list_queues: %w", err)
	}
	n := 0
	for _, row := range rows {
		if strings.HasPrefix(row.Name, broker.DelayPrefix) {
			n += row.Messages
		}
	}
	return n, nil
}

// drain empties the dead-letter queue and the queue, and returns the jobs
// found in each by key.
func (r *runner) drain(ctx context.Context) (map[string]DeadLetter, map[string]int, error) {
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := r.mon.Await(dctx); err != nil {
		return nil, nil, err
	}
	dead := map[string]DeadLetter{}
	err := r.getAll(dctx, warren.DeadLetterQueue(r.queue), func(d amqp.Delivery) {
		key := keyOf(d.Body)
		dl := dead[key]
		dl.Key = key
		dl.Copies++
		dl.Reason = deathReason(d.Headers)
		dead[key] = dl
	})
	if err != nil {
		return dead, nil, err
	}
	queued := map[string]int{}
	err = r.getAll(dctx, r.queue, func(d amqp.Delivery) { queued[keyOf(d.Body)]++ })
	reasons := map[string]int{}
	for _, dl := range dead {
		reasons[dl.Reason]++
	}
	r.logf("dead-letter queue: %d jobs %v; left on the queue: %d", len(dead), reasons, len(queued))
	for k, dl := range dead {
		if !IsPoison(k) {
			r.note("healthy job %s dead-lettered (reason %q, %d copies): it was delivered more often than the delivery limit allows (its workers died, or were cut off, while holding it)", k, dl.Reason, dl.Copies)
		}
	}
	return dead, queued, err
}

// deathReason is why the broker (x-death, most recent first) or a worker
// (warren-dead-reason) dead-lettered a message. A retried job went through
// the delay queues first, so its first death is "expired".
func deathReason(h amqp.Table) string {
	if deaths, ok := h["x-death"].([]any); ok && len(deaths) > 0 {
		if t, ok := deaths[0].(amqp.Table); ok {
			if reason, ok := t["reason"].(string); ok {
				return reason
			}
		}
	}
	if reason := broker.HeaderString(h, warren.HeaderDeadReason); reason != "" {
		return reason
	}
	return broker.HeaderString(h, "x-first-death-reason")
}

func keyOf(body []byte) string {
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil || p.Key == "" {
		return "(malformed: " + string(body) + ")"
	}
	return p.Key
}

// getAll removes every message of queue, handing each to f.
func (r *runner) getAll(ctx context.Context, queue string, f func(amqp.Delivery)) error {
	cur, err := broker.OpenCursor(ctx, r.mon, queue, broker.CursorOptions{})
	if err != nil {
		return fmt.Errorf("read %s: %w", queue, err)
	}
	defer cur.Close()
	for ctx.Err() == nil {
		d, how, err := cur.Next(ctx)
		if err != nil {
			return fmt.Errorf("get from %s: %w", queue, err)
		}
		if how == broker.ReadEmpty {
			return nil
		}
		if err := cur.Ack(d.DeliveryTag); err != nil {
			return fmt.Errorf("ack on %s: %w", queue, err)
		}
		f(d)
	}
	return ctx.Err()
}

// checkAgents looks for data races and Pool.Run errors in the agents'
// logs and ledgers.
func (r *runner) checkAgents() {
	r.mu.Lock()
	all := append([]*Agent(nil), r.all...)
	r.mu.Unlock()
	for _, a := range all {
		if rep := a.raceReport(); rep != "" {
			r.problem("data race in %s (pid %d):\n%s", a.Name, a.PID, rep)
		}
	}
	var runErrs []string
	for _, rec := range r.idx.Records() {
		if rec.Event == EvRunErr {
			runErrs = append(runErrs, fmt.Sprintf("pid %d: %s", rec.PID, rec.Detail))
		}
	}
	sort.Strings(runErrs)
	for _, e := range runErrs {
		if strings.Contains(e, "connection to the broker lost") {
			r.problem("worker.Pool.Run gave up on a connection that reconnects: %s", e)
		} else {
			r.note("worker.Pool.Run could not start and was started again: %s", e)
		}
	}
}
