package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
	"github.com/assistantd/assistantd/views"
)

// runStore is what the live view needs to show runs, their steps and
// their upstream exchanges.
type runStore interface {
	ThreadRuns(ctx context.Context, threadID string) ([]db.Run, error)
	ThreadSteps(ctx context.Context, threadID string) ([]db.RunStep, error)
	ThreadExchanges(ctx context.Context, threadID string) ([]db.Exchange, error)
	GetExchange(ctx context.Context, threadID string, id int64) (db.Exchange, error)
}

// stepView prepares a run step: status, timings, tokens and every tool
// call with what it received and returned.
func stepView(st db.RunStep) views.StepView {
	sv := views.StepView{ID: st.ID, RunID: st.RunID, Type: st.Type, Status: st.Status, CreatedAt: st.CreatedAt, LastError: lastError(st.LastError)}
	for _, end := range []*int64{st.CompletedAt, st.FailedAt, st.CancelledAt, st.ExpiredAt} {
		if end != nil {
			sv.EndedAt = end
		}
	}
	if st.Usage != nil {
		sv.Tokens = st.Usage.TotalTokens
	}
	if mc := st.StepDetails.MessageCreation; mc != nil {
		sv.MessageID = mc.MessageID
	}
	for _, tc := range st.StepDetails.ToolCalls {
		tv := views.ToolCallView{ID: tc.ID, Type: tc.Type}
		switch {
		case tc.Function != nil:
			f := tc.Function
			tv.Name, tv.Arguments = f.Name, prettyJSON(f.Arguments)
			if f.Output != nil {
				tv.Output = prettyJSON(*f.Output)
			} else {
				tv.Pending = true
			}
		case tc.CodeInterpreter != nil:
			tv.Code = tc.CodeInterpreter.Input
			for _, o := range tc.CodeInterpreter.Outputs {
				ov := views.CodeOutputView{Logs: o.Logs}
				if o.Image != nil {
					ov.ImageFileID = o.Image.FileID
				}
				tv.CodeOutputs = append(tv.CodeOutputs, ov)
			}
		case tc.FileSearch != nil:
			for _, r := range tc.FileSearch.Results {
				rv := views.FileResultView{FileID: r.FileID, FileName: r.FileName, Score: r.Score}
				for _, c := range r.Content {
					rv.Text += c.Text
				}
				tv.Results = append(tv.Results, rv)
			}
		default:
			if raw, err := json.MarshalIndent(tc, "", "  "); err == nil {
				tv.Arguments = string(raw)
			}
		}
		sv.ToolCalls = append(sv.ToolCalls, tv)
	}
	return sv
}

// threadRuns returns the thread's runs, each with its steps and upstream
// exchanges, and the tool steps by run for the conversation.
func (u *UI) threadRuns(ctx context.Context, threadID string) ([]views.RunView, []views.StepView, error) {
	runs, err := u.store.ThreadRuns(ctx, threadID)
	if err != nil || len(runs) == 0 {
		return nil, nil, err
	}
	steps, err := u.store.ThreadSteps(ctx, threadID)
	if err != nil {
		return nil, nil, err
	}
	xs, err := u.store.ThreadExchanges(ctx, threadID)
	if err != nil {
		return nil, nil, err
	}
	byRun := map[string][]views.StepView{}
	var toolSteps []views.StepView
	for _, st := range steps {
		sv := stepView(st)
		byRun[st.RunID] = append(byRun[st.RunID], sv)
		if st.Type == db.StepToolCalls {
			toolSteps = append(toolSteps, sv)
		}
	}
	exByRun := map[string][]views.ExchangeView{}
	for _, x := range xs {
		n := len(exByRun[x.RunID]) + 1
		exByRun[x.RunID] = append(exByRun[x.RunID], views.ExchangeView{ID: x.ID, N: n, StartedAt: x.StartedAt, Status: x.Status,
			DurationMS: x.DurationMS, Error: x.Error, Streamed: x.Streamed, Chunks: x.Chunks})
	}
	out := make([]views.RunView, 0, len(runs))
	for _, r := range runs {
		rv := views.RunView{ID: r.ID, AssistantID: r.AssistantID, Model: r.Model, Status: r.Status, LastError: lastError(r.LastError),
			CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, Steps: byRun[r.ID], Exchanges: exByRun[r.ID]}
		for _, end := range []*int64{r.CompletedAt, r.FailedAt, r.CancelledAt} {
			if end != nil {
				rv.CompletedAt = end
			}
		}
		if r.Usage != nil {
			rv.PromptTokens, rv.CompletionTokens, rv.TotalTokens = r.Usage.PromptTokens, r.Usage.CompletionTokens, r.Usage.TotalTokens
		}
		if r.IncompleteDetails != nil {
			rv.Incomplete = r.IncompleteDetails.Reason
		}
		rv.Active = slices.Contains(db.ActiveStatuses, r.Status)
		if r.Status == db.RunRequiresAction && r.RequiredAction != nil {
			for _, call := range r.RequiredAction.SubmitToolOutputs.ToolCalls {
				rv.Pending = append(rv.Pending, views.ToolCallView{ID: call.ID, Type: call.Type, Name: call.Function.Name,
					Arguments: prettyJSON(call.Function.Arguments), Pending: true})
			}
		}
		out = append(out, rv)
	}
	if err := u.attachDeliveries(ctx, threadID, out); err != nil {
		return nil, nil, err
	}
	// The conversation's inline tool steps show the same deliveries.
	byCall := map[string][]views.DeliveryView{}
	for _, r := range out {
		for _, st := range r.Steps {
			for _, tc := range st.ToolCalls {
				byCall[tc.ID] = tc.Deliveries
			}
		}
	}
	for i := range toolSteps {
		for j := range toolSteps[i].ToolCalls {
			toolSteps[i].ToolCalls[j].Deliveries = byCall[toolSteps[i].ToolCalls[j].ID]
		}
	}
	return out, toolSteps, nil
}

