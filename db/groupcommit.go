package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Group commit on SQLite's single writer.
//
// Every write transaction (Store.tx) on SQLite is handed to one committer
// goroutine, which owns the writer connection. While a transaction commits,
// the writes that arrive meanwhile queue; the committer then runs all of
// them in one transaction, each inside its own savepoint, and commits once:
// one WAL append and one lock cycle for the group instead of one each. No
// caller hears back before the transaction holding its write has committed.
//
// A write that fails (its function returns an error, or panics) is rolled
// back to its savepoint alone; the others in the group still commit. When
// the group transaction itself is lost (a savepoint that cannot be
// released, an interrupted statement that rolled the whole transaction
// back, a failed COMMIT), nothing of the group was written, and each write
// is run again alone in a transaction of its own: Store.tx's functions
// may be run more than once (PostgreSQL retries them too), so they only
// set their results.
//
// The group takes whatever queued while the previous one committed, up to
// maxGroup writes: a lone write never waits for company.
//
// Every write runs on the committer's goroutine, even a lone one that
// finds the writer idle. Running it on the caller's goroutine instead
// saves two hand-offs but costs more: SQLite's calls go deep, and a
// caller's small stack (a run's goroutine, kept small on purpose: it
// waits for the whole run) grew to hold them, for good. Tried in
// tests/loadgen, that took 1,000 streams' peak RSS from ≈260 to ≈300 MiB
// and made a run's create transaction slower, not faster.
//
// Writes come in two lanes. Foreground writes are those a client waits
// for (a handler's creates and updates, tool outputs); background writes
// are the server's own (a run's progress, the upstream inspector, usage,
// sweeps), marked by Background. A group is filled from the foreground
// lane first, but keeps bgShare of its places for background writes
// while any wait, so that they are never starved. Background writes that
// have waited bgMaxWait go first, in up to half the group: the claim and
// the message-open commits of a streamed run are background, and its
// reader waits on them. In the group's transaction foreground writes run
// first.
//
// PostgreSQL has many writers, and each transaction keeps its own
// connection (grouping them would serialise writers that today run side
// by side), so Store.tx runs there as before.

// maxGroup bounds the writes committed in one transaction. Small on
// purpose: a group answers its writers at once, and a burst of 128 woken
// writers (the first choice) raised the added delay p99 of 1,000
// concurrent streams from ≈1 to ≈30 ms in tests/loadgen, while 8 keeps it
// at ≈1 ms with the same message creates per second (≈5,000 with 16
// clients, against ≈2,000 without grouping).
const maxGroup = 8

// bgShare is how many places of each group background writes keep while
// any are queued: a quarter, at least that share of the writer's
// groups, however busy the foreground lane.
const bgShare = maxGroup / 4

// bgMaxWait is how long a background write waits before it goes ahead
// of foreground writes (in up to half of a group). The writer's capacity
// is shared either way; this sets who waits when it runs short. Measured
// with tests/loadgen's 200 mixed clients on 2 busy cores: without aging,
// message creates p99 ≈95-160 ms but runs' first delta p99 ≈2.4-3.4 s
// (≈1.6-2.6 s before the lanes); 50 ms gave the writes back their ≈200 ms
// p99; 150 ms keeps creates p99 ≈160 ms, first deltas as before the lanes.
const bgMaxWait = 150 * time.Millisecond

// queueDepth is how many writes of one lane may wait for the writer
// before a caller blocks on the queue itself.
const queueDepth = 128

// laneKey marks a context's writes as background work (Background).
type laneKey struct{}

// Background returns ctx with its writes marked as background work: on
// SQLite they queue for the writer behind the writes clients wait for
// (see groupcommit.go). The server's own writers use it: a run's
// progress, the inspector, usage, sweeps. A context of a request being
// served (it carries net/http's ServerContextKey) is left in the
// foreground: a client waits on its writes even when they go through the
// engine (a tool output, a cancel). PostgreSQL ignores the mark.
func Background(ctx context.Context) context.Context {
	if isBackground(ctx) || ctx.Value(http.ServerContextKey) != nil {
		return ctx
	}
	return context.WithValue(ctx, laneKey{}, true)
}

func isBackground(ctx context.Context) bool {
	b, _ := ctx.Value(laneKey{}).(bool)
	return b
}

