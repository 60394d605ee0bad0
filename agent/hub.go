package agent

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assistantd/assistantd/telemetry"
)

// Event is one Assistants streaming event of a run: the SSE event name and
// its data (the full object, or a delta). ID orders a run's events from 1;
// with the durable event log the ids are the log's seqs, which may skip
// numbers (see eventlog.go), so readers compare ids, never count them.
type Event struct {
	ID   int64
	Name string
	Data json.RawMessage
}

// EndsSegment reports whether a stream reading this event should close:
// the run now waits for tool outputs or has finished.
func (e Event) EndsSegment() bool {
	switch e.Name {
	case "error", "thread.run.requires_action", "thread.run.completed", "thread.run.incomplete", "thread.run.failed",
		"thread.run.cancelled", "thread.run.expired":
		return true
	}
	return false
}

// Internal reports whether the event is assistantd's own (upstream
// exchanges for the web app's timeline): the API's streams skip them, so
// SDKs see only OpenAI's event names.
func (e Event) Internal() bool { return len(e.Name) > 11 && e.Name[:11] == "assistantd." }

// The model's reasoning as it streams: the Assistants API has no place for
// it (its streams skip these, as Internal), a response shows it as a
// reasoning item.
const (
	EventReasoningDelta = "assistantd.reasoning.delta"
	EventReasoningDone  = "assistantd.reasoning.done"
)

// ReasoningEvent is the data of the reasoning events: a fragment (Delta),
// or at the end the whole text.
type ReasoningEvent struct {
	ID    string `json:"id"`
	RunID string `json:"run_id"`
	Delta string `json:"delta,omitempty"`
	Text  string `json:"text,omitempty"`
}

// Hub keeps each active run's event log in memory and lets any number of
// readers follow it. A reader starts at any position: from 0 it replays the
// whole run so far (a consistent snapshot, since the log is append-only)
// and then receives live events, with nothing lost or duplicated. Readers
// never slow the writer down: each keeps its own cursor into the log.
//
// The hub also knows which thread each logged run belongs to (from the
// run's first events), so a page can follow a thread and see runs started
// anywhere (the API, another tab) as they appear.
//
// Only Publish creates a log: a reader of a run the hub has no log for
// (finished and dropped, from before a restart, or unknown) waits for one
// to appear instead of creating it, so readers never leak logs.
type Hub struct {
	mu     sync.Mutex
	logs   map[string]*runLog
	runs   map[string][]string // thread id → its logged runs, oldest first
	born   chan struct{}       // closed and replaced whenever a log is created or learns its thread
	retain time.Duration
	// awaiting are the readers waiting, through Notify, for a run's log
	// to appear (by run id).
	awaiting map[string][]*Subscription
	// metrics, when set, learns runs' queue waits and ends from their
	// events (see observe).
	metrics *telemetry.Metrics
}

type runLog struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{}   // closed and replaced on every append
	waiters []*Subscription // readers to wake (Notify) on the next append
	ended   bool            // the run is terminal; the log will be dropped
	thread  string          // the run's thread, once an event named it
	created time.Time       // when thread.run.created was published here
	queued  time.Time       // when the run was last queued, until a worker took it
}

// NewHub returns a hub that keeps a finished run's log for retain before
// dropping it.
func NewHub(retain time.Duration) *Hub {
	return &Hub{logs: map[string]*runLog{}, runs: map[string][]string{}, born: make(chan struct{}), retain: retain,
		awaiting: map[string][]*Subscription{}}
}

// wake tells readers waiting for a log to appear to look again. Callers
// hold h.mu.
func (h *Hub) wake() {
	close(h.born)
	h.born = make(chan struct{})
}

// find returns the run's log, or nil; it creates nothing.
func (h *Hub) find(runID string) *runLog {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logs[runID]
}

// threadOf reads the thread id out of a run's event data: run, step and
// message objects carry thread_id. thread.created (the first event of
// create-thread-and-run) is the thread itself.
func threadOf(name string, data json.RawMessage) string {
	var v struct {
		ID       string `json:"id"`
		Object   string `json:"object"`
		ThreadID string `json:"thread_id"`
	}
	if json.Unmarshal(data, &v) != nil {
		return ""
	}
	if v.ThreadID != "" {
		return v.ThreadID
	}
	if name == "thread.created" && v.Object == "thread" {
		return v.ID
	}
	return ""
}

// Publish appends an event to the run's log and wakes its readers.
func (h *Hub) Publish(runID, name string, data json.RawMessage) Event {
	ev, _ := h.publish(runID, name, data, true, true)
	return ev
}

