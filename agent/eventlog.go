package agent

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/assistantd/assistantd/db"
)

// The durable event log (PostgreSQL, Config.EventLog): every event a run
// emits is appended to the store's run_events, so that any replica can
// stream any run. Events of a state change are written in the
// transaction of that change (commit); text and tool-call deltas, which
// change no state, are buffered and written every Config.EventFlush, the
// buffered deltas of all runs in one transaction (or with the run's next
// commit, which comes first). Each append notifies db.ChannelEvents as it
// commits.
//
// The in-memory hub is the readers' side on every replica, and its ids
// are the log's seqs on every replica. The replica executing a run shows
// its deltas to its own readers at once, before they are written: the
// log's head (db.RunAppend) is reserved a block ahead of what this
// replica wrote, and a delta takes the next seq of the reservation as it
// arrives. The flush writes it with that seq, unless someone else
// appended to the run's log meanwhile (a cancel through another replica,
// a new owner after a takeover): then the log has moved past the shown
// deltas, they are never written, and the run's next events come after
// the head. A seq once shown is never given to another event: whoever
// appends without this replica's reservation numbers after its head. So
// a reader that saw deltas of an executor killed before they were written
// resumes (Last-Event-ID) after them, with nothing seen twice; the new
// owner ends the interrupted message for it (resumeInterrupted). Readers
// skip the seqs reserved and never written.
//
// Events another replica wrote reach the hub from the store (ingest) when
// the notification arrives, or within a second by polling, for the runs
// and threads their readers follow (watch). On SQLite the engine
// publishes to the hub directly, as before.

// eventLog is the engine's side of the durable log.
type eventLog struct {
	e *Engine

	mu       sync.Mutex
	pending  map[string]*deltaBuf    // deltas not yet written, by run
	seqs     map[string]*reservation // the log heads this replica reserved, by run
	flushing map[string]bool         // runs whose deltas a flush under way writes

	ingestMu sync.Mutex // hands events to the hub in seq order

	ownMu sync.Mutex
	own   map[string][][2]int64 // seq ranges of runs' events this replica wrote (markOwn)

	watchMu sync.Mutex
	runs    map[string]time.Time // runs followed by local readers: last asked for
	threads map[string]time.Time // threads followed by local pages
}

// deltaBuf is a run's deltas waiting to be written.
type deltaBuf struct {
	shown   []db.RunEvent // numbered in the reservation, already in the hub
	unshown []db.RunEvent // not numbered yet
	attempt int           // the claim the deltas were made under (0: none)
}

// reservation is the part of a run's log this replica may number events
// in: up to head, from next.
type reservation struct {
	head, next int64
	// busy is set while a write of the run's events (a flush or a
	// commit) is under way, and closed when it is done; nil otherwise.
	busy chan struct{}
	// commit: the write under way numbers the run's next events itself,
	// so deltas wait (unshown) until it is done.
	commit bool
}

// reserveAhead is how many seqs the executing replica reserves beyond what
// it wrote: the deltas it may show before its next write.
const reserveAhead = 256

func newEventLog(e *Engine) *eventLog {
	return &eventLog{e: e, pending: map[string]*deltaBuf{}, seqs: map[string]*reservation{}, flushing: map[string]bool{}, own: map[string][][2]int64{},
		runs: map[string]time.Time{}, threads: map[string]time.Time{}}
}

// watchFor is how long a run or thread nobody asks for again stays
// followed.
const watchFor = 10 * time.Minute

// live buffers a delta of runID, written within EventFlush; while the run
// has a reservation here it is shown to this replica's readers at once.
func (l *eventLog) live(runID, name string, data json.RawMessage) {
	l.e.mu.Lock()
	attempt := l.e.leases[runID]
	l.e.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.pending[runID]
	if b == nil {
		b = &deltaBuf{attempt: attempt}
		l.pending[runID] = b
	}
	ev := db.RunEvent{Event: name, Data: data}
	if r := l.seqs[runID]; r != nil && !r.commit && len(b.unshown) == 0 && r.next <= r.head &&
		l.e.hub.PublishAt(runID, r.next, name, data, true, true) {
		ev.Seq = r.next
		r.next++
		b.shown = append(b.shown, ev)
		return
	}
	b.unshown = append(b.unshown, ev)
}