// threadLive reads a thread's messages (remote images as the viewer's
// setting says) and builds its live view; truncated says the thread has
// more messages than a page shows.
func (u *UI) threadLive(c *echo.Context, threadID string) (v views.LiveView, truncated bool, err error) {
	remote, err := u.remoteImages(c)
	if err != nil {
		return v, false, err
	}
	msgs, truncated, err := u.threadMessages(c.Request().Context(), threadID, remote)
	if err != nil {
		return v, false, respond.Internal(err)
	}
	if v, err = u.liveView(c.Request().Context(), threadID, msgs); err != nil {
		return v, false, respond.Internal(err)
	}
	return v, truncated, nil
}

// liveView builds the live part of a thread page or the playground:
// messages with tool steps inline where they happened, the runs, and the
// latest run's controls.
func (u *UI) liveView(ctx context.Context, threadID string, msgs []views.MessageView) (views.LiveView, error) {
	v := views.LiveView{ThreadID: threadID, CanRun: u.cfg.Engine != nil}
	runs, toolSteps, err := u.threadRuns(ctx, threadID)
	if err != nil {
		return v, err
	}
	v.Runs = runs
	if n := len(runs); n > 0 {
		v.Latest = &v.Runs[n-1]
		v.Active = v.Latest.Active
	}
	// Order by time; within one second a user message comes before the
	// tools its run called, and those before the assistant's answer.
	type keyed struct {
		at, rank int64
		item     views.ConvItem
	}
	var items []keyed
	for i := range msgs {
		rank := int64(0)
		if msgs[i].Role == "assistant" {
			rank = 2
		}
		items = append(items, keyed{msgs[i].CreatedAt, rank, views.ConvItem{Message: &msgs[i]}})
	}
	for i := range toolSteps {
		items = append(items, keyed{toolSteps[i].CreatedAt, 1, views.ConvItem{Step: &toolSteps[i]}})
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].at != items[j].at {
			return items[i].at < items[j].at
		}
		return items[i].rank < items[j].rank
	})
	for _, it := range items {
		v.Items = append(v.Items, it.item)
	}
	return v, nil
}

func lastError(e *db.LastError) string {
	if e == nil {
		return ""
	}
	return strings.TrimSpace(e.Code + ": " + e.Message)
}

// runConflict turns "the thread has an active run" into words, or "".
func runConflict(err error) string {
	var ar *db.ActiveRunError
	if errors.As(err, &ar) {
		return "This thread has an active run; wait for it to end (or cancel it) before adding messages."
	}
	return ""
}

// maxIDLen bounds an object id taken from a form: ours are far shorter.
const maxIDLen = 64

