package dashboard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/admin"
	"github.com/warrenq/warren/broker"
)

// The dead-letter index.
//
// RabbitMQ cannot browse a queue: every look at dead letters is a pass over
// the whole dead-letter queue (admin.Each), about 12 s for 100,000. So the
// API keeps, per queue, an index of short summaries of its dead letters,
// built by one pass, and answers the dead-letter list (filters, paging) and
// the groups from it. The list's "total" is always the broker's count at
// the time of the request (one passive declare); when it differs from the
// count the index was built from, or the index is older than MaxAge, or an
// action changed the queue in a way the index could not follow, the index
// is rebuilt in the background and the list says "stale": true, with
// "indexed_at", until then. Only the first look at a queue waits for a pass,
// and for at most FirstWait (2s): it then answers with the dead letters the
// pass has read so far ("indexing": true), and the client asks again.
//
// Memory: a summary holds the ID, the error text cut to maxIndexError
// bytes, a payload preview of at most maxIndexPreview bytes, the failure
// and enqueue times and a few small fields; type, queue, reason and error
// fingerprint strings are shared between entries. That is about 200 bytes
// of fixed size (deadSummary, 176 bytes on 64-bit) plus the ID, error and
// preview bytes: about 350 bytes for a typical dead letter (a UUID, a 60-byte error, a 60-byte
// JSON payload), at most about 800. MaxEntries (default 500,000) bounds the
// entries of all queues together, so the index stays under about 175 MiB
// typical (400 MiB at worst); the least recently used queues' indexes are
// dropped first, and a queue with more dead letters than that is indexed
// in part ("partial": true).
//
// A pass holds the dead-letter queue's lock, which makes a concurrent
// replay, purge or list from the CLI or another dashboard fail with busy.
// So the index is rebuilt only when someone looks at the list, never on a
// timer, and no sooner after a pass than the pass took (nor than
// minRefreshGap): the lock stays free at least half the time. An action of
// this dashboard on the queue (replay, purge, import, export) cancels a
// rebuild running here instead of waiting for it; a read (show, count)
// waits for it.

const (
	maxIndexError   = 300 // bytes of error text kept per dead letter
	maxIndexPreview = 256 // bytes of payload kept per dead letter
	minRefreshGap   = 5 * time.Second
)

// deadIndexConfig tunes a deadIndex.
type deadIndexConfig struct {
	// MaxAge is how long an index is trusted while the broker's count
	// stays the same. 0 means 5 minutes.
	MaxAge time.Duration
	// MaxEntries bounds the summaries kept over all queues. 0 means 500,000.
	MaxEntries int
	// FirstWait is how long a list waits for the first pass over a queue
	// before it answers with the dead letters read so far. 0 means 2s.
	FirstWait time.Duration
	// PassTimeout bounds one indexing pass. 0 means 10 minutes.
	PassTimeout time.Duration
	// Logger receives the index's events. nil means slog.Default().
	Logger *slog.Logger
}

// deadSummary is what the index keeps of one dead letter.
type deadSummary struct {
	ID          string
	Type        string // shared
	Queue       string // shared
	Reason      string // shared
	Fingerprint string // shared: admin.Fingerprint of the whole error
	// Error is the error text, cut to maxIndexError bytes
	// (ErrorTruncated then).
	Error          string
	Preview        string // admin.Printable of the first maxIndexPreview payload bytes
	FailedAt       time.Time
	EnqueuedAt     time.Time
	Attempts       int32
	MaxAttempts    int32
	ReplayCount    int32
	ErrorTruncated bool
	PreviewCut     bool
	Unreadable     bool
}

// interner shares equal strings between the summaries of one pass.
type interner map[string]string

func (in interner) get(s string) string {
	if v, ok := in[s]; ok {
		return v
	}
	in[s] = s
	return s
}

