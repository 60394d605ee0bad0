package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/validate"
	"github.com/assistantd/assistantd/views"
)

// The composer and run controls of the thread page and the playground.
// They go through the run engine exactly as the API does: the same
// validation (validate.Message and validate.Run), the same
// one-active-run rule. A mistake is answered in place with what was
// typed kept: 422 with the message for live.js (which sends X-Live), or
// the page rendered again with the form filled in.

// liveRequest reports whether live.js sent the form (fetch, no reload).
func liveRequest(c *echo.Context) bool { return c.Request().Header.Get("X-Live") == "1" }

// done answers a form that worked: 204 for live.js (X-Location says where
// to go when the page must change, as after a new thread), otherwise a
// redirect with a flash.
func (u *UI) done(c *echo.Context, target, location, msg string) error {
	if liveRequest(c) {
		if location != "" {
			c.Response().Header().Set("X-Location", location)
		}
		return c.NoContent(http.StatusNoContent)
	}
	if location != "" {
		target = location
	}
	return u.flash(c, target, msg, false)
}

// refuse answers a user's mistake: 422 and the message for live.js,
// otherwise again (rerender shows the message and keeps the input).
func (u *UI) refuse(c *echo.Context, msg string, rerender func() error) error {
	if liveRequest(c) {
		return c.String(http.StatusUnprocessableEntity, msg)
	}
	return rerender()
}

// refuseBack returns how a run action on a thread page is refused: 422
// with the message for the page's script, otherwise a flash back at back.
func (u *UI) refuseBack(c *echo.Context, back string) func(msg string) error {
	return func(msg string) error {
		return u.refuse(c, msg, func() error { return u.flash(c, back, msg, true) })
	}
}

// userMessage is what a person sees for an error of the engine or the
// validation: validation's words for a person, naming the field.
func userMessage(err error) string {
	if problems, ok := validate.List(err); ok {
		e := problems[0]
		if e.Hint != "" && len(e.Path) > 0 {
			return e.Path.String() + ": " + e.Hint
		}
		return e.Message
	}
	var ae *Error
	if errors.As(err, &ae) && ae.Status < 500 {
		if ae.Param != "" && !strings.Contains(ae.Message, ae.Param) {
			return ae.Param + ": " + ae.Message
		}
		return ae.Message
	}
	return "Something went wrong; see the server log."
}

// newRun validates a run the web app starts with validate.Run, loading
// the assistant as the API does. A person's mistake comes back as msg.
func (u *UI) newRun(ctx context.Context, f validate.RunFields) (run db.Run, msg string, err error) {
	id, err := f.AssistantRef()
	if err != nil {
		return run, userMessage(err), nil
	}
	a, err := u.store.GetAssistant(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return run, "Assistant " + id + " does not exist.", nil
	}
	if err != nil {
		return run, "", err
	}
	return runOrMessage(validate.Run(f, a, nil))
}

// runOrMessage splits validate.Run's outcome into a person's message and
// a failure.
func runOrMessage(run db.Run, err error) (db.Run, string, error) {
	if _, ok := validate.List(err); ok {
		return run, userMessage(err), nil
	}
	return run, "", err
}

// AddMessage handles POST /threads/:thread_id/messages: action "add"
// stores the message; "run" stores it and starts a run of the chosen
// assistant in the same transaction. A refused message comes back in the
// composer with the reason (422), so nothing typed is lost.
func (u *UI) AddMessage(c *echo.Context) error {
	threadID := c.Param("thread_id")
	ctx := c.Request().Context()
	if _, err := u.store.GetThread(ctx, threadID); err != nil {
		return storeErr(err, "thread", threadID)
	}
	text, role, action, assistantID := c.FormValue("content"), c.FormValue("role"), c.FormValue("action"), c.FormValue("assistant_id")
	again := func(msg string) error {
		return u.refuse(c, msg, func() error {
			return u.showThread(c, &views.Composer{Content: text, Role: role, Selected: assistantID, Error: msg})
		})
	}
	m, msg := u.composedMessage(c, text, role)
	if msg != "" {
		return again(msg)
	}
	m.ThreadID = threadID
	back := "/threads/" + threadID
	if action != "run" {
		if _, err := u.store.CreateMessage(ctx, m); err != nil {
			if msg := runConflict(err); msg != "" {
				return again(msg)
			}
			return storeErr(err, "thread", threadID)
		}
		return u.done(c, back, "", "Message added.")
	}
	if u.api.engine == nil {
		return again("Runs are not available on this server.")
	}
	if assistantID == "" || len(assistantID) > maxIDLen {
		return again("Choose an assistant to run.")
	}
	run, msg, err := u.newRun(ctx, validate.RunFields{AssistantID: validate.Some(assistantID)})
	if err != nil {
		return Internal(err)
	}
	if msg != "" {
		return again(msg)
	}
	run.ThreadID = threadID
	if _, err := u.api.engine.CreateRun(ctx, run, []db.Message{m}); err != nil {
		return again(userMessage(runErr(err, "")))
	}
	return u.done(c, back, "", "Message added; the run started.")
}