// maxFlushes bounds the flushes under way at once: when the database is
// slow, a tick's flush starts while the last one's still commits (each
// writes other runs), rather than every run's deltas waiting for it.
const maxFlushes = 4

// flusher writes the buffered deltas every EventFlush, and once more as
// the engine stops.
func (l *eventLog) flusher(ctx context.Context) {
	t := time.NewTicker(l.e.cfg.EventFlush)
	defer t.Stop()
	slots := make(chan struct{}, maxFlushes)
	var wg sync.WaitGroup
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			l.flushAll(context.WithoutCancel(ctx))
			return
		case <-t.C:
		}
		select {
		case slots <- struct{}{}:
			wg.Go(func() {
				defer func() { <-slots }()
				l.flushAll(ctx)
			})
		default: // as many flushes as allowed are under way: the next tick
		}
	}
}

// flushAll writes every run's buffered deltas in one transaction, each
// run's fenced by the claim they were made under. A run whose commit or
// another flush is under way is left to it.
func (l *eventLog) flushAll(ctx context.Context) {
	l.mu.Lock()
	var as []db.RunAppend
	var rs []*reservation // the reservation each append numbered in (nil: none)
	for id, b := range l.pending {
		r := l.seqs[id]
		if r != nil && r.busy != nil || l.flushing[id] {
			continue
		}
		delete(l.pending, id)
		l.flushing[id] = true
		a := db.RunAppend{RunID: id, Shown: b.shown, Events: b.unshown, Attempt: b.attempt}
		if r != nil {
			a.Head, a.Next = r.head, r.next
			r.next += int64(len(b.unshown))
			r.busy = make(chan struct{})
			if b.attempt != 0 {
				a.Reserve = reserveAhead
			}
		}
		as = append(as, a)
		rs = append(rs, r)
	}
	l.mu.Unlock()
	if len(as) == 0 {
		return
	}
	defer func() {
		l.mu.Lock()
		for _, a := range as {
			delete(l.flushing, a.RunID)
		}
		l.mu.Unlock()
	}()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := l.e.store.AppendRunLogs(wctx, l.e.cfg.Replica, as)
	if err != nil {
		if ctx.Err() == nil {
			l.e.log.Error("write run events", "runs", len(as), "error", err)
		}
		// Unknown whether they were written: the runs' next events are
		// numbered after the log's head, whatever it is.
		l.mu.Lock()
		for i, a := range as {
			if r := rs[i]; r != nil {
				if r.busy != nil {
					close(r.busy)
					r.busy = nil
				}
				if l.seqs[a.RunID] == r {
					delete(l.seqs, a.RunID)
				}
			}
		}
		l.mu.Unlock()
		return
	}
	for i, a := range as {
		got := res[i]
		if got.Ended { // deltas after the run's end (the inspector's): not written, as with a commit's fence
			l.wrote(a.RunID, rs[i], nil, false)
			continue
		}
		if got.Lost || got.Gone {
			l.wrote(a.RunID, rs[i], nil, false)
			l.forget(a.RunID)
			if got.Gone { // deleted with its thread, as renewal finds it
				l.e.stopHeld(a.RunID, a.Attempt, errThreadDeleted)
			} else {
				l.e.leaseLost(a.RunID)
			}
			continue
		}
		l.deliver(a.RunID, got.Prev, got.Events)
		l.wrote(a.RunID, rs[i], &got, false)
	}
}