// summarize reduces a dead letter to what the index keeps.
func summarize(dl admin.DeadLetter, in interner) deadSummary {
	s := deadSummary{
		ID:          dl.ID,
		Type:        in.get(dl.Type),
		Queue:       in.get(dl.Queue),
		Reason:      in.get(string(dl.Reason)),
		Fingerprint: in.get(admin.ErrorKey(dl.Error, string(dl.Reason))),
		Error:       dl.Error,
		FailedAt:    dl.FailedAt,
		EnqueuedAt:  dl.EnqueuedAt,
		Attempts:    int32(min(dl.Attempts, 1<<31-1)),
		MaxAttempts: int32(min(dl.MaxAttempts, 1<<31-1)),
		ReplayCount: int32(min(dl.ReplayCount, 1<<31-1)),
		Unreadable:  dl.Unreadable,
	}
	if len(s.Error) > maxIndexError {
		s.Error, s.ErrorTruncated = broker.Truncate(s.Error, maxIndexError), true
	}
	// A copy, so that the summary does not keep the delivery's body alive.
	s.Error = string([]byte(s.Error))
	s.ID = string([]byte(s.ID))
	p := dl.Payload
	if len(p) > maxIndexPreview {
		cut := maxIndexPreview
		for cut > 0 && !utf8.RuneStart(p[cut]) {
			cut--
		}
		p, s.PreviewCut = p[:cut], true
	}
	s.Preview = admin.Printable(p)
	return s
}

// deadIndex is the per-queue index of dead-letter summaries.
type deadIndex struct {
	adm  *admin.Inspector
	conn *broker.Conn
	cfg  deadIndexConfig
	log  *slog.Logger

	// base ends every pass when the Server closes.
	base context.Context
	stop context.CancelFunc

	mu     sync.Mutex
	queues map[string]*queueIndex
}

// queueIndex is one queue's index. Its fields are guarded by deadIndex.mu;
// entries is never changed in place, only replaced.
type queueIndex struct {
	name      string
	entries   []deadSummary
	count     int // dead letters the pass read (more than len(entries) when partial)
	built     bool
	partial   bool
	dirty     bool // an action changed the queue in a way the index does not show
	indexedAt time.Time
	lastUsed  time.Time
	nextPass  time.Time // no background pass before then
	lastErr   error
	pass      *indexPass    // the pass running now, or nil
	progress  []deadSummary // what the first pass has read so far
	holds     int           // actions of this dashboard under way: no pass starts meanwhile
	released  chan struct{}
}

// indexPass is one indexing pass under way.
type indexPass struct {
	began time.Time
	// held is the count of the dead-letter queue when the pass began
	// (admin's Progress.Total).
	held   atomic.Int64
	done   chan struct{}
	cancel context.CancelFunc
	err    error
}

