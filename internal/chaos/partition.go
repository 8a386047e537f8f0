package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warrenq/warren/internal/testnode"
)

// flapPattern is how long the flapping link stays down each time; between
// two cuts it is up for flapUp, slow and lossy (Net.Shape). The 12s cut
// outlasts net_ticktime (10s): one flap in four is a real partition.
var flapPattern = []time.Duration{time.Second, 3 * time.Second, 12 * time.Second, 2 * time.Second}

const flapUp = 2 * time.Second

// Shaping of a flapping link while it is up.
const flapRate, flapLatency = "512kbit", "400ms"

// side returns the node whose namespace producer k or worker slot k runs
// in, or 0 without a Net.
func (r *runner) side(k int) int {
	if r.net == nil {
		return 0
	}
	return (k-1)%len(r.nodes.Nodes) + 1
}

// placeAgent is the command prefix that starts agent k on its side.
func (r *runner) placeAgent(k int) []string {
	if r.net == nil {
		return nil
	}
	return r.net.Exec(r.side(k))
}

// sides splits the running agents into those in node i's namespace and
// the others.
func (r *runner) sides(i int) (inside, outside []*Agent) {
	for _, a := range r.backSet(nil) {
		if a.Side == i {
			inside = append(inside, a)
		} else {
			outside = append(outside, a)
		}
	}
	return inside, outside
}

func pidSet(agents []*Agent) map[int]bool {
	m := map[int]bool{}
	for _, a := range agents {
		m[a.PID] = true
	}
	return m
}

func names(agents []*Agent) string {
	var s []string
	for _, a := range agents {
		s = append(s, a.Name)
	}
	return strings.Join(s, " ")
}

// partition injects one of the partition faults on the queue's leader (a
// follower for FaultPartitionFollower), holds it, heals it and measures
// what the two sides did meanwhile and how long the whole recovers.
func (r *runner) partition(ctx context.Context, f *FaultResult, kind string) {
	if r.net == nil || len(r.nodes.Nodes) < 3 {
		r.problem("%s needs a 3-node cluster with Scenario.Partitions", kind)
		return
	}
	n := r.target(ctx)
	role := "leader"
	if kind == FaultPartitionFollower {
		for _, m := range r.nodes.Nodes {
			if m != n {
				n, role = m, "follower"
				break
			}
		}
	}
	inside, outside := r.sides(n.Index)
	f.Target = fmt.Sprintf("node%d (%s), %s; its side: %s", n.Index, n.Name, role, names(inside))
	t := time.Now()
	var err error
	if kind == FaultFreezeNode {
		err = n.Freeze()
	} else {
		err = r.net.Cut(ctx, n.Index)
	}
	if err != nil {
		r.problem("%s on %s: %v", kind, n.Name, err)
		return
	}
	r.setDown(1)
	healed := false
	heal := func() {
		if healed {
			return
		}
		healed = true
		var err error
		if kind == FaultFreezeNode {
			err = n.Thaw()
		} else {
			err = r.net.Heal(context.Background(), n.Index)
		}
		if err != nil {
			r.problem("heal %s on %s: %v", kind, n.Name, err)
		}
		r.setDown(-1)
	}
	defer heal() // on every path, ctx cancelled included

	end := t.Add(r.sc.Hold)
	switch kind {
	case FaultFlapLink:
		end = r.flap(ctx, n)
	case FaultPartitionLeader, FaultPartitionFollower:
		// pause_minority: the lone node stops serving clients once it
		// sees the others gone (net_ticktime); the majority goes on.
		f.Metrics = append(f.Metrics, r.minorityPaused(ctx, t, n))
		fallthrough
	default:
		m := r.allBack(ctx, t, outside)
		m.Name = "majority side working"
		f.Metrics = append(f.Metrics, m)
	}
	producing := len(r.runningProducers()) > 0
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Until(end)):
	}
	producing = producing && len(r.runningProducers()) > 0
	_ = r.idx.Refresh()
	now := time.Now()
	in, out := pidSet(inside), pidSet(outside)
	inDone, inConf := r.idx.CountBetween(in, EvDone, t, now), r.idx.CountBetween(in, EvConfirmed, t, now)
	outDone, outConf := r.idx.CountBetween(out, EvDone, t, now), r.idx.CountBetween(out, EvConfirmed, t, now)
	f.Note = fmt.Sprintf("during the fault (%.1fs): node%d's side %d jobs completed, %d enqueues confirmed; the other side %d completed, %d confirmed",
		now.Sub(t).Seconds(), n.Index, inDone, inConf, outDone, outConf)
	if kind != FaultFlapLink && producing && (outDone == 0 || outConf == 0) {
		r.problem("%s at +%.1fs: no progress on the majority side in %.1fs (%d completed, %d confirmed)",
			kind, t.Sub(r.start).Seconds(), now.Sub(t).Seconds(), outDone, outConf)
	}

	t1 := time.Now()
	heal()
	if kind == FaultFreezeNode {
		f.Metrics = append(f.Metrics, r.wholeAfterFreeze(ctx, t1, n)...)
	} else {
		f.Metrics = append(f.Metrics, r.clusterWhole(ctx, t1, kind, 3*time.Minute))
	}
	m := r.allBack(ctx, t1, r.backSet(nil))
	m.Name = "every worker and producer working, from heal"
	f.Metrics = append(f.Metrics, m)
	cb := r.consumersBack(ctx, t1)
	cb.Name = "one consumer per worker, from heal"
	f.Metrics = append(f.Metrics, cb)
}