// wrote updates the run's reservation after a write (got; nil if the
// write appended nothing) and ends the write. A commit numbered the run's
// next events itself; a flush numbered them as it took them.
func (l *eventLog) wrote(runID string, r *reservation, got *db.RunAppended, commit bool) {
	if r == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.busy != nil {
		close(r.busy)
		r.busy = nil
	}
	r.commit = false
	if l.seqs[runID] != r {
		return // forgotten meanwhile
	}
	switch {
	case got == nil:
	case !got.Kept:
		// Someone else appended: the deltas shown meanwhile, numbered
		// in the old reservation, can no longer be written in order.
		if b := l.pending[runID]; b != nil {
			b.shown = nil
		}
		fallthrough
	case commit:
		r.next = got.Prev + int64(len(got.Events)) + 1
	}
	if got != nil {
		r.head = got.Head
	}
	l.showPending(runID, r)
}

// showPending numbers and shows the run's deltas that arrived while a
// write was under way, as far as the reservation goes. Callers hold l.mu,
// and have handed the write's events to the hub.
func (l *eventLog) showPending(runID string, r *reservation) {
	b := l.pending[runID]
	if b == nil {
		return
	}
	for len(b.unshown) > 0 && r.next <= r.head {
		ev := b.unshown[0]
		if !l.e.hub.PublishAt(runID, r.next, ev.Event, ev.Data, true, true) {
			return
		}
		ev.Seq = r.next
		r.next++
		b.shown = append(b.shown, ev)
		b.unshown = b.unshown[1:]
	}
}

// forget drops the run's reservation here (its execution here ended).
func (l *eventLog) forget(runID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.seqs, runID) // a write under way ends it (wrote)
}

// logWrite is a commit's write of the run's events: the buffered deltas
// it took, and the reservation it numbers in.
type logWrite struct {
	runID   string
	buf     *deltaBuf
	res     *reservation // nil: none here
	reserve bool         // this replica executes the run: reserve ahead
}

// begin starts a commit's write of the run's events (callers hold the
// run's lock): it waits for a flush of the run under way, then takes the
// run's buffered deltas; until end, the run's deltas wait unshown.
func (l *eventLog) begin(runID string) *logWrite {
	l.e.mu.Lock()
	_, held := l.e.leases[runID]
	l.e.mu.Unlock()
	for {
		l.mu.Lock()
		r := l.seqs[runID]
		if r == nil && held {
			r = &reservation{}
			l.seqs[runID] = r
		}
		if r != nil && r.busy != nil {
			busy := r.busy
			l.mu.Unlock()
			<-busy
			continue
		}
		w := &logWrite{runID: runID, buf: l.pending[runID], res: r, reserve: held}
		delete(l.pending, runID)
		if r != nil {
			r.busy, r.commit = make(chan struct{}), true
		}
		l.mu.Unlock()
		return w
	}
}

// append is the commit's append of the buffered deltas and then events.
func (w *logWrite) append(events []db.RunEvent) db.RunAppend {
	a := db.RunAppend{RunID: w.runID}
	if w.buf != nil {
		a.Shown = w.buf.shown
		a.Events = append(a.Events, w.buf.unshown...)
	}
	a.Events = append(a.Events, events...)
	if w.res != nil {
		a.Head, a.Next = w.res.head, w.res.next
	}
	if w.reserve {
		a.Reserve = reserveAhead
	}
	return a
}

// end ends a commit's write: written (err nil) with got (nil: nothing to
// append), or not, when its deltas go back to the buffer, first.
func (l *eventLog) end(w *logWrite, got *db.RunAppended, err error) {
	if err != nil {
		l.mu.Lock()
		if w.buf != nil && !errors.Is(err, db.ErrLeaseLost) {
			if b := l.pending[w.runID]; b != nil {
				w.buf.unshown = append(w.buf.unshown, b.unshown...)
				w.buf.shown = append(w.buf.shown, b.shown...)
			}
			l.pending[w.runID] = w.buf
		}
		if r := w.res; r != nil && r.busy != nil {
			close(r.busy)
			r.busy, r.commit = nil, false
		}
		l.mu.Unlock()
		return
	}
	l.wrote(w.runID, w.res, got, true)
}

