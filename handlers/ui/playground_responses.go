package ui

// The playground driving an assistant through the Responses API. A
// playground session is a conversation (conv_…): it keeps the turns as
// OpenAI's own Conversations do, has an id the page's address can carry
// (a reload or a shared link reopens it), takes messages without running
// ("Add", as a thread does), and refuses a second response while one runs
// (conversation_locked), so the page behaves as it does for a thread. A
// previous_response_id chain would have none of that: the page would have
// to remember the newest response itself, and an added message would have
// nowhere to wait for the next run.
//
// Each turn is a response with the assistant as its prompt (prompt.id) and
// the settings pane's overrides as request fields, started through the
// same checks as POST /v1/responses. A response runs on a thread of its
// own: the page follows the newest response's thread for live tokens and
// steps, and re-renders the conversation (GET
// /playground/conversations/:id/live) when something changes.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/views"
)

// ResponseStarter starts responses for the playground: fields are a
// create request's (POST /v1/responses), checked as the API checks them;
// a refused request is a *respond.Error naming its param.
type ResponseStarter interface {
	Start(ctx context.Context, fields map[string]json.RawMessage) (db.ResponseRecord, error)
}

// conversationStore is what the playground needs of conversations and
// the responses made on them.
type conversationStore interface {
	CreateConversation(ctx context.Context, meta db.Metadata, items []json.RawMessage) (db.Conversation, error)
	GetConversation(ctx context.Context, id string) (db.Conversation, error)
	DatedConversationItems(ctx context.Context, id string) ([]db.DatedItem, error)
	AddConversationItems(ctx context.Context, id string, items []json.RawMessage) error
	ConversationResponses(ctx context.Context, convID string) ([]db.ResponseRecord, error)
	ListResponseInputItems(ctx context.Context, responseID string, p db.ListParams) (db.Page[json.RawMessage], error)
	GetResponse(ctx context.Context, id string) (db.ResponseRecord, error)
}

// apiResponses is the playground's api= value for the Responses API.
const apiResponses = "responses"

// responsesMode reports whether a playground request is about the
// Responses API.
func responsesMode(c *echo.Context) bool { return c.FormValue("api") == apiResponses }

// conversationParam is the conversation a playground request names.
func conversationParam(c *echo.Context) string {
	if id := c.FormValue("conversation_id"); id != "" {
		return id
	}
	return c.QueryParam("conversation")
}

// conversationURL is the playground's address for a conversation driven
// through the Responses API.
func conversationURL(convID, assistantID string, ov views.Overrides) string {
	u, _ := url.Parse(playgroundURL("", assistantID, ov))
	q := u.Query()
	q.Set("api", apiResponses)
	if convID != "" {
		q.Set("conversation", convID)
	}
	return "/playground?" + q.Encode()
}

// ConversationLive handles GET /playground/conversations/:conversation_id/live:
// the live parts of the playground for a conversation, for live.js.
func (u *UI) ConversationLive(c *echo.Context) error {
	id := c.Param("conversation_id")
	if _, err := u.store.GetConversation(c.Request().Context(), id); err != nil {
		return respond.StoreErr(err, "conversation", id)
	}
	v, err := u.conversationLive(c, id)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.LiveFragment(u.page(c, "", ""), v))
}