func newDeadIndex(adm *admin.Inspector, conn *broker.Conn, cfg deadIndexConfig) *deadIndex {
	cfg.MaxAge = cmp.Or(cfg.MaxAge, 5*time.Minute)
	cfg.MaxEntries = cmp.Or(cfg.MaxEntries, 500_000)
	cfg.PassTimeout = cmp.Or(cfg.PassTimeout, 10*time.Minute)
	cfg.FirstWait = cmp.Or(cfg.FirstWait, 2*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	base, stop := context.WithCancel(context.Background())
	return &deadIndex{adm: adm, conn: conn, cfg: cfg, log: cfg.Logger, base: base, stop: stop, queues: map[string]*queueIndex{}}
}

// close ends every pass under way: their dead letters go back to the broker.
func (x *deadIndex) close() { x.stop() }

// liveCount returns the broker's count of queue's dead letters now.
func (x *deadIndex) liveCount(ctx context.Context, queue string) (int, error) {
	st, err := broker.Inspect(ctx, x.conn, warren.DeadLetterQueue(queue))
	if err != nil {
		if isNotFound(err) {
			return 0, badQueue(queue)
		}
		return 0, err
	}
	return st.Ready, nil
}

func isNotFound(err error) bool { return errors.Is(err, broker.ErrQueueNotFound) }

// deadView is the index of one queue as a request sees it.
type deadView struct {
	Entries   []deadSummary
	Live      int // the broker's count
	Count     int // the count the index was built from
	IndexedAt time.Time
	Stale     bool
	Partial   bool
	// Indexing is set while the first pass runs: Entries are the dead
	// letters it has read so far.
	Indexing bool
}

// get returns queue's index, with the broker's live count. fresh asks for
// an index that matches the broker's count: get then waits for a pass if
// needed; otherwise it waits only when there is no index yet, and starts
// a pass in the background when the index is stale.
func (x *deadIndex) get(ctx context.Context, queue string, fresh bool) (deadView, error) {
	for {
		live, err := x.liveCount(ctx, queue)
		if err != nil {
			return deadView{}, err
		}
		x.mu.Lock()
		qi := x.queue(queue)
		live = qi.total(live)
		stale := !qi.built || qi.dirty || qi.count != live || time.Since(qi.indexedAt) > x.cfg.MaxAge
		v := deadView{Entries: qi.entries, Live: live, Count: qi.count, IndexedAt: qi.indexedAt, Stale: stale, Partial: qi.partial}
		if !stale || (qi.built && !fresh) {
			if stale && qi.pass == nil && qi.holds == 0 && time.Now().After(qi.nextPass) {
				x.start(qi)
			}
			x.mu.Unlock()
			return v, nil
		}
		// Wait: for the actions under way, then for a pass.
		if qi.holds > 0 {
			ch := qi.released
			x.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return deadView{}, ctx.Err()
			}
		}
		p := qi.pass
		if p == nil {
			p = x.start(qi)
		}
		x.mu.Unlock()
		var firstWait <-chan time.Time
		if !fresh {
			t := time.NewTimer(x.cfg.FirstWait)
			firstWait = t.C
			defer t.Stop() // get returns after this select
		}
		select {
		case <-p.done:
		case <-firstWait:
			// A long first pass: answer with what it has read so far.
			if now, err := x.liveCount(ctx, queue); err == nil {
				live = now
			}
			x.mu.Lock()
			v := deadView{Entries: qi.progress, Live: qi.total(live), Count: len(qi.progress), IndexedAt: p.began,
				Stale: true, Partial: true, Indexing: true}
			x.mu.Unlock()
			return v, nil
		case <-ctx.Done():
			return deadView{}, ctx.Err()
		}
		if p.err != nil {
			return deadView{}, p.err
		}
		if !fresh {
			x.mu.Lock()
			v := deadView{Entries: qi.entries, Live: live, Count: qi.count, IndexedAt: qi.indexedAt, Partial: qi.partial}
			v.Stale = qi.dirty || qi.count != live
			x.mu.Unlock()
			return v, nil
		}
		// fresh: check the count again (dead letters may have come meanwhile).
		x.mu.Lock()
		ok := qi.built && !qi.dirty
		cur := qi.count
		v = deadView{Entries: qi.entries, Count: qi.count, IndexedAt: qi.indexedAt, Partial: qi.partial}
		x.mu.Unlock()
		if ok {
			live, err := x.liveCount(ctx, queue)
			if err != nil {
				return deadView{}, err
			}
			v.Live = live
			if live == cur {
				return v, nil
			}
			// Still moving: answer what the pass saw, marked stale,
			// rather than chase a queue that keeps changing.
			v.Stale = true
			return v, nil
		}
	}
}

// total corrects the broker's count of the dead-letter queue while a pass
// of this index runs: RabbitMQ's count then leaves out the few dead letters
// the pass holds (up to about 32), and nothing but new dead letters can
// change the queue (the pass holds its lock), so the count is at least
// what the queue held when the pass began. Called with mu held.
func (qi *queueIndex) total(live int) int {
	if qi.pass != nil {
		return max(live, int(qi.pass.held.Load()))
	}
	return live
}

