package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/views"
)

// CloseStreams ends the web app's open event streams (server shutdown).
func (u *UI) CloseStreams() { u.api.CloseStreams() }

// LiveFragment handles GET /threads/:thread_id/live: the live parts of the
// page (messages, run controls, timeline) as they are in the store, for
// live.js to swap in when the thread's events say something changed.
func (u *UI) LiveFragment(c *echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("thread_id")
	if _, err := u.store.GetThread(ctx, id); err != nil {
		return storeErr(err, "thread", id)
	}
	v, _, err := u.threadLive(c, id)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.LiveFragment(u.page(c, "", ""), v))
}

// ShowExchange handles GET /threads/:thread_id/exchanges/:exchange_id: the
// upstream inspector's view of one exchange.
func (u *UI) ShowExchange(c *echo.Context) error {
	ctx := c.Request().Context()
	threadID := c.Param("thread_id")
	id, err := strconv.ParseInt(c.Param("exchange_id"), 10, 64)
	if err != nil {
		return &Error{Status: http.StatusNotFound, Type: "invalid_request_error", Message: "No such upstream exchange."}
	}
	x, err := u.store.GetExchange(ctx, threadID, id)
	if errors.Is(err, db.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Type: "invalid_request_error",
			Message: "No such upstream exchange (exchanges are kept for the --inspect-retention period)."}
	}
	if err != nil {
		return Internal(err)
	}
	v := views.ExchangeDetail{ID: x.ID, ThreadID: threadID, RunID: x.RunID, Method: x.Method, URL: x.URL, Status: x.Status,
		Error: x.Error, Streamed: x.Streamed, Chunks: x.Chunks, StartedAt: x.StartedAt, DurationMS: x.DurationMS,
		RequestHeaders: sortedPairs(x.RequestHeaders), ResponseHeaders: sortedPairs(x.ResponseHeaders),
		RequestBody: prettyJSON(x.RequestBody), ResponseBody: prettyJSON(x.ResponseBody)}
	return render(c, http.StatusOK, views.ExchangePage(u.page(c, fmt.Sprintf("Upstream request #%d", x.ID), "threads"), v))
}

// cursor is a position in a thread's event stream: a run and the id of
// its last event seen. SSE ids are "run_…/N".
type cursor struct {
	run string
	seq int64
}

func parseCursor(s string) (cursor, bool) {
	run, n, ok := strings.Cut(s, "/")
	seq, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || seq < 0 || !strings.HasPrefix(run, "run_") {
		return cursor{}, false
	}
	return cursor{run, seq}, true
}

// ThreadEvents handles GET /threads/:thread_id/events: one Server-Sent
// Events stream per page that follows the thread, so runs started anywhere
// (the API, another tab) show up. Every event carries an id ("run/N");
// a reconnect with Last-Event-ID (or ?last=) resumes right after it.
// Without one, the latest run the hub holds is replayed from its start,
// which gives the page the tokens of a message still streaming. A run
// whose log is gone is served from the store (one snapshot event). The
// stream ends when the page goes, the thread is deleted or the server
// stops.
func (u *UI) ThreadEvents(c *echo.Context) error {
	ctx := c.Request().Context()
	threadID := c.Param("thread_id")
	if _, err := u.store.GetThread(ctx, threadID); err != nil {
		return storeErr(err, "thread", threadID)
	}
	if u.api.engine == nil {
		return c.NoContent(http.StatusNoContent) // EventSource stops on 204
	}
	hub := u.api.engine.Hub()
	last := c.Request().Header.Get("Last-Event-ID")
	if last == "" {
		last = c.QueryParam("last")
	}

	w := c.Response()
	flusher, canFlush := w.(http.Flusher)
	if !canFlush {
		if rw, err := echo.UnwrapResponse(w); err == nil {
			flusher, canFlush = rw.ResponseWriter.(http.Flusher)
		}
	}
	flush := func() {
		if canFlush {
			flusher.Flush()
		}
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return nil
	}
	flush()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-u.api.closing:
			cancel()
		case <-ctx.Done():
		}
	}()

	load := func(runID string) func(context.Context) ([]agent.Event, error) {
		return func(ctx context.Context) ([]agent.Event, error) {
			r, err := u.store.GetRun(ctx, threadID, runID)
			if errors.Is(err, db.ErrNotFound) {
				return []agent.Event{{Name: "thread.run.completed", Data: json.RawMessage(`{}`)}}, nil
			}
			if err != nil {
				return nil, err
			}
			b, err := json.Marshal(r)
			if err != nil {
				return nil, err
			}
			return []agent.Event{{Name: "thread.run." + r.Status, Data: b}}, nil
		}
	}
	known := hub.ThreadRuns(threadID)
	var queue []*agent.Subscription
	var runs []string // the run each queued subscription reads
	follow := func(id string, after int64) {
		queue = append(queue, hub.Follow(id, after, load(id)))
		runs = append(runs, id)
	}
	seen := slices.Clone(known)
	if cur, ok := parseCursor(last); ok {
		i := slices.Index(known, cur.run)
		follow(cur.run, cur.seq)
		if i < 0 {
			seen = append(seen, cur.run)
			i = -1
			// The run's log is gone: every run logged since is newer.
			for _, id := range known {
				follow(id, 0)
			}
		} else {
			for _, id := range known[i+1:] {
				follow(id, 0)
			}
		}
	} else if n := len(known); n > 0 {
		follow(known[n-1], 0)
	}

	for {
		if len(queue) == 0 {
			wctx, wcancel := context.WithTimeout(ctx, heartbeat)
			fresh, err := hub.WaitThread(wctx, threadID, seen)
			wcancel()
			if ctx.Err() != nil {
				return nil
			}
			if err != nil { // idle: keep the connection alive
				if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
					return nil
				}
				flush()
				continue
			}
			for _, id := range fresh {
				if !slices.Contains(seen, id) {
					seen = append(seen, id)
					follow(id, 0)
				}
			}
			continue
		}
		wctx, wcancel := context.WithTimeout(ctx, heartbeat)
		ev, err := queue[0].Next(wctx)
		wcancel()
		switch {
		case errors.Is(err, agent.ErrFinished):
			queue, runs = queue[1:], runs[1:]
			continue
		case err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			flush()
			// A newer run on the thread means this one has ended.
			if len(queue) == 1 {
				if now := hub.ThreadRuns(threadID); len(now) > 0 && now[len(now)-1] != runs[0] && !slices.Contains(seen, now[len(now)-1]) {
					queue, runs = queue[1:], runs[1:]
				}
			}
			continue
		case err != nil:
			return nil
		}
		data, _ := json.Marshal(struct {
			Run   string          `json:"run"`
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}{runs[0], ev.Name, ev.Data})
		if _, err := fmt.Fprintf(w, "id: %s/%d\ndata: %s\n\n", runs[0], ev.ID, data); err != nil {
			return nil
		}
		flush()
		if ev.EndsSegment() && ev.Name != "thread.run.requires_action" {
			queue, runs = queue[1:], runs[1:]
		}
	}
}