// groupCommitter runs SQLite's write transactions in groups.
type groupCommitter struct {
	s      *Store
	fg, bg chan *writeReq // the lanes: foreground, background

	mu     sync.RWMutex // held to send on the lanes; Lock to close
	closed bool
	done   chan struct{}

	groups, writes, regrouped atomic.Int64
	waiting                   atomic.Int64 // writes submitted and not yet answered

	now func() time.Time // the clock for bgMaxWait (tests set it)
}

// writeReq is one Store.tx call waiting for its group.
type writeReq struct {
	at   time.Time // queued (background writes)
	ctx  context.Context
	fn   func(*sql.Tx) error
	done chan writeResult
}

type writeResult struct {
	err      error
	panicked bool
	value    any // the panic's value
}

// errStoreClosed answers writes submitted after Store.Close.
var errStoreClosed = errors.New("store closed")

func newGroupCommitter(s *Store) *groupCommitter {
	g := &groupCommitter{s: s, fg: make(chan *writeReq, queueDepth), bg: make(chan *writeReq, queueDepth), done: make(chan struct{}),
		now: time.Now}
	go g.loop()
	return g
}

// do runs fn in a group transaction and returns once that transaction has
// committed (fn's writes are durable) or fn has failed. A panic in fn is
// raised again here, on the caller's goroutine.
func (g *groupCommitter) do(ctx context.Context, fn func(*sql.Tx) error) error {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan writeResult, 1)}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return errStoreClosed
	}
	if isBackground(ctx) {
		req.at = g.now()
		g.bg <- req
	} else {
		g.fg <- req
	}
	g.mu.RUnlock()
	// Once queued, the write is waited for even if ctx ends: the
	// committer skips it if ctx has ended before its turn, but a write
	// already running may commit, and the caller must not hear otherwise.
	res := <-req.done
	if res.panicked {
		panic(res.value)
	}
	return res.err
}

// close runs what is queued and stops the committer.
func (g *groupCommitter) close() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		<-g.done
		return
	}
	g.closed = true
	close(g.fg) // no sender is left: senders hold mu.RLock
	close(g.bg)
	g.mu.Unlock()
	<-g.done
}

func (g *groupCommitter) loop() {
	defer close(g.done)
	fgLane, bgLane := g.fg, g.bg // nil once closed and drained
	// bgq holds background writes taken off their lane, oldest first, so
	// that the oldest one's wait can be seen.
	bgq := make([]*writeReq, 0, queueDepth)
	fg := make([]*writeReq, 0, maxGroup)
	group := make([]*writeReq, 0, maxGroup)
	for fgLane != nil || bgLane != nil || len(bgq) > 0 {
		fg = fg[:0]
		bgq = take(&bgLane, bgq, queueDepth-len(bgq))
		if len(bgq) == 0 {
			if fgLane == nil && bgLane == nil {
				return // closed, and everything written
			}
			// Nothing waits in the background: wait for a write in
			// either lane.
			select {
			case r, ok := <-fgLane:
				if !ok {
					fgLane = nil
					continue
				}
				fg = append(fg, r)
			case r, ok := <-bgLane:
				if !ok {
					bgLane = nil
					continue
				}
				bgq = append(bgq, r)
			}
		}
		// Background writes waiting for bgMaxWait first (up to half the
		// group); then foreground writes, up to the places kept for
		// background ones; background writes next; the places they leave
		// go to the foreground again.
		aged, now := 0, g.now()
		for aged < min(len(bgq), maxGroup/2) && now.Sub(bgq[aged].at) >= bgMaxWait {
			aged++
		}
		fg = take(&fgLane, fg, maxGroup-max(bgShare, aged)-len(fg))
		bg := min(len(bgq), maxGroup-len(fg))
		fg = take(&fgLane, fg, maxGroup-len(fg)-bg)
		group = append(append(group[:0], fg...), bgq[:bg]...)
		bgq = bgq[:copy(bgq, bgq[bg:])]
		clear(bgq[len(bgq):cap(bgq)])
		g.commit(group)
		clear(group)
		clear(fg)
	}
}