// conversationLive builds the live view of a conversation: its items as
// the conversation (function calls inline with their outputs), the
// unfinished response's input and run as they stream, every response's
// run in the timeline, and the calls the newest response ended with that
// no output answers yet.
func (u *UI) conversationLive(c *echo.Context, convID string) (views.LiveView, error) {
	ctx := c.Request().Context()
	v := views.LiveView{CanRun: u.cfg.Engine != nil && u.cfg.Responses != nil}
	resps, err := u.store.ConversationResponses(ctx, convID)
	if err != nil {
		return v, respond.Internal(err)
	}
	for _, r := range resps {
		runs, _, err := u.threadRuns(ctx, r.ThreadID)
		if err != nil {
			return v, respond.Internal(err)
		}
		for _, rv := range runs {
			rv.ThreadID, rv.ResponseID = r.ThreadID, r.ID
			v.Runs = append(v.Runs, rv)
		}
	}
	if n := len(v.Runs); n > 0 {
		v.Latest = &v.Runs[n-1]
		v.Active = v.Latest.Active
	}
	items, err := u.store.DatedConversationItems(ctx, convID)
	if err != nil {
		return v, respond.Internal(err)
	}
	var pending []views.ToolCallView
	v.Items, pending = itemsView(items)
	if len(resps) == 0 {
		return v, nil
	}
	last := resps[len(resps)-1]
	v.ThreadID = last.ThreadID
	if last.Output != nil {
		if v.Latest != nil && v.Latest.Status == db.RunCompleted {
			v.Latest.Pending = pending
		}
		return v, nil
	}
	// Unfinished: the conversation gets its items when it ends; until then
	// its input and its own thread show.
	in, err := u.store.ListResponseInputItems(ctx, last.ID, db.ListParams{Limit: 100, Order: "asc"})
	if err != nil {
		return v, respond.Internal(err)
	}
	dated := make([]db.DatedItem, len(in.Data))
	for i, it := range in.Data {
		dated[i] = db.DatedItem{Item: it, CreatedAt: last.CreatedAt}
	}
	more, _ := itemsView(dated)
	v.Items = append(v.Items, more...)
	remote, err := u.remoteImages(c)
	if err != nil {
		return v, err
	}
	msgs, _, err := u.threadMessages(ctx, last.ThreadID, remote)
	if err != nil {
		return v, respond.Internal(err)
	}
	lv, err := u.liveView(ctx, last.ThreadID, msgs)
	if err != nil {
		return v, respond.Internal(err)
	}
	v.Items = append(v.Items, lv.Items...)
	return v, nil
}