// final writes an event that ends the run's stream for a reason beyond
// its state (the error event of a run whose thread was deleted or could
// not be recorded) after the deltas before it, without the fence: the run
// may be gone.
func (l *eventLog) final(runID, name string, data json.RawMessage) {
	mu := l.e.lockRun(runID)
	mu.Lock()
	defer mu.Unlock()
	w := l.begin(runID)
	w.reserve = false
	var got db.RunAppended
	err := l.e.store.Batch(context.Background(), func(ctx context.Context, tx *db.Tx) error {
		var err error
		got, err = tx.AppendRunLog(ctx, w.append([]db.RunEvent{{Event: name, Data: data}}))
		return err
	})
	if err == nil {
		l.deliver(runID, got.Prev, got.Events)
	}
	l.end(w, &got, err)
	if err != nil {
		l.e.log.Error("write run events", "run_id", runID, "error", err)
	}
}

// deliver hands events this replica appended (after seq prev) to its
// hub; if the hub lacks earlier ones (another replica wrote them), it
// reads the log instead.
func (l *eventLog) deliver(runID string, prev int64, events []db.RunEvent) {
	if len(events) == 0 {
		return
	}
	l.ingestMu.Lock()
	defer l.ingestMu.Unlock()
	if l.e.hub.Position(runID) == prev {
		for _, ev := range events {
			l.hand(runID, ev, l.mine(runID, ev.Seq))
		}
		return
	}
	l.ingestLocked(context.Background(), runID)
}

// markOwn records, inside the transaction appending them, that the
// run's events from seq first to last are this replica's: whichever way
// they reach the hub (handed over after the commit, or read back first
// because this replica's own notification or poll came sooner), the run
// metrics count them here.
func (l *eventLog) markOwn(runID string, first, last int64) {
	l.ownMu.Lock()
	l.own[runID] = append(l.own[runID], [2]int64{first, last})
	l.ownMu.Unlock()
}

// mine reports whether this replica wrote the run's event seq, and
// forgets the ranges it has passed.
func (l *eventLog) mine(runID string, seq int64) bool {
	l.ownMu.Lock()
	defer l.ownMu.Unlock()
	rs := l.own[runID]
	for len(rs) > 0 && rs[0][1] < seq {
		rs = rs[1:]
	}
	mine := len(rs) > 0 && rs[0][0] <= seq
	if len(rs) == 0 {
		delete(l.own, runID)
	} else {
		l.own[runID] = rs
	}
	return mine
}

// hand publishes one logged event to the hub (own: this replica wrote
// it, see Hub.Relay) unless the hub has it already; a run that ended is
// no longer watched.
func (l *eventLog) hand(runID string, ev db.RunEvent, own bool) {
	if !l.e.hub.PublishAt(runID, ev.Seq, ev.Event, ev.Data, own, false) {
		return
	}
	hev := Event{Name: ev.Event}
	if hev.EndsSegment() && hev.Name != "thread.run.requires_action" {
		l.watchMu.Lock()
		delete(l.runs, runID)
		l.watchMu.Unlock()
	}
}

// ingest reads the run's events the hub lacks from the log.
func (l *eventLog) ingest(ctx context.Context, runID string) {
	l.ingestMu.Lock()
	defer l.ingestMu.Unlock()
	l.ingestLocked(ctx, runID)
}

func (l *eventLog) ingestLocked(ctx context.Context, runID string) {
	for {
		pos := l.e.hub.Position(runID)
		evs, err := l.e.store.RunEvents(ctx, runID, pos, 1000)
		if err != nil {
			if ctx.Err() == nil {
				l.e.log.Warn("read run events", "run_id", runID, "error", err)
			}
			return
		}
		for _, ev := range evs {
			if pos == 0 && ev.Seq != 1 {
				return // the log's start was pruned: readers get the store's snapshot
			}
			l.hand(runID, ev, l.mine(runID, ev.Seq))
			pos = max(pos, ev.Seq)
		}
		if len(evs) < 1000 {
			return
		}
	}
}