// SubmitOutputs handles POST /threads/:thread_id/runs/:run_id/outputs:
// one output per pending call, all sent in one request. A missing output
// is refused here, with the call named, before the engine sees anything.
func (u *UI) SubmitOutputs(c *echo.Context) error {
	threadID, runID := c.Param("thread_id"), c.Param("run_id")
	ctx := c.Request().Context()
	back := "/threads/" + threadID
	fail := u.refuseBack(c, back)
	if u.cfg.Engine == nil {
		return fail("Runs are not available on this server.")
	}
	run, err := u.store.GetRun(ctx, threadID, runID)
	if err != nil {
		return respond.StoreErr(err, "run", runID)
	}
	if run.Status != db.RunRequiresAction || run.RequiredAction == nil {
		return fail(fmt.Sprintf("Run %s is %s: it is not waiting for outputs.", runID, run.Status))
	}
	var given []validate.ToolOutputRequest
	var missing []string
	for _, call := range run.RequiredAction.SubmitToolOutputs.ToolCalls {
		out := c.FormValue("output-" + call.ID)
		if strings.TrimSpace(out) == "" {
			missing = append(missing, call.Function.Name+" ("+call.ID+")")
		}
		given = append(given, validate.ToolOutputRequest{ToolCallID: &call.ID, Output: &out})
	}
	if len(missing) > 0 {
		return fail("Every call needs an output; missing: " + strings.Join(missing, ", ") + ".")
	}
	checked, err := validate.ToolOutputs(validate.P("tool_outputs"), validate.Some(given))
	if err != nil {
		return fail(userMessage(err))
	}
	outputs := make([]agent.ToolOutput, len(checked))
	for i, o := range checked {
		outputs[i] = agent.ToolOutput{ToolCallID: o.ToolCallID, Output: o.Output}
	}
	if _, _, err := u.cfg.Engine.SubmitToolOutputs(ctx, threadID, runID, outputs); err != nil {
		return fail(userMessage(respond.RunErr(err, runID)))
	}
	return u.done(c, back, "", "Outputs submitted; the run continues.")
}

// CancelRun handles POST /threads/:thread_id/runs/:run_id/cancel.
func (u *UI) CancelRun(c *echo.Context) error {
	threadID, runID := c.Param("thread_id"), c.Param("run_id")
	back := "/threads/" + threadID
	fail := u.refuseBack(c, back)
	if u.cfg.Engine == nil {
		return fail("Runs are not available on this server.")
	}
	if _, err := u.cfg.Engine.Cancel(c.Request().Context(), threadID, runID); err != nil {
		return fail(userMessage(respond.RunErr(err, runID)))
	}
	return u.done(c, back, "", "Cancelling the run.")
}

// RetryRun handles POST /threads/:thread_id/runs/:run_id/retry: a new run
// on the same thread with the ended run's assistant and settings.
func (u *UI) RetryRun(c *echo.Context) error {
	threadID, runID := c.Param("thread_id"), c.Param("run_id")
	ctx := c.Request().Context()
	back := "/threads/" + threadID
	fail := u.refuseBack(c, back)
	if u.cfg.Engine == nil {
		return fail("Runs are not available on this server.")
	}
	old, err := u.store.GetRun(ctx, threadID, runID)
	if err != nil {
		return respond.StoreErr(err, "run", runID)
	}
	f := validate.RunFields{AssistantID: validate.Some(old.AssistantID), Model: validate.Some(old.Model),
		Instructions: validate.Some(old.Instructions), Tools: validate.Some(old.Tools),
		ToolChoice:        validate.Opt[json.RawMessage]{Set: len(old.ToolChoice) > 0, V: old.ToolChoice},
		ParallelToolCalls: validate.Some(old.ParallelToolCalls)}
	if old.Temperature != nil {
		f.Temperature = validate.Some(*old.Temperature)
	}
	if old.TopP != nil {
		f.TopP = validate.Some(*old.TopP)
	}
	if len(old.ResponseFormat) > 0 {
		f.ResponseFormat = validate.Some(old.ResponseFormat)
	}
	run, msg, err := u.newRun(ctx, f)
	if err != nil {
		return respond.Internal(err)
	}
	if msg != "" {
		return fail(msg)
	}
	run.ThreadID = threadID
	if _, err := u.cfg.Engine.CreateRun(ctx, run, nil); err != nil {
		return fail(userMessage(respond.RunErr(err, "")))
	}
	return u.done(c, back, "", "A new run started.")
}