// queue returns queue's index entry, creating it. Called with mu held.
func (x *deadIndex) queue(name string) *queueIndex {
	qi, ok := x.queues[name]
	if !ok {
		qi = &queueIndex{name: name, released: make(chan struct{})}
		x.queues[name] = qi
	}
	qi.lastUsed = time.Now()
	return qi
}

// start begins a pass over qi's dead-letter queue. Called with mu held.
func (x *deadIndex) start(qi *queueIndex) *indexPass {
	// A pass outlives the request that started it, not the connection
	// or the Server.
	ctx, cancel := context.WithTimeout(x.base, x.cfg.PassTimeout)
	p := &indexPass{began: time.Now(), done: make(chan struct{}), cancel: cancel}
	qi.pass = p
	go func() {
		select {
		case <-x.conn.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	go func() {
		defer cancel()
		began := time.Now()
		entries, count, partial, err := x.scan(ctx, qi)
		took := time.Since(began)
		x.mu.Lock()
		qi.pass, qi.progress = nil, nil
		qi.nextPass = time.Now().Add(max(minRefreshGap, took))
		if err != nil {
			qi.lastErr = err
			x.log.Debug("dashboard: indexing dead letters failed", "queue", qi.name, "err", err)
			x.forget(qi)
		} else {
			qi.entries, qi.count, qi.partial, qi.built, qi.dirty = entries, count, partial, true, false
			qi.indexedAt, qi.lastErr = began, nil
			x.evict(qi)
		}
		p.err = err
		x.mu.Unlock()
		close(p.done)
	}()
	return p
}

// scan reads queue's dead letters once and summarises them, keeping at
// most the entries the budget leaves.
func (x *deadIndex) scan(ctx context.Context, qi *queueIndex) ([]deadSummary, int, bool, error) {
	queue := qi.name
	x.mu.Lock()
	budget := x.cfg.MaxEntries
	first := !qi.built
	x.mu.Unlock()
	var entries []deadSummary
	in := interner{}
	count := 0
	p := qi.pass
	ctx = admin.WithProgress(ctx, func(pr admin.Progress) { p.held.Store(int64(pr.Total)) })
	err := x.adm.Each(ctx, queue, admin.Filter{}, func(dl admin.DeadLetter) error {
		count++
		if len(entries) < budget {
			entries = append(entries, summarize(dl, in))
			if first && len(entries)%512 == 0 {
				// Readers get entries[:n], which this pass never writes again.
				x.mu.Lock()
				qi.progress = entries
				x.mu.Unlock()
			}
		}
		return nil
	})
	if err != nil {
		if isNotFound(err) {
			return nil, 0, false, badQueue(queue)
		}
		return nil, 0, false, fmt.Errorf("indexing the dead letters of %s: %w", queue, err)
	}
	return slices.Clip(entries), count, count > len(entries), nil
}

// evict drops the least recently used indexes (not keep, nor one in use)
// until the entries of all fit MaxEntries. Called with mu held.
func (x *deadIndex) evict(keep *queueIndex) {
	total := 0
	for _, qi := range x.queues {
		total += len(qi.entries)
	}
	for total > x.cfg.MaxEntries {
		var oldest *queueIndex
		for _, qi := range x.queues {
			if qi == keep || qi.pass != nil || qi.holds > 0 || !qi.built {
				continue
			}
			if oldest == nil || qi.lastUsed.Before(oldest.lastUsed) {
				oldest = qi
			}
		}
		if oldest == nil {
			return
		}
		total -= len(oldest.entries)
		delete(x.queues, oldest.name)
	}
}

// hold prepares an action of this dashboard on queue's dead letters
// (which takes the queue's lock): it stops a pass of the index running
// now (cancel) or waits for it to end, and keeps new passes from
// starting until release is called. release takes how the action changed
// the queue: the IDs it removed, and whether it changed anything else.
func (x *deadIndex) hold(ctx context.Context, queue string, cancel bool) (release func(removed []string, changed bool), err error) {
	x.mu.Lock()
	qi := x.queue(queue)
	qi.holds++
	p := qi.pass
	x.mu.Unlock()
	if p != nil {
		if cancel {
			p.cancel()
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			x.unhold(qi, nil, false)
			return nil, ctx.Err()
		}
	}
	var once sync.Once
	return func(removed []string, changed bool) {
		once.Do(func() { x.unhold(qi, removed, changed) })
	}, nil
}

func (x *deadIndex) unhold(qi *queueIndex, removed []string, changed bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if changed {
		qi.dirty = true
		qi.nextPass = time.Time{}
	}
	if len(removed) > 0 && qi.built {
		// Remove one summary for each ID removed, in queue order, as the
		// action did: the index then matches the broker's count again.
		left := make(map[string]int, len(removed))
		for _, id := range removed {
			left[id]++
		}
		kept := make([]deadSummary, 0, max(len(qi.entries)-len(removed), 0))
		dropped := 0
		for _, e := range qi.entries {
			if left[e.ID] > 0 {
				left[e.ID]--
				dropped++
				continue
			}
			kept = append(kept, e)
		}
		qi.entries = kept
		qi.count -= dropped
		if dropped != len(removed) {
			qi.dirty = true // the index did not hold them all
		}
	}
	qi.holds--
	if qi.holds == 0 {
		close(qi.released)
		qi.released = make(chan struct{})
	}
	x.forget(qi)
}

// forget drops qi if it holds nothing and nothing uses it (a queue looked
// up that has no index: missing, or its first pass failed), so that
// requests for many names leave nothing behind. Called with mu held.
func (x *deadIndex) forget(qi *queueIndex) {
	if !qi.built && qi.pass == nil && qi.holds == 0 && x.queues[qi.name] == qi {
		delete(x.queues, qi.name)
	}
}

// deadQuery selects summaries from the index: the list's and the groups'
// filters.
type deadQuery struct {
	IDs          map[string]bool
	Types        map[string]bool
	Error        *regexp.Regexp
	Since, Until time.Time
}

// match reports whether e matches q, and whether the answer is exact
// (false when the error regexp was tried on an error cut short).
func (q deadQuery) match(e *deadSummary) (ok, exact bool) {
	if q.IDs != nil && !q.IDs[e.ID] {
		return false, true
	}
	if q.Types != nil && !q.Types[e.Type] {
		return false, true
	}
	if !q.Since.IsZero() || !q.Until.IsZero() {
		at := e.FailedAt
		if at.IsZero() || (!q.Since.IsZero() && at.Before(q.Since)) || (!q.Until.IsZero() && !at.Before(q.Until)) {
			return false, true
		}
	}
	if q.Error != nil {
		return q.Error.MatchString(e.Error), !e.ErrorTruncated
	}
	return true, true
}

// filter returns the summaries that match q, and whether every answer
// was exact.
func (q deadQuery) filter(entries []deadSummary) ([]*deadSummary, bool) {
	var out []*deadSummary
	exact := true
	for i := range entries {
		ok, ex := q.match(&entries[i])
		exact = exact && ex
		if ok {
			out = append(out, &entries[i])
		}
	}
	return out, exact
}

// groups counts entries as admin.Group does: by error fingerprint or by
// type, largest first, ties in order of appearance.
func groups(entries []*deadSummary, by admin.GroupBy) []admin.Group {
	g := admin.NewGrouper(by)
	for _, e := range entries {
		key := e.Type
		if by == admin.ByError {
			key = e.Fingerprint
		}
		g.Add(key, e.ID, e.Error, e.FailedAt)
	}
	return g.Groups()
}

// sizeofSummary is the fixed size of a deadSummary, without the bytes of
// its strings.
const sizeofSummary = int(unsafe.Sizeof(deadSummary{}))
