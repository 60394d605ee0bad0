package api

import (
	"context"
	"errors"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/handlers/respond"
)

// streamRun writes the run's events after position `after` as Server-Sent
// Events until the run waits for tool outputs or ends, then the closing
// `event: done` / `data: [DONE]`. The run itself does not depend on this
// connection: if the client goes away, the run carries on.
func (h *API) streamRun(c *echo.Context, runID string, after int64) error {
	sse := respond.StartSSE(c)
	ctx, cancel := h.streams.Context(c.Request().Context())
	defer cancel()
	withContent := wantsSearchContent(c)
	sub := h.engine.Events(runID, after)
	for {
		wctx, cancel := context.WithTimeout(ctx, respond.Heartbeat)
		ev, err := sub.Next(wctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			if sse.KeepAlive() != nil {
				return nil
			}
			continue
		}
		if err != nil {
			return nil // the client went away; the run goes on
		}
		if ev.Internal() {
			continue // assistantd's own events are for the web app
		}
		data := ev.Data
		if !withContent && strings.HasPrefix(ev.Name, "thread.run.step.") {
			data = stripSearchContentJSON(data)
		}
		if sse.Event(ev.Name, "", data) != nil {
			return nil
		}
		if ev.EndsSegment() {
			_ = sse.Event("done", "", []byte("[DONE]"))
			return nil
		}
	}
}
