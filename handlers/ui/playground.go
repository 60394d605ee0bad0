package ui

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
	"github.com/assistantd/assistantd/views"
)

// playgroundURL is the playground's address for a thread, an assistant
// and the settings pane's overrides (see overrides.go).
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
		return respond.Internal(err)
	}
	status := http.StatusOK
	convID := ""
	if responsesMode(c) {
		v.API, threadID, v.ThreadID = apiResponses, "", ""
		if u.cfg.Responses == nil {
			v.Notice = "Responses are not available on this server."
		}
		if convID = conversationParam(c); convID != "" {
			if _, err := u.store.GetConversation(ctx, convID); errors.Is(err, db.ErrNotFound) {
				v.Notice = "Conversation " + convID + " does not exist. Start a new one."
				convID, status = "", http.StatusNotFound
			} else if err != nil {
				return respond.Internal(err)
			}
		}
		if convID != "" {
			v.ConversationID = convID
			if v.Live, err = u.conversationLive(c, convID); err != nil {
				return err
			}
			if assistantID == "" && v.Live.Latest != nil {
				assistantID = v.Live.Latest.AssistantID
			}
		}
	}
	if threadID != "" {
		if _, err := u.store.GetThread(ctx, threadID); err != nil {
			if errors.Is(err, db.ErrNotFound) {
				v.Notice = "Thread " + threadID + " does not exist (deleted?). Start a new one."
				v.ThreadID, threadID = "", ""
				status = http.StatusNotFound
			} else {
				return respond.Internal(err)
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
	if v.API == "" {
		v.Live.ThreadID = threadID
	}
	v.Live.CanRun = u.cfg.Engine != nil && (v.API == "" || u.cfg.Responses != nil)
	if assistantID == "" && len(v.Assistants) > 0 {
		assistantID = v.Assistants[0][0]
	}
	if assistantID != "" {
		a, err := u.store.GetAssistant(ctx, assistantID)
		switch {
		case errors.Is(err, db.ErrNotFound):
			v.Notice = "Assistant " + assistantID + " does not exist; pick another."
		case err != nil:
			return respond.Internal(err)
		default:
			v.Assistant = assistantSettings(a)
			st = fitOverrides(st, v.Assistant)
			v.OverrideErrors = u.overrideErrors(a, st.Overrides)
		}
	}
	v.Overrides, v.OverrideNotes, v.InstructionsOmitted = st.Overrides, st.Notes, st.InstructionsOmitted
	v.CarryQuery, v.URLInstructionsLimit = carryQuery(st.Overrides), maxURLInstructions
	if v.API != "" {
		id := ""
		if v.Assistant != nil {
			id = v.Assistant.ID
		}
		v.NewThreadHref = conversationURL("", id, st.Overrides)
	} else if v.Assistant != nil {
		v.NewThreadHref = playgroundURL("", v.Assistant.ID, st.Overrides)
		if canEdit(c) && u.cfg.Engine != nil {
			v.CompareHref = "/playground/compare" + strings.TrimPrefix(playgroundURL(threadID, v.Assistant.ID, st.Overrides), "/playground")
		}
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
	comp.CanRun = v.Live.CanRun
	comp.API, comp.Conversation = v.API, v.ConversationID
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
	} else if v.ConversationID != "" {
		title += " · " + v.ConversationID
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
// as overrides of the assistant's values. The pane's tool checkboxes act
// directly: with tools_shown (a hidden field beside them) the ticked ones
// are the run's tools, and the list counts as overridden only when some
// tool is left out (see fitTools).
func playgroundOverrides(c *echo.Context) views.Overrides {
	ov := views.Overrides{Model: strings.TrimSpace(c.FormValue("model")), Instructions: c.FormValue("instructions"),
		Temperature: strings.TrimSpace(c.FormValue("temperature")), TopP: strings.TrimSpace(c.FormValue("top_p")),
		ToolChoice: c.FormValue("tool_choice"), ResponseFormat: c.FormValue("response_format"),
		ToolsSet: c.FormValue("tools_override") == "on" || c.FormValue("tools_shown") != ""}
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

// overrideFields names the fields a refused run's problems are about.
func overrideFields(errs map[string]string) string {
	keys := make([]string, 0, len(errs))
	for k := range errs {
		if k == "" {
			k = "the combination"
		}
		keys = append(keys, strings.ReplaceAll(k, "_", " "))
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// PlaygroundPost handles POST /playground: add a message to the thread (a
// new one when none is named) and, for "Add and run", start a run with the
// settings pane's overrides.
func (u *UI) PlaygroundPost(c *echo.Context) error {
	if responsesMode(c) {
		return u.playgroundResponsesPost(c)
	}
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
			return respond.Internal(err)
		}
	}
	m, msg := u.composedMessage(c, text, role)
	if msg != "" {
		return again(msg)
	}
	if action != "run" {
		if m, msg = u.attach(c, m, text, role); msg != "" {
			return again(msg)
		}
		if threadID == "" {
			t, _, err := u.store.CreateThread(ctx, db.Thread{}, []db.Message{m})
			if err != nil {
				return respond.Internal(err)
			}
			return u.done(c, "", playgroundURL(t.ID, assistantID, ov), "Thread started.")
		}
		m.ThreadID = threadID
		if _, err := u.store.CreateMessage(ctx, m); err != nil {
			if msg := runConflict(err); msg != "" {
				return again(msg)
			}
			return respond.StoreErr(err, "thread", threadID)
		}
		return u.done(c, playgroundURL(threadID, assistantID, ov), "", "Message added.")
	}
	if u.cfg.Engine == nil {
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
		return respond.Internal(err)
	}
	ov = fitTools(ov, a.Tools)
	run, errs, err := overrideRun(a, ov)
	if err != nil {
		return respond.Internal(err)
	}
	if len(errs) > 0 {
		// Each problem shows beside its field in the settings pane; the
		// composer only says where to look.
		msg := "Not run: fix what the settings pane marks (" + overrideFields(errs) + ")."
		if liveRequest(c) {
			return c.JSON(http.StatusUnprocessableEntity, map[string]any{"message": msg, "fields": errs})
		}
		return again(msg)
	}
	if m, msg = u.attach(c, m, text, role); msg != "" {
		return again(msg)
	}
	if threadID == "" {
		t, _, err := u.cfg.Engine.CreateThreadAndRun(ctx, db.Thread{}, []db.Message{m}, run)
		if err != nil {
			return again(userMessage(respond.RunErr(err, "")))
		}
		return u.done(c, "", playgroundURL(t.ID, assistantID, ov), "The run started.")
	}
	run.ThreadID = threadID
	if _, err := u.cfg.Engine.CreateRun(ctx, run, []db.Message{m}); err != nil {
		return again(userMessage(respond.RunErr(err, "")))
	}
	return u.done(c, playgroundURL(threadID, assistantID, ov), "", "The run started.")
}
