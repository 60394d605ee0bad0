package handlers

import (
	"fmt"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
)

// The thread page's composer and run controls: add a message with or
// without running an assistant, answer a run's pending function calls by
// hand, cancel a run. They go through the run engine exactly as the API
// does (the same validation, the same one-active-run rule).

// AddMessage handles POST /threads/:thread_id/messages: action "add"
// stores the message; "run" stores it and starts a run of the chosen
// assistant in the same transaction.
func (u *UI) AddMessage(c *echo.Context) error {
	threadID := c.Param("thread_id")
	ctx := c.Request().Context()
	back := "/threads/" + threadID
	if _, err := u.store.GetThread(ctx, threadID); err != nil {
		return storeErr(err, "thread", threadID)
	}
	text := c.FormValue("content")
	if strings.TrimSpace(text) == "" {
		return u.flash(c, back, "Write a message first.", true)
	}
	m, err := u.api.buildMessage(c, "", messageRequest{Role: c.FormValue("role"), Content: messageContent{Set: true, Text: &text}})
	if err != nil {
		return u.flash(c, back, errMessage(err), true)
	}
	m.ThreadID = threadID
	if c.FormValue("action") != "run" {
		if _, err := u.store.CreateMessage(ctx, m); err != nil {
			return storeErr(err, "thread", threadID)
		}
		return u.flash(c, back, "Message added.", false)
	}
	if u.api.engine == nil {
		return u.flash(c, back, "Runs are not available on this server.", true)
	}
	assistantID := c.FormValue("assistant_id")
	if assistantID == "" {
		return u.flash(c, back, "Choose an assistant to run.", true)
	}
	run, err := u.api.buildRun(c, runFields{AssistantID: Opt[string]{Set: true, V: assistantID}}, nil)
	if err != nil {
		return u.flash(c, back, errMessage(err), true)
	}
	run.ThreadID = threadID
	if _, err := u.api.engine.CreateRun(ctx, run, []db.Message{m}); err != nil {
		return u.flash(c, back, errMessage(runErr(err, "")), true)
	}
	return u.flash(c, back, "Message added; the run started.", false)
}

// SubmitOutputs handles POST /threads/:thread_id/runs/:run_id/outputs:
// one output per pending call, all sent in one request. A missing output
// is refused here, with the call named, before the engine sees anything.
func (u *UI) SubmitOutputs(c *echo.Context) error {
	threadID, runID := c.Param("thread_id"), c.Param("run_id")
	ctx := c.Request().Context()
	back := "/threads/" + threadID
	if u.api.engine == nil {
		return u.flash(c, back, "Runs are not available on this server.", true)
	}
	run, err := u.store.GetRun(ctx, threadID, runID)
	if err != nil {
		return storeErr(err, "run", runID)
	}
	if run.Status != db.RunRequiresAction || run.RequiredAction == nil {
		return u.flash(c, back, fmt.Sprintf("Run %s is %s: it is not waiting for outputs.", runID, run.Status), true)
	}
	var outputs []agent.ToolOutput
	var missing []string
	for _, call := range run.RequiredAction.SubmitToolOutputs.ToolCalls {
		out := c.FormValue("output-" + call.ID)
		if strings.TrimSpace(out) == "" {
			missing = append(missing, call.Function.Name+" ("+call.ID+")")
		}
		outputs = append(outputs, agent.ToolOutput{ToolCallID: call.ID, Output: out})
	}
	if len(missing) > 0 {
		return u.flash(c, back, "Every call needs an output; missing: "+strings.Join(missing, ", ")+".", true)
	}
	if _, _, err := u.api.engine.SubmitToolOutputs(ctx, threadID, runID, outputs); err != nil {
		return u.flash(c, back, errMessage(runErr(err, runID)), true)
	}
	return u.flash(c, back, "Outputs submitted; the run continues.", false)
}

// CancelRun handles POST /threads/:thread_id/runs/:run_id/cancel.
func (u *UI) CancelRun(c *echo.Context) error {
	threadID, runID := c.Param("thread_id"), c.Param("run_id")
	back := "/threads/" + threadID
	if u.api.engine == nil {
		return u.flash(c, back, "Runs are not available on this server.", true)
	}
	if _, err := u.api.engine.Cancel(c.Request().Context(), threadID, runID); err != nil {
		return u.flash(c, back, errMessage(runErr(err, runID)), true)
	}
	return u.flash(c, back, "Cancelling the run.", false)
}

// errMessage is the public message of an error for a flash.
func errMessage(err error) string {
	if ae, ok := err.(*Error); ok && ae.Status < 500 {
		return ae.Message
	}
	return "Something went wrong; see the server log."
}