// take appends to to up to n more writes waiting in lane, without
// waiting; it sets lane to nil once it is closed and drained.
func take(lane *chan *writeReq, to []*writeReq, n int) []*writeReq {
	for ; n > 0 && *lane != nil; n-- {
		select {
		case r, ok := <-*lane:
			if !ok {
				*lane = nil
				return to
			}
			to = append(to, r)
		default:
			return to
		}
	}
	return to
}

// commit runs one group of writes and answers each.
func (g *groupCommitter) commit(group []*writeReq) {
	live := make([]*writeReq, 0, len(group))
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.done <- writeResult{err: err}
			continue
		}
		live = append(live, r)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		// Alone: a plain transaction, bound to the caller's context as
		// before group commit.
		g.groups.Add(1)
		g.writes.Add(1)
		live[0].done <- g.alone(live[0])
		return
	}
	g.groups.Add(1)
	g.writes.Add(int64(len(live)))
	results, ok := g.together(live)
	if !ok {
		// The group's transaction was lost: nothing of it was written.
		// Each write runs again on its own.
		g.regrouped.Add(1)
		for _, r := range live {
			r.done <- g.alone(r)
		}
		return
	}
	for i, r := range live {
		r.done <- results[i]
	}
}

// alone runs one write in its own transaction.
func (g *groupCommitter) alone(r *writeReq) writeResult {
	return r.run(func() error { return g.s.tx1(r.ctx, r.fn) })
}

// run calls exec for the write unless its context has ended, turning a
// panic into the write's result (raised again on the caller's goroutine).
func (r *writeReq) run(exec func() error) (res writeResult) {
	defer func() {
		if v := recover(); v != nil {
			res = writeResult{panicked: true, value: v}
		}
	}()
	if err := r.ctx.Err(); err != nil {
		return writeResult{err: err}
	}
	return writeResult{err: exec()}
}

// together runs the writes in one transaction, each in a savepoint, and
// commits. ok is false when the transaction was lost (nothing committed);
// otherwise results holds each write's outcome, and the successful ones
// are committed.
func (g *groupCommitter) together(live []*writeReq) (results []writeResult, ok bool) {
	// The transaction belongs to no caller: one caller's cancellation
	// must not roll back the others' writes.
	tx, err := g.s.w.BeginTx(context.Background(), nil)
	if err != nil {
		return nil, false
	}
	results = make([]writeResult, len(live))
	for i, r := range live {
		if _, err := tx.Exec(`SAVEPOINT gc`); err != nil {
			_ = tx.Rollback()
			return nil, false
		}
		res := r.run(func() error { return r.fn(tx) })
		if res.err != nil || res.panicked {
			// Undo this write alone. If its savepoint is gone, SQLite
			// rolled the whole transaction back (an interrupted or
			// failed statement can): the group is lost.
			if _, err := tx.Exec(`ROLLBACK TO gc`); err != nil {
				_ = tx.Rollback()
				return nil, false
			}
		}
		if _, err := tx.Exec(`RELEASE gc`); err != nil {
			_ = tx.Rollback()
			return nil, false
		}
		results[i] = res
	}
	if err := tx.Commit(); err != nil {
		return nil, false
	}
	return results, true
}

// GroupCommitStats are the group committer's counters since the store
// opened (all zero on PostgreSQL).
type GroupCommitStats struct {
	// Groups is the number of write transactions committed or tried.
	Groups int64
	// Writes is the number of Store writes they held.
	Writes int64
	// Regrouped counts groups whose transaction was lost and whose
	// writes were run again one by one.
	Regrouped int64
}

// GroupCommitStats returns the group committer's counters.
// WritesWaiting is how many writes wait for SQLite's writer, or are being
// committed, now; 0 on PostgreSQL.
func (s *Store) WritesWaiting() int {
	if s.gc == nil {
		return 0
	}
	return int(s.gc.waiting.Load())
}

func (s *Store) GroupCommitStats() GroupCommitStats {
	if s.gc == nil {
		return GroupCommitStats{}
	}
	return GroupCommitStats{Groups: s.gc.groups.Load(), Writes: s.gc.writes.Load(), Regrouped: s.gc.regrouped.Load()}
}

// String formats the counters for logs and test failures.
func (st GroupCommitStats) String() string {
	return fmt.Sprintf("%d writes in %d groups (%d regrouped)", st.Writes, st.Groups, st.Regrouped)
}