// flap takes node n's link down for each span of flapPattern, up (shaped)
// for flapUp between them, and returns when it is done. The caller heals.
func (r *runner) flap(ctx context.Context, n *testnode.Node) time.Time {
	for k, d := range flapPattern {
		if k > 0 {
			if err := r.net.Cut(ctx, n.Index); err != nil {
				r.problem("flap: %v", err)
			}
		}
		if !sleepCtx(ctx, d) {
			break
		}
		if err := r.net.Heal(ctx, n.Index); err != nil {
			r.problem("flap: %v", err)
		}
		if err := r.net.Shape(ctx, n.Index, flapRate, flapLatency); err != nil {
			r.problem("flap: %v", err)
		}
		if !sleepCtx(ctx, flapUp) {
			break
		}
	}
	return time.Now()
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// minorityPaused measures how long the cut-off node takes to stop
// accepting clients, as seen from its own side: pause_minority closes its
// listener. A node that keeps serving its side is a problem.
func (r *runner) minorityPaused(ctx context.Context, t time.Time, n *testnode.Node) Metric {
	m := Metric{Name: "minority node paused (refuses clients)"}
	addr := net.JoinHostPort(n.Host, strconv.Itoa(n.Port))
	accepts := func() bool {
		// From inside the node's namespace: the root namespace cannot
		// reach it while the link is down.
		_, err := output(ctx, r.net.Exec(n.Index, "bash", "-c", "exec 3<>/dev/tcp/"+strings.ReplaceAll(addr, ":", "/"))...)
		return err == nil
	}
	err := testnode.Poll(ctx, 60*time.Second, 250*time.Millisecond, func() bool { return !accepts() }, "minority paused")
	if err != nil {
		r.problem("node%d (%s) still accepted clients 60s after it was cut off at +%.1fs: it did not pause (cluster_partition_handling %s?)",
			n.Index, n.Name, t.Sub(r.start).Seconds(), PartitionHandling)
		m.Note = "still accepting clients"
		return m
	}
	m.D, m.OK = time.Since(t), true
	return m
}

// thawWait is how long the suite waits for a resumed node's cluster to be
// whole by itself before it restarts the node's app, as an operator must.
const thawWait = 30 * time.Second

// wholeAfterFreeze waits for the cluster to be whole after node n was
// resumed. A node frozen past net_ticktime did not see the others go: when
// it resumes, it and they find a partition after the fact, and
// pause_minority pauses no one (nobody is in a minority any more), so the
// partition can stay until an operator restarts the node's app. If the
// cluster is not whole within thawWait the suite does that (stop_app,
// start_app on n), notes it, and fails only if that does not make it whole.
func (r *runner) wholeAfterFreeze(ctx context.Context, t time.Time, n *testnode.Node) []Metric {
	m, ok := r.awaitWhole(ctx, thawWait)
	if ok {
		m.D = time.Since(t)
		return []Metric{m}
	}
	m.Note = "stayed partitioned: " + m.Note
	r.note("freeze-node at +%.1fs: the cluster was still partitioned %s after node%d resumed (%s); restarting node%d's app, as an operator must",
		t.Sub(r.start).Seconds(), thawWait, n.Index, m.Note, n.Index)
	t2 := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 150*time.Second)
	err := n.StopApp(sctx)
	if err == nil {
		err = n.StartApp(sctx)
	}
	cancel()
	if err != nil {
		r.problem("restart the app of node%d after a freeze: %v", n.Index, err)
		return []Metric{m}
	}
	m2 := r.clusterWhole(ctx, t2, FaultFreezeNode, 3*time.Minute)
	m2.Name = "cluster whole, from the operator's restart"
	return []Metric{m, m2}
}

