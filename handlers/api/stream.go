package api

import (
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/handlers/respond"
)

// streamRun writes the run's events after position `after` as Server-Sent
// Events until the run waits for tool outputs or ends, then the closing
// `event: done` / `data: [DONE]`. The run itself does not depend on this
// connection: if the client goes away, the run carries on.
func (h *API) streamRun(c *echo.Context, runID string, after int64) error {
	return respond.Stream(c, h.streams, &runFeed{sub: h.engine.Events(runID, after), withContent: wantsSearchContent(c)})
}

// runFeed reads a run's events for a stream, as the hub publishes them.
type runFeed struct {
	sub         *agent.Subscription
	withContent bool // file_search results keep their content
}

func (f *runFeed) Fill(b *respond.Batch) bool {
	for {
		ev, ok := f.sub.TryNext()
		if !ok {
			return false
		}
		if ev.Internal() {
			continue // assistantd's own events are for the web app
		}
		data := ev.Data
		if !f.withContent && strings.HasPrefix(ev.Name, "thread.run.step.") {
			data = stripSearchContentJSON(data)
		}
		b.Event(ev.Name, "", data)
		if ev.EndsSegment() {
			b.Event("done", "", []byte("[DONE]"))
			return true
		}
	}
}

func (f *runFeed) Notify(wake func()) { f.sub.Notify(wake) }

func (f *runFeed) Stop() { f.sub.Stop() }

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