// convItem is the part of a Responses item the page shows.
type convItem struct {
	Type      string          `json:"type"`
	ID        string          `json:"id"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments string          `json:"arguments"`
	Output    json.RawMessage `json:"output"`
	Code      string          `json:"code"`
	Outputs   []struct {
		Type string `json:"type"`
		Logs string `json:"logs"`
	} `json:"outputs"`
	Queries []string `json:"queries"`
	Results []struct {
		FileID   string  `json:"file_id"`
		Filename string  `json:"filename"`
		Score    float64 `json:"score"`
		Text     string  `json:"text"`
	} `json:"results"`
}

// itemsView turns items into the conversation's entries: messages, and
// tool calls grouped as a run's step is, each function call with the
// output that answered it; pending are the function calls no output
// answers.
func itemsView(items []db.DatedItem) (out []views.ConvItem, pending []views.ToolCallView) {
	parsed := make([]convItem, len(items))
	outputs := map[string]string{}
	for i, it := range items {
		_ = json.Unmarshal(it.Item, &parsed[i])
		if parsed[i].Type == "" && parsed[i].Role != "" {
			parsed[i].Type = "message"
		}
		if parsed[i].Type == "function_call_output" {
			outputs[parsed[i].CallID] = itemText(parsed[i].Output)
		}
	}
	var step *views.StepView
	addCall := func(it convItem, at int64, tv views.ToolCallView) {
		if step == nil {
			step = &views.StepView{ID: it.ID, Type: db.StepToolCalls, Status: "completed", CreatedAt: at}
			out = append(out, views.ConvItem{Step: step})
		}
		step.ToolCalls = append(step.ToolCalls, tv)
	}
	for i, it := range parsed {
		at := items[i].CreatedAt
		switch it.Type {
		case "message":
			step = nil
			text := itemText(it.Content)
			mv := views.MessageView{ID: it.ID, Role: it.Role, Status: "completed", CreatedAt: at}
			if it.Role == "assistant" {
				mv.Parts = []views.Part{{Kind: "text", HTML: renderMarkdown(text)}}
			} else {
				mv.Parts = []views.Part{{Kind: "plain", Text: text}}
			}
			out = append(out, views.ConvItem{Message: &mv})
		case "function_call":
			tv := views.ToolCallView{ID: it.CallID, Type: "function", Name: it.Name, Arguments: prettyJSON(it.Arguments)}
			if o, ok := outputs[it.CallID]; ok {
				tv.Output = prettyJSON(o)
			} else {
				tv.Pending = true
				pending = append(pending, tv)
			}
			addCall(it, at, tv)
		case "code_interpreter_call":
			tv := views.ToolCallView{ID: it.ID, Type: "code_interpreter", Code: it.Code}
			for _, o := range it.Outputs {
				if o.Type == "logs" {
					tv.CodeOutputs = append(tv.CodeOutputs, views.CodeOutputView{Logs: o.Logs})
				}
			}
			addCall(it, at, tv)
		case "file_search_call":
			tv := views.ToolCallView{ID: it.ID, Type: "file_search", Arguments: strings.Join(it.Queries, "\n")}
			for _, r := range it.Results {
				tv.Results = append(tv.Results, views.FileResultView{FileID: r.FileID, FileName: r.Filename, Score: r.Score, Text: r.Text})
			}
			addCall(it, at, tv)
		}
	}
	return out, pending
}

// itemText is the text of a message's content or a call's output: a
// string, or its parts' texts.
func itemText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text    string `json:"text"`
		Refusal string `json:"refusal"`
	}
	_ = json.Unmarshal(raw, &parts)
	var texts []string
	for _, p := range parts {
		if p.Text != "" {
			texts = append(texts, p.Text)
		} else if p.Refusal != "" {
			texts = append(texts, p.Refusal)
		}
	}
	return strings.Join(texts, "\n\n")
}

// responseFields are the create request the playground sends for
// assistant a with the settings pane's overrides: the assistant as the
// prompt (its model, instructions, tools and their webhooks), each
// override as its request field. What cannot be read comes back by form
// name, as runFieldsFrom reports it.
func responseFields(a db.Assistant, ov views.Overrides) (map[string]json.RawMessage, map[string]string) {
	f, errs := runFieldsFrom(a.ID, a.Tools, ov)
	fields := map[string]json.RawMessage{"prompt": mustJSON(map[string]string{"id": a.ID})}
	if f.Model.Set {
		fields["model"] = mustJSON(f.Model.V)
	}
	if f.Instructions.Set {
		fields["instructions"] = mustJSON(f.Instructions.V)
	}
	if f.Temperature.Set {
		fields["temperature"] = mustJSON(f.Temperature.V)
	}
	if f.TopP.Set {
		fields["top_p"] = mustJSON(f.TopP.V)
	}
	switch {
	case ov.ToolChoice == "auto" || ov.ToolChoice == "none" || ov.ToolChoice == "required":
		fields["tool_choice"] = mustJSON(ov.ToolChoice)
	case strings.HasPrefix(ov.ToolChoice, "function:") && errs["tool_choice"] == "":
		fields["tool_choice"] = mustJSON(map[string]string{"type": "function", "name": strings.TrimPrefix(ov.ToolChoice, "function:")})
	}
	if ov.ResponseFormat == "text" || ov.ResponseFormat == "json_object" {
		fields["text"] = mustJSON(map[string]any{"format": map[string]string{"type": ov.ResponseFormat}})
	}
	if f.Tools.Set {
		fields["tools"] = mustJSON(flatTools(a, f.Tools.V))
	}
	return fields, errs
}

// flatTools are an assistant's tools in the Responses form (functions
// flat, file_search with its vector stores, code_interpreter with its
// files in an auto container).
func flatTools(a db.Assistant, tools []db.Tool) []any {
	res := a.ToolResources
	if res == nil {
		res = &db.ToolResources{}
	}
	out := []any{}
	for _, t := range tools {
		switch {
		case t.Type == "function" && t.Function != nil:
			fn := map[string]any{"type": "function", "name": t.Function.Name, "strict": t.Function.Strict != nil && *t.Function.Strict}
			if t.Function.Description != "" {
				fn["description"] = t.Function.Description
			}
			if len(t.Function.Parameters) > 0 {
				fn["parameters"] = t.Function.Parameters
			}
			out = append(out, fn)
		case t.Type == "file_search":
			ids := []string{}
			if res.FileSearch != nil {
				ids = res.FileSearch.VectorStoreIDs
			}
			out = append(out, map[string]any{"type": "file_search", "vector_store_ids": ids})
		case t.Type == "code_interpreter":
			files := []string{}
			if res.CodeInterpreter != nil {
				files = res.CodeInterpreter.FileIDs
			}
			out = append(out, map[string]any{"type": "code_interpreter", "container": map[string]any{"type": "auto", "file_ids": files}})
		}
	}
	return out
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only values that always marshal are passed
	}
	return b
}

// paneField is the settings pane's field a refused response's param is
// about ("" when none is).
func paneField(param string) string {
	head, _, _ := strings.Cut(param, ".")
	head, _, _ = strings.Cut(head, "[")
	switch head {
	case "model", "instructions", "temperature", "top_p", "tool_choice", "tools":
		return head
	case "text":
		return "response_format"
	}
	return ""
}

// playgroundResponsesPost handles POST /playground for the Responses API:
// "Add" appends the message to the conversation (starting one when none
// is named); "Add and run" starts a response on it with the message;
// "Submit all outputs" starts one with an output for every function call
// the conversation waits for.
func (u *UI) playgroundResponsesPost(c *echo.Context) error {
	ctx := c.Request().Context()
	convID, assistantID := conversationParam(c), c.FormValue("assistant_id")
	text, role, action := c.FormValue("content"), c.FormValue("role"), c.FormValue("action")
	ov := playgroundOverrides(c)
	again := func(msg string) error {
		return u.refuse(c, msg, func() error {
			return u.showPlayground(c, "", assistantID, overrideState{Overrides: ov},
				&views.Composer{Content: text, Role: role, Error: msg})
		})
	}
	if convID != "" {
		if _, err := u.store.GetConversation(ctx, convID); err != nil {
			if errors.Is(err, db.ErrNotFound) {
				return again("That conversation no longer exists; start a new one.")
			}
			return respond.Internal(err)
		}
	}
	var input []json.RawMessage
	if action == "outputs" {
		if convID == "" {
			return again("No function call is waiting for an output.")
		}
		items, err := u.store.DatedConversationItems(ctx, convID)
		if err != nil {
			return respond.Internal(err)
		}
		_, pending := itemsView(items)
		if len(pending) == 0 {
			return again("No function call is waiting for an output.")
		}
		var missing []string
		for _, call := range pending {
			out := c.FormValue("output-" + call.ID)
			if strings.TrimSpace(out) == "" {
				missing = append(missing, call.Name+" ("+call.ID+")")
			}
			input = append(input, mustJSON(map[string]string{"type": "function_call_output", "call_id": call.ID, "output": out}))
		}
		if len(missing) > 0 {
			return again("Every call needs an output; missing: " + strings.Join(missing, ", ") + ".")
		}
	} else {
		if _, msg := u.composedMessage(c, text, role); msg != "" {
			return again(msg)
		}
		part := "input_text"
		if role == "assistant" {
			part = "output_text"
		}
		item := map[string]any{"type": "message", "role": role, "content": []map[string]any{{"type": part, "text": text}}}
		if role == "assistant" {
			item["content"] = []map[string]any{{"type": part, "text": text, "annotations": []any{}}}
		}
		if action != "run" {
			item["id"], item["status"] = db.NewID("msg_"), "completed"
			if convID == "" {
				conv, err := u.store.CreateConversation(ctx, nil, []json.RawMessage{mustJSON(item)})
				if err != nil {
					return respond.Internal(err)
				}
				return u.done(c, "", conversationURL(conv.ID, assistantID, ov), "Conversation started.")
			}
			if err := u.store.AddConversationItems(ctx, convID, []json.RawMessage{mustJSON(item)}); err != nil {
				return respond.StoreErr(err, "conversation", convID)
			}
			return u.done(c, conversationURL(convID, assistantID, ov), "", "Message added.")
		}
		input = []json.RawMessage{mustJSON(item)}
	}
	if u.cfg.Engine == nil || u.cfg.Responses == nil {
		return again("Responses are not available on this server.")
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
	fields, errs := responseFields(a, ov)
	refused := func(errs map[string]string) error {
		msg := "Not run: fix what the settings pane marks (" + overrideFields(errs) + ")."
		if liveRequest(c) {
			return c.JSON(http.StatusUnprocessableEntity, map[string]any{"message": msg, "fields": errs})
		}
		return again(msg)
	}
	if len(errs) > 0 {
		return refused(errs)
	}
	if convID == "" {
		conv, err := u.store.CreateConversation(ctx, nil, nil)
		if err != nil {
			return respond.Internal(err)
		}
		convID = conv.ID
	}
	fields["conversation"] = mustJSON(convID)
	fields["input"] = mustJSON(input)
	if _, err := u.cfg.Responses.Start(ctx, fields); err != nil {
		var ae *respond.Error
		if errors.As(err, &ae) && ae.Status < 500 {
			if k := paneField(ae.Param); k != "" {
				return refused(map[string]string{k: ae.Message})
			}
		}
		return again(userMessage(err))
	}
	// The page reloads to follow the new response's thread.
	return u.done(c, "", conversationURL(convID, a.ID, ov), "The response started.")
}
