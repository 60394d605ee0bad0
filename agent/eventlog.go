package agent

import (
	"context"
	"encoding/json"
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
// change no state, are buffered for at most Config.EventFlush and then
// written in one insert (or with the run's next commit, which comes
// first). Each append notifies db.ChannelEvents as it commits.
//
// The in-memory hub stays the readers' side on every replica: it is fed
// from the log only, never directly, so its ids are the log's seqs on
// every replica. The replica that wrote events hands them to its hub at
// once (deliver); other replicas read them from the store (ingest) when
// the notification arrives, or within a second by polling, for the runs
// and threads their readers follow (watch). On SQLite the engine
// publishes to the hub directly, as before.

// eventLog is the engine's side of the durable log.
type eventLog struct {
	e *Engine

	mu      sync.Mutex
	pending map[string]*deltaBuf // deltas not yet written, by run

	ingestMu sync.Mutex // hands events to the hub in seq order

	ownMu sync.Mutex
	own   map[string][][2]int64 // seq ranges of runs' events this replica wrote (markOwn)

	watchMu sync.Mutex
	runs    map[string]time.Time // runs followed by local readers: last asked for
	threads map[string]time.Time // threads followed by local pages
}

type deltaBuf struct {
	events  []db.RunEvent
	attempt int // the claim the deltas were made under (0: none)
}

func newEventLog(e *Engine) *eventLog {
	return &eventLog{e: e, pending: map[string]*deltaBuf{}, own: map[string][][2]int64{}, runs: map[string]time.Time{}, threads: map[string]time.Time{}}
}

// watchFor is how long a run or thread nobody asks for again stays
// followed.
const watchFor = 10 * time.Minute

// live buffers a delta of runID; it is written within EventFlush.
func (l *eventLog) live(runID, name string, data json.RawMessage) {
	l.e.mu.Lock()
	attempt := l.e.leases[runID]
	l.e.mu.Unlock()
	l.mu.Lock()
	b := l.pending[runID]
	if b == nil {
		b = &deltaBuf{attempt: attempt}
		l.pending[runID] = b
		time.AfterFunc(l.e.cfg.EventFlush, func() { l.flush(runID) })
	}
	b.events = append(b.events, db.RunEvent{Event: name, Data: data})
	l.mu.Unlock()
}

// take removes and returns the run's buffered deltas.
func (l *eventLog) take(runID string) *deltaBuf {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.pending[runID]
	delete(l.pending, runID)
	return b
}

// flush writes the run's buffered deltas, fenced by the claim they were
// made under, in a transaction of their own.
func (l *eventLog) flush(runID string) {
	mu := l.e.lockRun(runID)
	mu.Lock()
	defer mu.Unlock()
	b := l.take(runID)
	if b == nil || len(b.events) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var first int64
	err := l.e.store.Batch(ctx, func(ctx context.Context, tx *db.Tx) error {
		if b.attempt != 0 {
			if err := tx.CheckLease(ctx, runID, l.e.cfg.Replica, b.attempt); err != nil {
				return err
			}
		}
		var err error
		first, err = tx.AppendRunEvents(ctx, runID, b.events)
		return err
	})
	if err != nil {
		if b.attempt != 0 && isLeaseLost(err) {
			l.e.leaseLost(runID)
			return
		}
		l.e.log.Error("write run events", "run_id", runID, "error", err)
		return
	}
	l.deliver(runID, first, b.events)
}

// final writes an event that ends the run's stream for a reason beyond
// its state (the error event of a run whose thread was deleted or could
// not be recorded) after the deltas before it, without the fence: the run
// may be gone.
func (l *eventLog) final(runID, name string, data json.RawMessage) {
	l.flush(runID)
	mu := l.e.lockRun(runID)
	mu.Lock()
	defer mu.Unlock()
	evs := []db.RunEvent{{Event: name, Data: data}}
	first, err := l.e.store.AppendRunEvents(context.Background(), runID, evs)
	if err != nil {
		l.e.log.Error("write run events", "run_id", runID, "error", err)
		return
	}
	l.deliver(runID, first, evs)
}

// deliver hands events this replica appended (from seq first) to its
// hub; if the hub lacks earlier ones (another replica wrote them), it
// reads the log instead.
func (l *eventLog) deliver(runID string, first int64, events []db.RunEvent) {
	l.ingestMu.Lock()
	defer l.ingestMu.Unlock()
	if l.e.hub.Position(runID) == first-1 {
		for i, ev := range events {
			l.hand(runID, ev, l.mine(runID, first+int64(i)))
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
// it, see Hub.Relay); a run that ended is no longer watched.
func (l *eventLog) hand(runID string, ev db.RunEvent, own bool) {
	publish := l.e.hub.Relay
	if own {
		publish = l.e.hub.Publish
	}
	hev := publish(runID, ev.Event, ev.Data)
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
			if ev.Seq != pos+1 {
				return // the log's start was pruned: readers get the store's snapshot
			}
			l.hand(runID, ev, l.mine(runID, ev.Seq))
			pos++
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

// notified handles "<run id>:<seq>" from db.ChannelEvents.
func (l *eventLog) notified(ctx context.Context, payload string) {
	runID, n, _ := strings.Cut(payload, ":")
	seq, err := strconv.ParseInt(n, 10, 64)
	if err != nil {
		return
	}
	l.watchMu.Lock()
	_, watched := l.runs[runID]
	l.watchMu.Unlock()
	if watched && l.e.hub.Position(runID) < seq {
		go l.ingest(ctx, runID)
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