// Relay appends an event another replica wrote (read from the durable
// log) to the run's log: it wakes readers as Publish does, but the run
// metrics are the writer's to count, not every reader's.
func (h *Hub) Relay(runID, name string, data json.RawMessage) Event {
	ev, _ := h.publish(runID, name, data, true, false)
	return ev
}

func (h *Hub) publish(runID, name string, data json.RawMessage, create, own bool) (Event, bool) {
	return h.publishAt(runID, 0, name, data, create, own, false)
}

// PublishAt appends an event with id seq (the durable log's seq) to the
// run's log, creating the log, if seq comes after the log's latest event:
// right after it when next is set, else anywhere after (the log skipped
// numbers). It reports whether it appended; an event the hub already has,
// or one that would be out of order, is left out.
func (h *Hub) PublishAt(runID string, seq int64, name string, data json.RawMessage, own, next bool) bool {
	_, ok := h.publishAt(runID, seq, name, data, true, own, next)
	return ok
}

// publishAt appends an event (id seq, or the next id if seq is 0).
func (h *Hub) publishAt(runID string, seq int64, name string, data json.RawMessage, create, own, next bool) (Event, bool) {
	h.mu.Lock()
	l, ok := h.logs[runID]
	if !ok && !create {
		h.mu.Unlock()
		return Event{}, false
	}
	var born []*Subscription
	if !ok {
		l = &runLog{changed: make(chan struct{})}
		h.logs[runID] = l
		h.wake()
		born = h.awaiting[runID]
		delete(h.awaiting, runID)
	}
	if l.thread == "" {
		// Only a run's first events are parsed: every run announces its
		// thread in thread.created or thread.run.created.
		if t := threadOf(name, data); t != "" {
			l.thread = t
			h.runs[t] = append(h.runs[t], runID)
			h.wake()
		}
	}
	h.mu.Unlock()

	l.mu.Lock()
	last := l.last()
	switch {
	case seq == 0:
		seq = last + 1
	case seq <= last || next && seq != last+1:
		l.mu.Unlock()
		return Event{}, false
	}
	ev := Event{ID: seq, Name: name, Data: data}
	l.events = append(l.events, ev)
	close(l.changed)
	l.changed = make(chan struct{})
	terminal := ev.EndsSegment() && ev.Name != "thread.run.requires_action"
	if h.metrics != nil {
		h.observe(l, ev, terminal && !l.ended, own)
	}
	if terminal && !l.ended {
		l.ended = true
		time.AfterFunc(h.retain, func() { h.drop(runID, l) })
	}
	woken := l.waiters
	l.waiters = nil
	l.mu.Unlock()
	for _, s := range born {
		s.fire()
	}
	for _, s := range woken {
		s.fire()
	}
	return ev, true
}

// observe feeds the metrics from a run's events: the time between
// thread.run.queued and thread.run.in_progress is a queue wait; a terminal
// event ends the run, whose age is taken from thread.run.created when this
// process saw it, else from the run's created_at. Only events this
// process wrote (own) are counted, so that with replicas each run is
// counted once, by the replica that started or ended it, however many
// replicas' readers follow it. Callers hold l.mu.
func (h *Hub) observe(l *runLog, ev Event, ends, own bool) {
	now := time.Now()
	switch {
	case ev.Name == "thread.run.created":
		l.created = now
	case ev.Name == "thread.run.queued":
		l.queued = now
	case ev.Name == "thread.run.in_progress" && !l.queued.IsZero():
		if own {
			h.metrics.RunQueued(now.Sub(l.queued))
		}
		l.queued = time.Time{}
	case ends && own && strings.HasPrefix(ev.Name, "thread.run."):
		start := l.created
		if start.IsZero() {
			var r struct {
				CreatedAt int64 `json:"created_at"`
			}
			if json.Unmarshal(ev.Data, &r) != nil || r.CreatedAt == 0 {
				return
			}
			start = time.Unix(r.CreatedAt, 0)
		}
		h.metrics.RunFinished(strings.TrimPrefix(ev.Name, "thread.run."), now.Sub(start))
	}
}

// Append publishes an event to the run's log only if the hub holds one,
// and reports whether it did. Writers that may come late (the upstream
// inspector's, after the run has ended and its log was dropped) use it so
// they never create a log that nothing would drop.
func (h *Hub) Append(runID, name string, data json.RawMessage) bool {
	_, ok := h.publish(runID, name, data, false, true)
	return ok
}

