package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v5"
)

// heartbeat is how often an idle stream sends an SSE comment, which every
// SDK ignores, so proxies do not cut a stream waiting on a slow model.
const heartbeat = 15 * time.Second

// streamRun writes the run's events after position `after` as Server-Sent
// Events until the run waits for tool outputs or ends, then the closing
// `event: done` / `data: [DONE]`. The run itself does not depend on this
// connection: if the client goes away, the run carries on.
func (h *API) streamRun(c *echo.Context, runID string, after int64) error {
	w := c.Response()
	flusher, ok := w.(http.Flusher)
	if !ok {
		if rw, err := echo.UnwrapResponse(w); err == nil {
			flusher, ok = rw.ResponseWriter.(http.Flusher)
		}
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Connection", "keep-alive")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flush := func() {
		if ok {
			flusher.Flush()
		}
	}
	flush()
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	go func() {
		select {
		case <-h.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	withContent := wantsSearchContent(c)
	sub := h.engine.Hub().Subscribe(runID, after)
	for {
		wctx, cancel := context.WithTimeout(ctx, heartbeat)
		ev, err := sub.Next(wctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			flush()
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
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Name, data); err != nil {
			return nil
		}
		if ev.EndsSegment() {
			_, _ = fmt.Fprint(w, "event: done\ndata: [DONE]\n\n")
			flush()
			return nil
		}
		flush()
	}
}