// clusterWhole measures how long, from t, until every node lists all the
// nodes as running and no partition. A cluster still split within d of the
// heal is a problem: pause_minority must restart the paused node and rejoin
// it by itself.
func (r *runner) clusterWhole(ctx context.Context, t time.Time, kind string, d time.Duration) Metric {
	m, ok := r.awaitWhole(ctx, d)
	if !ok {
		r.problem("%s at +%.1fs: the cluster was not whole %s after the heal: %s", kind, t.Sub(r.start).Seconds(), d, m.Note)
		return m
	}
	m.D = time.Since(t)
	return m
}

// awaitWhole polls every node's cluster_status for up to d; it reports
// whether the cluster became whole, and otherwise what the last look saw.
func (r *runner) awaitWhole(ctx context.Context, d time.Duration) (Metric, bool) {
	m := Metric{Name: "cluster whole again, from heal"}
	var last string
	err := testnode.Poll(ctx, d, 500*time.Millisecond, func() bool {
		for _, n := range r.nodes.Nodes {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			out, err := n.Ctl(cctx, "cluster_status", "--formatter", "json")
			cancel()
			if err != nil {
				last = fmt.Sprintf("node%d: %v", n.Index, err)
				return false
			}
			running, parts, err := parseClusterStatus(out)
			if err != nil {
				last = fmt.Sprintf("node%d: %v", n.Index, err)
				return false
			}
			if len(parts) > 0 || len(running) != len(r.nodes.Nodes) {
				last = fmt.Sprintf("node%d: running %v, partitions %v", n.Index, running, parts)
				return false
			}
		}
		return true
	}, "cluster whole")
	if err != nil {
		m.Note = last
		return m, false
	}
	m.OK = true
	return m, true
}

// parseClusterStatus reads running_nodes and partitions (node → nodes it
// is partitioned from) out of rabbitmqctl cluster_status --formatter json.
func parseClusterStatus(out string) (running []string, partitions map[string][]string, err error) {
	i := strings.Index(out, "{")
	if i < 0 {
		return nil, nil, fmt.Errorf("chaos: cluster_status printed no JSON: %q", tail(out, 200))
	}
	var st struct {
		Running    []string        `json:"running_nodes"`
		Partitions json.RawMessage `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(out[i:]), &st); err != nil {
		return nil, nil, fmt.Errorf("chaos: cluster_status: %w", err)
	}
	partitions = map[string][]string{}
	if len(st.Partitions) > 0 && string(st.Partitions) != "[]" && string(st.Partitions) != "null" {
		if err := json.Unmarshal(st.Partitions, &partitions); err != nil {
			return nil, nil, fmt.Errorf("chaos: cluster_status partitions: %w", err)
		}
	}
	for k, v := range partitions {
		if len(v) == 0 {
			delete(partitions, k)
		}
	}
	running = slices.Clone(st.Running)
	slices.Sort(running)
	return running, partitions, nil
}