// composedMessage validates a composed message with validate.Message, as
// POST /v1/threads/{id}/messages does. Blank text counts as none.
func (u *UI) composedMessage(c *echo.Context, text, role string) (db.Message, string) {
	if strings.TrimSpace(text) == "" {
		text = ""
	}
	if role == "" {
		role = "user"
	}
	m, err := validate.Message(c.Request().Context(), u.store, validate.Path{},
		validate.MessageRequest{Role: role, Content: validate.TextContent(text)})
	if problems, ok := validate.List(err); ok {
		return m, problems[0].Text()
	}
	if err != nil {
		u.cfg.Log.Error("validate message", "error", err)
		return m, "Could not add the message; see the server log."
	}
	return m, ""
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
	if u.api.engine == nil {
		return fail("Runs are not available on this server.")
	}
	run, err := u.store.GetRun(ctx, threadID, runID)
	if err != nil {
		return storeErr(err, "run", runID)
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
	if _, _, err := u.api.engine.SubmitToolOutputs(ctx, threadID, runID, outputs); err != nil {
		return fail(userMessage(runErr(err, runID)))
	}
	return u.done(c, back, "", "Outputs submitted; the run continues.")
}

// CancelRun handles POST /threads/:thread_id/runs/:run_id/cancel.
func (u *UI) CancelRun(c *echo.Context) error {
	threadID, runID := c.Param("thread_id"), c.Param("run_id")
	back := "/threads/" + threadID
	fail := u.refuseBack(c, back)
	if u.api.engine == nil {
		return fail("Runs are not available on this server.")
	}
	if _, err := u.api.engine.Cancel(c.Request().Context(), threadID, runID); err != nil {
		return fail(userMessage(runErr(err, runID)))
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
	if u.api.engine == nil {
		return fail("Runs are not available on this server.")
	}
	old, err := u.store.GetRun(ctx, threadID, runID)
	if err != nil {
		return storeErr(err, "run", runID)
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
		return Internal(err)
	}
	if msg != "" {
		return fail(msg)
	}
	run.ThreadID = threadID
	if _, err := u.api.engine.CreateRun(ctx, run, nil); err != nil {
		return fail(userMessage(runErr(err, "")))
	}
	return u.done(c, back, "", "A new run started.")
}

// playgroundURL is the playground's address for a thread, an assistant
// and the settings pane's overrides (see ui_overrides.go).
func playgroundURL(threadID, assistantID string, ov views.Overrides) string {
	q := url.Values{}
	if threadID != "" {
		q.Set("thread", threadID)
	}
	if assistantID != "" {
		q.Set("assistant", assistantID)
	}
	setOverrides(q, ov)
	if len(q) == 0 {
		return "/playground"
	}
	return "/playground?" + q.Encode()
}

// Playground handles GET /playground?thread=…&assistant=…&<overrides>:
// settings with per-run overrides | the thread | the timeline. The URL
// names the thread and the overrides, so a reload or a shared link opens
// the same state.
func (u *UI) Playground(c *echo.Context) error {
	return u.showPlayground(c, c.QueryParam("thread"), c.QueryParam("assistant"), overridesFromQuery(c.QueryParams()), nil)
}

func (u *UI) showPlayground(c *echo.Context, threadID, assistantID string, st overrideState, comp *views.Composer) error {
	ctx := c.Request().Context()
	v := views.PlaygroundView{ThreadID: threadID}
	var err error
	if v.Assistants, err = u.assistantChoices(ctx); err != nil {
		return Internal(err)
	}
	status := http.StatusOK
	if threadID != "" {
		if _, err := u.store.GetThread(ctx, threadID); err != nil {
			if errors.Is(err, db.ErrNotFound) {
				v.Notice = "Thread " + threadID + " does not exist (deleted?). Start a new one."
				v.ThreadID, threadID = "", ""
				status = http.StatusNotFound
			} else {
				return Internal(err)
			}
		}
	}
	if threadID != "" {
		if v.Live, _, err = u.threadLive(c, threadID); err != nil {
			return err
		}
		if assistantID == "" && v.Live.Latest != nil {
			assistantID = v.Live.Latest.AssistantID
		}
	}
	v.Live.ThreadID, v.Live.CanRun = threadID, u.api.engine != nil
	if assistantID == "" && len(v.Assistants) > 0 {
		assistantID = v.Assistants[0][0]
	}
	if assistantID != "" {
		a, err := u.store.GetAssistant(ctx, assistantID)
		switch {
		case errors.Is(err, db.ErrNotFound):
			v.Notice = "Assistant " + assistantID + " does not exist; pick another."
		case err != nil:
			return Internal(err)
		default:
			v.Assistant = assistantSettings(a)
			st = fitOverrides(st, v.Assistant)
			v.OverrideErrors = u.overrideErrors(a, st.Overrides)
		}
	}
	v.Overrides, v.OverrideNotes, v.InstructionsOmitted = st.Overrides, st.Notes, st.InstructionsOmitted
	v.CarryQuery, v.URLInstructionsLimit = carryQuery(st.Overrides), maxURLInstructions
	if v.Assistant != nil {
		v.NewThreadHref = playgroundURL("", v.Assistant.ID, st.Overrides)
	} else {
		v.NewThreadHref = playgroundURL("", "", st.Overrides)
		if len(v.CarryQuery) > 0 {
			v.OverrideNotes = append(v.OverrideNotes, "This link's overrides apply once an assistant is picked; they are kept until then.")
		}
	}
	if comp == nil {
		comp = &views.Composer{}
	} else {
		status = http.StatusUnprocessableEntity
	}
	comp.CanRun = u.api.engine != nil
	comp.Assistants = v.Assistants
	comp.Selected = assistantID
	if v.Assistant != nil {
		comp.Fixed = v.Assistant.ID
	}
	comp.Disabled = v.Live.Active
	v.Composer = comp
	title := "Playground"
	if threadID != "" {
		title += " · " + threadID
	}
	return render(c, status, views.PlaygroundPage(u.page(c, title, "playground"), v))
}

// assistantSettings is what the settings pane shows as the assistant's
// own values, which overrides replace for one run.
func assistantSettings(a db.Assistant) *views.AssistantSettings {
	s := &views.AssistantSettings{ID: a.ID, Name: deref(a.Name), Model: a.Model, Instructions: deref(a.Instructions)}
	if a.Temperature != nil {
		s.Temperature = strconv.FormatFloat(*a.Temperature, 'f', -1, 64)
	}
	if a.TopP != nil {
		s.TopP = strconv.FormatFloat(*a.TopP, 'f', -1, 64)
	}
	s.ResponseFormat = "auto"
	var rf struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(a.ResponseFormat, &rf) == nil && rf.Type != "" {
		s.ResponseFormat = rf.Type
	}
	for _, t := range a.Tools {
		name := t.Type
		if t.Function != nil {
			name = t.Function.Name
		}
		s.Tools = append(s.Tools, name)
	}
	return s
}

// playgroundOverrides reads the settings pane: only fields given count
// as overrides of the assistant's values.
func playgroundOverrides(c *echo.Context) views.Overrides {
	ov := views.Overrides{Model: strings.TrimSpace(c.FormValue("model")), Instructions: c.FormValue("instructions"),
		Temperature: strings.TrimSpace(c.FormValue("temperature")), TopP: strings.TrimSpace(c.FormValue("top_p")),
		ToolChoice: c.FormValue("tool_choice"), ResponseFormat: c.FormValue("response_format"),
		ToolsSet: c.FormValue("tools_override") == "on"}
	if ov.ToolsSet {
		ov.Tools = c.Request().Form["tool"]
	}
	return ov
}

// runFieldsFrom reads the settings pane's overrides into run fields, as
// the API's decoder reads a body: what cannot be read (a number that is
// not one, a choice the pane does not offer) comes back by form name.
func runFieldsFrom(assistantID string, all []db.Tool, ov views.Overrides) (validate.RunFields, map[string]string) {
	errs := map[string]string{}
	f := validate.RunFields{AssistantID: validate.Some(assistantID)}
	if ov.Model != "" {
		f.Model = validate.Some(ov.Model)
	}
	if ov.Instructions != "" {
		f.Instructions = validate.Some(ov.Instructions)
	}
	for _, n := range []struct {
		name, v string
		dst     *validate.Opt[float64]
	}{{"temperature", ov.Temperature, &f.Temperature}, {"top_p", ov.TopP, &f.TopP}} {
		if n.v == "" {
			continue
		}
		// ParseFloat also reads "NaN" and "Inf", which are not numbers
		// a run can hold.
		x, err := strconv.ParseFloat(n.v, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			errs[n.name] = "“" + n.v + "” is not a number."
			continue
		}
		*n.dst = validate.Some(x)
	}
	switch ov.ToolChoice {
	case "":
	case "auto", "none", "required":
		f.ToolChoice = validate.Some(json.RawMessage(strconv.Quote(ov.ToolChoice)))
	default:
		name, ok := strings.CutPrefix(ov.ToolChoice, "function:")
		if !ok {
			errs["tool_choice"] = "Unknown choice “" + ov.ToolChoice + "”."
			break
		}
		b, _ := json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": name}})
		f.ToolChoice = validate.Some(json.RawMessage(b))
	}
	switch ov.ResponseFormat {
	case "":
	case "auto":
		f.ResponseFormat = validate.Some(json.RawMessage(`"auto"`))
	case "text", "json_object":
		f.ResponseFormat = validate.Some(json.RawMessage(`{"type":"` + ov.ResponseFormat + `"}`))
	default:
		errs["response_format"] = "Unknown format “" + ov.ResponseFormat + "”."
	}
	if ov.ToolsSet {
		keep := map[string]bool{}
		for _, t := range ov.Tools {
			keep[t] = true
		}
		tools := []db.Tool{}
		for _, t := range all {
			name := t.Type
			if t.Function != nil {
				name = t.Function.Name
			}
			if keep[name] {
				tools = append(tools, t)
			}
		}
		f.Tools = validate.Some(tools)
	}
	return f, errs
}

// overrideRun is the run a's overrides ask for, checked with validate.Run
// as POST /v1/threads/{id}/runs checks one; each problem is keyed by the
// pane's field, which has the name of the run field its path starts with.
func overrideRun(a db.Assistant, ov views.Overrides) (db.Run, map[string]string, error) {
	f, errs := runFieldsFrom(a.ID, a.Tools, ov)
	run, err := validate.Run(f, a, nil)
	problems, ok := validate.List(err)
	if err != nil && !ok {
		return run, nil, err
	}
	fieldErrors(errs, problems)
	return run, errs, nil
}

// overrideMessage is a refused run's message: each field's problem, named.
func overrideMessage(errs map[string]string) string {
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	msgs := make([]string, len(keys))
	for i, k := range keys {
		msgs[i] = k + ": " + errs[k]
	}
	return strings.Join(msgs, " ")
}

// PlaygroundPost handles POST /playground: add a message to the thread (a
// new one when none is named) and, for "Add and run", start a run with the
// settings pane's overrides.
func (u *UI) PlaygroundPost(c *echo.Context) error {
	ctx := c.Request().Context()
	threadID, assistantID := c.FormValue("thread_id"), c.FormValue("assistant_id")
	text, role, action := c.FormValue("content"), c.FormValue("role"), c.FormValue("action")
	ov := playgroundOverrides(c)
	again := func(msg string) error {
		return u.refuse(c, msg, func() error {
			return u.showPlayground(c, threadID, assistantID, overrideState{Overrides: ov},
				&views.Composer{Content: text, Role: role, Error: msg})
		})
	}
	if threadID != "" {
		if _, err := u.store.GetThread(ctx, threadID); err != nil {
			if errors.Is(err, db.ErrNotFound) {
				threadID = ""
				return again("That thread no longer exists; this message would start a new one.")
			}
			return Internal(err)
		}
	}
	m, msg := u.composedMessage(c, text, role)
	if msg != "" {
		return again(msg)
	}
	if action != "run" {
		if threadID == "" {
			t, _, err := u.store.CreateThread(ctx, db.Thread{}, []db.Message{m})
			if err != nil {
				return Internal(err)
			}
			return u.done(c, "", playgroundURL(t.ID, assistantID, ov), "Thread started.")
		}
		m.ThreadID = threadID
		if _, err := u.store.CreateMessage(ctx, m); err != nil {
			if msg := runConflict(err); msg != "" {
				return again(msg)
			}
			return storeErr(err, "thread", threadID)
		}
		return u.done(c, playgroundURL(threadID, assistantID, ov), "", "Message added.")
	}
	if u.api.engine == nil {
		return again("Runs are not available on this server.")
	}
	if assistantID == "" || len(assistantID) > maxIDLen {
		return again("Choose an assistant to run.")
	}
	a, err := u.store.GetAssistant(ctx, assistantID)
	if err != nil {
		if errors.Is(err, db.ErrNotFound) {
			return again("Assistant " + assistantID + " does not exist.")
		}
		return Internal(err)
	}
	run, errs, err := overrideRun(a, ov)
	if err != nil {
		return Internal(err)
	}
	if len(errs) > 0 {
		return again(overrideMessage(errs))
	}
	if threadID == "" {
		t, _, err := u.api.engine.CreateThreadAndRun(ctx, db.Thread{}, []db.Message{m}, run)
		if err != nil {
			return again(userMessage(runErr(err, "")))
		}
		return u.done(c, "", playgroundURL(t.ID, assistantID, ov), "The run started.")
	}
	run.ThreadID = threadID
	if _, err := u.api.engine.CreateRun(ctx, run, []db.Message{m}); err != nil {
		return again(userMessage(runErr(err, "")))
	}
	return u.done(c, playgroundURL(threadID, assistantID, ov), "", "The run started.")
}
