package api

import (
	"errors"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent"
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
	idle := time.NewTimer(respond.Heartbeat)
	defer idle.Stop()
	for {
		ev, err := sub.NextBefore(ctx, idle.C)
		if errors.Is(err, agent.ErrIdle) {
			if sse.KeepAlive() != nil {
				return nil
			}
			idle.Reset(respond.Heartbeat)
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
		idle.Reset(respond.Heartbeat)
		if ev.EndsSegment() {
			_ = sse.Event("done", "", []byte("[DONE]"))
			return nil
		}
	}
}

// position is where a run's stream starts: after event `after` of run.
type position struct {
	run   string
	after int64
}

// streamFrom streams the run from `from` when a handler returned one (it
// has answered otherwise, or failed with err). The handlers that may
// stream do their work in a function of their own, on a goroutine of its
// own (stack.Run), and stream from here: the goroutine serving a stream
// waits for its events for the run's whole life, and neither the stack
// that decoding and storing the request grew nor a large handler frame
// should stay beneath every open stream.
func (h *API) streamFrom(c *echo.Context, from *position, err error) error {
	if err != nil || from == nil {
		return err
	}
	return h.streamRun(c, from.run, from.after)
}
