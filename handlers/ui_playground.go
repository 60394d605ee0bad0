package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/views"
)

// The thread page's composer and run controls: add a message with or
// without running an assistant, answer a run's pending function calls by
// hand, cancel a run. They go through the run engine exactly as the API
// does (the same validation, the same one-active-run rule).

// AddMessage handles POST /threads/:thread_id/messages: action "add"
// stores the message; "run" stores it and starts a run of the chosen
// assistant in the same transaction. A refused message comes back in the
// composer with the reason (422), so nothing typed is lost.
func (u *UI) AddMessage(c *echo.Context) error {
	threadID := c.Param("thread_id")
	ctx := c.Request().Context()
	back := "/threads/" + threadID
	if _, err := u.store.GetThread(ctx, threadID); err != nil {
		return storeErr(err, "thread", threadID)
	}
	text, role, assistantID := c.FormValue("content"), c.FormValue("role"), c.FormValue("assistant_id")
	refuse := func(msg string) error {
		d := views.Composer{Content: text, Role: role, Error: clip(msg, maxFlashRunes)}
		if len(assistantID) <= maxIDLen {
			d.Selected = assistantID
		}
		return u.showThread(c, http.StatusUnprocessableEntity, d)
	}
	if strings.TrimSpace(text) == "" {
		return refuse("Write a message first.")
	}
	if role != "user" && role != "assistant" {
		return refuse("Add the message as user or assistant.")
	}
	m, err := u.api.buildMessage(c, "", messageRequest{Role: role, Content: messageContent{Set: true, Text: &text}})
	if err != nil {
		return refuse(errMessage(err))
	}
	m.ThreadID = threadID
	if c.FormValue("action") != "run" {
		if _, err := u.store.CreateMessage(ctx, m); err != nil {
			if isRequestError(err) {
				return refuse(errMessage(runErr(err, "")))
			}
			return storeErr(err, "thread", threadID)
		}
		return u.flash(c, back, "Message added.", false)
	}
	if u.api.engine == nil {
		return refuse("Runs are not available on this server.")
	}
	if assistantID == "" || len(assistantID) > maxIDLen {
		return refuse("Choose an assistant to run.")
	}
	run, err := u.api.buildRun(c, runFields{AssistantID: Opt[string]{Set: true, V: assistantID}}, nil)
	if err != nil {
		return refuse(errMessage(err))
	}
	run.ThreadID = threadID
	if _, err := u.api.engine.CreateRun(ctx, run, []db.Message{m}); err != nil {
		if isRequestError(err) {
			return refuse(errMessage(runErr(err, "")))
		}
		return runErr(err, "")
	}
	return u.flash(c, back, "Message added; the run started.", false)
}

// maxIDLen bounds an object id taken from a form: ours are far shorter.
const maxIDLen = 64

// isRequestError reports whether a store or engine error is the client's
// to fix (an active run on the thread, an invalid request), not ours.
func isRequestError(err error) bool {
	var ar *db.ActiveRunError
	var re *agent.RequestError
	return errors.As(err, &ar) || errors.As(err, &re) || errors.Is(err, db.ErrIllegalTransition)
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
