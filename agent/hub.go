package agent

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// Event is one Assistants streaming event of a run: the SSE event name and
// its data (the full object, or a delta). ID orders a run's events from 1.
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

// Hub keeps each active run's event log in memory and lets any number of
// readers follow it. A reader starts at any position: from 0 it replays the
// whole run so far (a consistent snapshot, since the log is append-only)
// and then receives live events, with nothing lost or duplicated. Readers
// never slow the writer down: each keeps its own cursor into the log.
type Hub struct {
	mu     sync.Mutex
	logs   map[string]*runLog
	retain time.Duration
}

type runLog struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{} // closed and replaced on every append
	ended   bool          // the run is terminal; the log will be dropped
}

// NewHub returns a hub that keeps a finished run's log for retain before
// dropping it.
func NewHub(retain time.Duration) *Hub {
	return &Hub{logs: map[string]*runLog{}, retain: retain}
}

func (h *Hub) log(runID string) *runLog {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.logs[runID]
	if !ok {
		l = &runLog{changed: make(chan struct{})}
		h.logs[runID] = l
	}
	return l
}

// Publish appends an event to the run's log and wakes its readers.
func (h *Hub) Publish(runID, name string, data json.RawMessage) Event {
	l := h.log(runID)
	l.mu.Lock()
	ev := Event{ID: int64(len(l.events)) + 1, Name: name, Data: data}
	l.events = append(l.events, ev)
	close(l.changed)
	l.changed = make(chan struct{})
	terminal := ev.EndsSegment() && ev.Name != "thread.run.requires_action"
	if terminal && !l.ended {
		l.ended = true
		time.AfterFunc(h.retain, func() { h.drop(runID, l) })
	}
	l.mu.Unlock()
	return ev
}

func (h *Hub) drop(runID string, l *runLog) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.logs[runID] == l {
		delete(h.logs, runID)
	}
}

// Position returns the id of the run's latest event (0 if none): a reader
// that subscribes after it sees only what comes next. It creates nothing.
func (h *Hub) Position(runID string) int64 {
	h.mu.Lock()
	l, ok := h.logs[runID]
	h.mu.Unlock()
	if !ok {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(len(l.events))
}

// Subscription reads a run's events in order.
type Subscription struct {
	log  *runLog
	next int64 // index of the next event to read
}

// Subscribe returns a reader of the run's events with ids greater than
// after.
func (h *Hub) Subscribe(runID string, after int64) *Subscription {
	return &Subscription{log: h.log(runID), next: max(after, 0)}
}

// Next returns the next event, waiting for it until ctx is done.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		s.log.mu.Lock()
		if s.next < int64(len(s.log.events)) {
			ev := s.log.events[s.next]
			s.log.mu.Unlock()
			s.next++
			return ev, nil
		}
		changed := s.log.changed
		s.log.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}