func (h *Hub) drop(runID string, l *runLog) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.logs[runID] != l {
		return
	}
	delete(h.logs, runID)
	if l.thread != "" {
		runs := h.runs[l.thread]
		for i, id := range runs {
			if id == runID {
				runs = append(runs[:i:i], runs[i+1:]...)
				break
			}
		}
		if len(runs) == 0 {
			delete(h.runs, l.thread)
		} else {
			h.runs[l.thread] = runs
		}
	}
}

// Position returns the id of the run's latest event (0 if none): a reader
// that subscribes after it sees only what comes next. It creates nothing.
func (h *Hub) Position(runID string) int64 {
	l := h.find(runID)
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last()
}

// last is the id of the log's latest event (0 if none). Callers hold l.mu.
func (l *runLog) last() int64 {
	if len(l.events) == 0 {
		return 0
	}
	return l.events[len(l.events)-1].ID
}

// Logged reports whether the hub holds the run's event log.
func (h *Hub) Logged(runID string) bool { return h.find(runID) != nil }

// ThreadRuns returns the runs of the thread the hub holds logs for, in the
// order they first published.
func (h *Hub) ThreadRuns(threadID string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.runs[threadID]...)
}

// WaitThread waits until the thread has a logged run that is not in known
// (its runs as last seen), or ctx ends, and returns the thread's runs.
func (h *Hub) WaitThread(ctx context.Context, threadID string, known []string) ([]string, error) {
	seen := map[string]bool{}
	for _, id := range known {
		seen[id] = true
	}
	for {
		h.mu.Lock()
		runs := h.runs[threadID]
		born := h.born
		fresh := false
		for _, id := range runs {
			fresh = fresh || !seen[id]
		}
		out := append([]string(nil), runs...)
		h.mu.Unlock()
		if fresh {
			return out, nil
		}
		select {
		case <-born:
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}

// Subscription reads a run's events in order.
type Subscription struct {
	hub   *Hub
	runID string
	log   *runLog // nil until the run has a log
	after int64   // id of the last event read
	next  int     // index of the next event to read in log; -1: not yet found

	// load, when set, builds the run's state from the store for a reader
	// the hub has no log for; see Follow.
	load     func(ctx context.Context) ([]Event, error)
	snapshot []Event
	finished bool // the snapshot showed a finished run

	// wake is what Notify arranged to call, until it is called.
	wake atomic.Pointer[func()]
}

// Subscribe returns a reader of the run's events with ids greater than
// after. If the hub has no log for the run yet, the reader waits for the
// run's first event; it never creates a log itself.
func (h *Hub) Subscribe(runID string, after int64) *Subscription {
	return &Subscription{hub: h, runID: runID, log: h.find(runID), after: max(after, 0), next: -1}
}

// Follow returns a reader of the run's events after `after` that also
// serves a run whose log is gone: finished and dropped, or from before a
// restart. Then it first yields the events load builds from the store
// (the run's state as one consistent snapshot, with ID 0), and afterwards
// the run's live events should it publish again, from its new log's
// start. A snapshot that ends the segment (a finished run) ends the
// reading: Next returns ErrFinished.
func (h *Hub) Follow(runID string, after int64, load func(ctx context.Context) ([]Event, error)) *Subscription {
	s := h.Subscribe(runID, after)
	s.load = load
	return s
}

// ErrFinished is returned by Next after a snapshot of a finished run.
var ErrFinished = errFinished{}

type errFinished struct{}

func (errFinished) Error() string { return "the run has finished" }

// ErrIdle is returned by NextBefore when its idle channel fires first.
var ErrIdle = errors.New("no event before the idle deadline")

// Next returns the next event, waiting for it until ctx is done.
func (s *Subscription) Next(ctx context.Context) (Event, error) { return s.NextBefore(ctx, nil) }

// NextBefore is Next that gives up with ErrIdle when idle delivers first
// (a stream's heartbeat timer, reused across events: a context with a
// deadline per event costs a timer and a context each, and grows the
// stream's context's list of children). Next may be called again after
// ErrIdle.
func (s *Subscription) NextBefore(ctx context.Context, idle <-chan time.Time) (Event, error) {
	if len(s.snapshot) > 0 || s.log == nil {
		if ev, err, ok := s.beforeLog(ctx, idle); ok {
			return ev, err
		}
	}
	for {
		s.log.mu.Lock()
		if s.ready() {
			ev := s.log.events[s.next]
			s.log.mu.Unlock()
			s.next++
			s.after = ev.ID
			return ev, nil
		}
		changed := s.log.changed
		s.log.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-idle:
			return Event{}, ErrIdle
		}
	}
}

// beforeLog serves what comes before the run's live log: the snapshot,
// then waiting for the log to appear. ok is false once the log is there
// with no snapshot left to serve (NextBefore reads it then). It is
// NextBefore's slow path, apart so that the frame beneath a waiting
// stream stays small.
func (s *Subscription) beforeLog(ctx context.Context, idle <-chan time.Time) (ev Event, err error, ok bool) {
	if len(s.snapshot) > 0 {
		ev := s.snapshot[0]
		s.snapshot = s.snapshot[1:]
		return ev, nil, true
	}
	for s.log == nil {
		h := s.hub
		h.mu.Lock()
		s.log = h.logs[s.runID]
		born := h.born
		h.mu.Unlock()
		if s.log != nil {
			break
		}
		if s.load != nil {
			evs, err := s.load(ctx)
			if err != nil {
				return Event{}, err, true
			}
			// Live events after the snapshot come from a new log: from
			// its start.
			s.load, s.snapshot, s.after, s.next = nil, evs, 0, -1
			if n := len(evs); n > 0 {
				last := evs[n-1]
				s.finished = last.EndsSegment() && last.Name != "thread.run.requires_action"
			}
			if len(evs) > 0 {
				ev, err := s.NextBefore(ctx, idle)
				return ev, err, true
			}
			continue
		}
		if s.finished {
			return Event{}, ErrFinished, true
		}
		select {
		case <-born:
		case <-ctx.Done():
			return Event{}, ctx.Err(), true
		case <-idle:
			return Event{}, ErrIdle, true
		}
	}
	return Event{}, nil, false
}

// TryNext returns the next event if one is there, without waiting: it is
// for readers driven by Notify rather than by a goroutine of their own.
// It serves subscriptions made by Subscribe (a Follow's store snapshot is
// loaded only by NextBefore).
func (s *Subscription) TryNext() (Event, bool) {
	if len(s.snapshot) > 0 {
		ev := s.snapshot[0]
		s.snapshot = s.snapshot[1:]
		return ev, true
	}
	if s.log == nil {
		s.log = s.hub.find(s.runID)
		if s.log == nil {
			return Event{}, false
		}
	}
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	if s.ready() {
		ev := s.log.events[s.next]
		s.next++
		s.after = ev.ID
		return ev, true
	}
	return Event{}, false
}

// ready reports whether the log holds an event after the last one read,
// finding the reader's place in it by id the first time (ids may skip
// numbers). The log's lock is held.
func (s *Subscription) ready() bool {
	if s.next < 0 {
		events := s.log.events
		s.next = sort.Search(len(events), func(i int) bool { return events[i].ID > s.after })
	}
	return s.next < len(s.log.events)
}

// Notify arranges for wake to be called once, when TryNext may have an
// event: at once (on this goroutine) if it has one now, else on the
// goroutine of the next Publish to the run. wake must not block (it runs
// on the run's own goroutine): it hands the reading to a goroutine of the
// reader's. A subscription waits this way without a goroutine of its own;
// Notify replaces a wake not yet called, and Stop withdraws it. Notify,
// TryNext and Stop are the reader's: one goroutine at a time.
func (s *Subscription) Notify(wake func()) {
	s.wake.Store(&wake)
	if len(s.snapshot) > 0 {
		s.fire()
		return
	}
	if s.log == nil {
		h := s.hub
		h.mu.Lock()
		s.log = h.logs[s.runID]
		if s.log == nil {
			if !slices.Contains(h.awaiting[s.runID], s) {
				h.awaiting[s.runID] = append(h.awaiting[s.runID], s)
			}
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
	}
	l := s.log
	l.mu.Lock()
	if s.ready() {
		l.mu.Unlock()
		s.fire()
		return
	}
	if !slices.Contains(l.waiters, s) {
		l.waiters = append(l.waiters, s)
	}
	l.mu.Unlock()
}

// Stop withdraws a wake that Notify arranged and that has not been called
// yet: the reader is done with the run.
func (s *Subscription) Stop() {
	s.wake.Store(nil)
	h := s.hub
	h.mu.Lock()
	if w := h.awaiting[s.runID]; slices.Contains(w, s) {
		w = slices.DeleteFunc(w, func(o *Subscription) bool { return o == s })
		if len(w) == 0 {
			delete(h.awaiting, s.runID)
		} else {
			h.awaiting[s.runID] = w
		}
	}
	h.mu.Unlock()
	if l := s.log; l != nil {
		l.mu.Lock()
		l.waiters = slices.DeleteFunc(l.waiters, func(o *Subscription) bool { return o == s })
		l.mu.Unlock()
	}
}

// fire calls the wake Notify arranged, at most once.
func (s *Subscription) fire() {
	if w := s.wake.Swap(nil); w != nil {
		(*w)()
	}
}
