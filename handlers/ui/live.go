package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/views"
)

// CloseStreams ends the web app's open event streams (server shutdown).
func (u *UI) CloseStreams() { u.streams.Close() }

// LiveFragment handles GET /threads/:thread_id/live: the live parts of the
// page (messages, run controls, timeline) as they are in the store, for
// live.js to swap in when the thread's events say something changed.
func (u *UI) LiveFragment(c *echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("thread_id")
	if _, err := u.store.GetThread(ctx, id); err != nil {
		return respond.StoreErr(err, "thread", id)
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
		return &respond.Error{Status: http.StatusNotFound, Type: "invalid_request_error", Message: "No such upstream exchange."}
	}
	x, err := u.store.GetExchange(ctx, threadID, id)
	if errors.Is(err, db.ErrNotFound) {
		return &respond.Error{Status: http.StatusNotFound, Type: "invalid_request_error",
			Message: "No such upstream exchange (exchanges are kept for the --inspect-retention period)."}
	}
	if err != nil {
		return respond.Internal(err)
	}
	v := views.ExchangeDetail{ID: x.ID, ThreadID: threadID, RunID: x.RunID, Method: x.Method, URL: x.URL, Status: x.Status,
		Error: x.Error, Streamed: x.Streamed, Chunks: x.Chunks, StartedAt: x.StartedAt, DurationMS: x.DurationMS,
		RequestHeaders: sortedPairs(x.RequestHeaders), ResponseHeaders: sortedPairs(x.ResponseHeaders),
		RequestBody: prettyJSON(x.RequestBody), ResponseBody: prettyJSON(x.ResponseBody)}
	return render(c, http.StatusOK, views.ExchangePage(u.page(c, fmt.Sprintf("Upstream request #%d", x.ID), "threads"), v))
}

// ThreadEvents handles GET /threads/:thread_id/events: one Server-Sent
// Events stream per page that follows the thread, so runs started anywhere
// (the API, another tab) show up. Every event carries an id ("run/N");
// a reconnect with Last-Event-ID (or ?last=) resumes right after it
// (agent.Engine.FollowThread says how a follow starts). The stream ends
// when the page goes, the thread is deleted or the server stops.
func (u *UI) ThreadEvents(c *echo.Context) error {
	threadID := c.Param("thread_id")
	if _, err := u.store.GetThread(c.Request().Context(), threadID); err != nil {
		return respond.StoreErr(err, "thread", threadID)
	}
	if u.cfg.Engine == nil {
		return c.NoContent(http.StatusNoContent) // EventSource stops on 204
	}
	last := c.Request().Header.Get("Last-Event-ID")
	if last == "" {
		last = c.QueryParam("last")
	}
	sse := respond.StartSSE(c)
	if sse.Raw("retry: 1000\n\n") != nil {
		return nil
	}
	ctx, cancel := u.streams.Context(c.Request().Context())
	defer cancel()
	follower := u.cfg.Engine.FollowThread(threadID, last)
	for {
		wctx, wcancel := context.WithTimeout(ctx, respond.Heartbeat)
		ev, err := follower.Next(wctx)
		wcancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			if sse.KeepAlive() != nil {
				return nil
			}
			continue
		case err != nil:
			return nil
		}
		data, _ := json.Marshal(struct {
			Run   string          `json:"run"`
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}{ev.Run, ev.Name, ev.Data})
		if sse.Event("", ev.Cursor(), data) != nil {
			return nil
		}
	}
}
