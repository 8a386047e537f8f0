package admin

import "context"

// Progress is how far a long operation has got, as told to the function
// given to WithProgress.
type Progress struct {
	// Op names the operation: "list" (List, Get and Each), "replay",
	// "purge", "export" or "import".
	Op string
	// Total is what the operation goes through: the dead letters the queue
	// held when it began (it may find fewer), or for Import the records of
	// its input. Read counts those it has gone through so far.
	Total, Read int
	// Done counts the dead letters listed, replayed (confirmed), purged,
	// exported (written and flushed) or imported (confirmed) so far.
	Done int
	// Skipped counts those read and not selected, or for Import the
	// records already in the target queue.
	Skipped int
	// Failed counts the dead letters that could not be replayed, or the
	// records that could not be imported.
	Failed int
}

type progressKey struct{}

// WithProgress returns a copy of ctx that makes the operations run with
// it (Each, List, Get, Replay, Purge, Export, Import) call fn as they go:
// after each dead letter or record, and once at the end. fn runs in the
// operation's goroutine, so it must return quickly: throttle any drawing.
// The operation's own lock and reads wait while it runs.
func WithProgress(ctx context.Context, fn func(Progress)) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

// progressOf returns ctx's progress function, or one that does nothing.
func progressOf(ctx context.Context, op string) func(Progress) {
	fn, _ := ctx.Value(progressKey{}).(func(Progress))
	if fn == nil {
		return func(Progress) {}
	}
	return func(p Progress) {
		p.Op = op
		fn(p)
	}
}