// watchRun makes this replica follow the run's log for a local reader,
// and reads what it holds so far.
func (l *eventLog) watchRun(runID string) {
	l.watchMu.Lock()
	l.runs[runID] = time.Now()
	l.watchMu.Unlock()
	l.ingest(context.Background(), runID)
}

// watchThread makes this replica follow the thread's runs (those started
// in the last watchFor) for a local page, and reads their logs.
func (l *eventLog) watchThread(threadID string) {
	l.watchMu.Lock()
	l.threads[threadID] = time.Now()
	l.watchMu.Unlock()
	l.pollThread(context.Background(), threadID)
}

func (l *eventLog) pollThread(ctx context.Context, threadID string) {
	since := l.e.store.Now() - int64(watchFor/time.Second)
	ids, err := l.e.store.ThreadLoggedRuns(ctx, threadID, since)
	if err != nil {
		if ctx.Err() == nil {
			l.e.log.Warn("read thread runs", "thread_id", threadID, "error", err)
		}
		return
	}
	for _, id := range ids {
		if !l.e.hub.Logged(id) {
			l.watchRun(id)
		}
	}
}

// notified handles "<run id>:<seq> …" from db.ChannelEvents.
func (l *eventLog) notified(ctx context.Context, payload string) {
	for item := range strings.FieldsSeq(payload) {
		runID, n, _ := strings.Cut(item, ":")
		seq, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			continue
		}
		l.watchMu.Lock()
		_, watched := l.runs[runID]
		l.watchMu.Unlock()
		if watched && l.e.hub.Position(runID) < seq {
			go l.ingest(ctx, runID)
		}
	}
}

// poll reads, every second, what notifications may have missed: the
// watched runs' new events and the watched threads' new runs.
func (l *eventLog) poll(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		l.watchMu.Lock()
		var runs, threads []string
		for id, at := range l.runs {
			if now.Sub(at) > watchFor {
				delete(l.runs, id)
				continue
			}
			runs = append(runs, id)
		}
		for id, at := range l.threads {
			if now.Sub(at) > watchFor {
				delete(l.threads, id)
				continue
			}
			threads = append(threads, id)
		}
		l.watchMu.Unlock()
		for _, id := range runs {
			l.ingest(ctx, id)
		}
		for _, id := range threads {
			l.pollThread(ctx, id)
		}
	}
}

// liveEvent emits an event that changes no state (a delta, an upstream
// exchange): into the durable log's buffer, or straight to the hub.
func (e *Engine) liveEvent(runID, name string, data json.RawMessage) {
	if e.elog != nil {
		e.elog.live(runID, name, data)
		return
	}
	e.hub.Publish(runID, name, data)
}

// eventSink is where the upstream inspector announces exchanges.
type eventSink interface {
	Append(runID, name string, data json.RawMessage) bool
}

// durableSink appends the inspector's events to the durable log of runs
// still executing here.
type durableSink struct{ e *Engine }

func (s durableSink) Append(runID, name string, data json.RawMessage) bool {
	s.e.mu.Lock()
	_, held := s.e.leases[runID]
	s.e.mu.Unlock()
	if !held {
		return false
	}
	s.e.elog.live(runID, name, data)
	return true
}

func (e *Engine) sink() eventSink {
	if e.elog != nil {
		return durableSink{e}
	}
	return e.hub
}

// toRunEvents converts a commit's events for the log.
func toRunEvents(events []pendingEvent) []db.RunEvent {
	out := make([]db.RunEvent, len(events))
	for i, ev := range events {
		out[i] = db.RunEvent{Event: ev.name, Data: ev.data}
	}
	return out
}
