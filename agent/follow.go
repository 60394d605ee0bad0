package agent

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/assistantd/assistantd/db"
)

// Events returns a reader of the run's events with ids greater than after:
// what the API streams to a client (see Hub.Subscribe).
func (e *Engine) Events(runID string, after int64) *Subscription {
	if e.elog != nil {
		e.elog.watchRun(runID) // executed anywhere: read its durable log
	}
	return e.hub.Subscribe(runID, after)
}

// ThreadEvent is one event of a thread followed with FollowThread: the run
// it belongs to, and the event. Its Cursor resumes a follow right after it.
type ThreadEvent struct {
	Run string
	Event
}

// Cursor is the position right after this event, as FollowThread takes it
// ("run_…/N").
func (e ThreadEvent) Cursor() string { return e.Run + "/" + strconv.FormatInt(e.ID, 10) }

// ThreadFollower reads a thread's events: every run on it, in the order
// they start, whoever started them (the API, another page).
type ThreadFollower struct {
	e        *Engine
	threadID string
	seen     []string        // runs followed or skipped, so none is read twice
	queue    []*Subscription // runs to read, the current one first
	runs     []string        // the run each queued subscription reads
}

// parseCursor reads a position "run_…/N".
func parseCursor(s string) (run string, seq int64, ok bool) {
	run, n, ok := strings.Cut(s, "/")
	seq, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || seq < 0 || !strings.HasPrefix(run, "run_") {
		return "", 0, false
	}
	return run, seq, true
}

// FollowThread returns a reader of the thread's events after cursor (a
// ThreadEvent's Cursor, as a page's Last-Event-ID carries it). Without a
// valid cursor the latest run the hub holds is replayed from its start,
// which gives a reader the tokens of a message still streaming. A run
// whose event log is gone is served from the store, as one snapshot event
// of its state.
func (e *Engine) FollowThread(threadID, cursor string) *ThreadFollower {
	f := &ThreadFollower{e: e, threadID: threadID}
	if e.elog != nil {
		e.elog.watchThread(threadID) // runs started anywhere: read their durable logs
	}
	known := e.hub.ThreadRuns(threadID)
	f.seen = slices.Clone(known)
	if run, seq, ok := parseCursor(cursor); ok {
		i := slices.Index(known, run)
		f.follow(run, seq)
		if i < 0 {
			f.seen = append(f.seen, run)
			// The run's log is gone: every run logged since is newer.
			for _, id := range known {
				f.follow(id, 0)
			}
		} else {
			for _, id := range known[i+1:] {
				f.follow(id, 0)
			}
		}
	} else if n := len(known); n > 0 {
		f.follow(known[n-1], 0)
	}
	return f
}

func (f *ThreadFollower) follow(runID string, after int64) {
	if f.e.elog != nil {
		f.e.elog.watchRun(runID)
	}
	f.queue = append(f.queue, f.e.hub.Follow(runID, after, f.snapshot(runID)))
	f.runs = append(f.runs, runID)
}

// snapshot builds a run's state from the store, for a run the hub no
// longer logs: one event named for its status. A run gone from the store
// (its thread deleted) reads as completed.
func (f *ThreadFollower) snapshot(runID string) func(context.Context) ([]Event, error) {
	return func(ctx context.Context) ([]Event, error) {
		r, err := f.e.store.GetRun(ctx, f.threadID, runID)
		if errors.Is(err, db.ErrNotFound) {
			return []Event{{Name: "thread.run.completed", Data: json.RawMessage(`{}`)}}, nil
		}
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		return []Event{{Name: "thread.run." + r.Status, Data: b}}, nil
	}
}

// Next returns the thread's next event, waiting for it until ctx is done;
// callers give ctx a deadline to send keep-alives while the thread is idle
// (context.DeadlineExceeded, after which Next may be called again).
func (f *ThreadFollower) Next(ctx context.Context) (ThreadEvent, error) {
	for {
		if len(f.queue) == 0 {
			fresh, err := f.e.hub.WaitThread(ctx, f.threadID, f.seen)
			if err != nil {
				return ThreadEvent{}, err
			}
			for _, id := range fresh {
				if !slices.Contains(f.seen, id) {
					f.seen = append(f.seen, id)
					f.follow(id, 0)
				}
			}
			continue
		}
		ev, err := f.queue[0].Next(ctx)
		switch {
		case errors.Is(err, ErrFinished):
			f.pop()
			continue
		case err != nil && errors.Is(err, context.DeadlineExceeded) && len(f.queue) == 1:
			// A newer run on the thread means this one has ended.
			if now := f.e.hub.ThreadRuns(f.threadID); len(now) > 0 && now[len(now)-1] != f.runs[0] && !slices.Contains(f.seen, now[len(now)-1]) {
				f.pop()
			}
			return ThreadEvent{}, err
		case err != nil:
			return ThreadEvent{}, err
		}
		out := ThreadEvent{Run: f.runs[0], Event: ev}
		if ev.EndsSegment() && ev.Name != "thread.run.requires_action" {
			f.pop()
		}
		return out, nil
	}
}

func (f *ThreadFollower) pop() { f.queue, f.runs = f.queue[1:], f.runs[1:] }

// Logged reports whether the hub still holds the run's event log (it is
// live, or ended within the hub's retention); a reader of a run not logged
// serves its state from the store.
func (e *Engine) Logged(runID string) bool {
	if e.elog != nil {
		e.elog.watchRun(runID)
	}
	return e.hub.Logged(runID)
}
