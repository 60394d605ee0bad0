package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
)

// ResponseStore is what the Responses and Conversations handlers need
// from the store.
type ResponseStore interface {
	GetRun(ctx context.Context, threadID, id string) (db.Run, error)
	GetAssistant(ctx context.Context, id string) (db.Assistant, error)
	GetVectorStore(ctx context.Context, id string) (db.VectorStore, error)
	MissingFiles(ctx context.Context, ids []string) ([]string, error)
	GetResponse(ctx context.Context, id string) (db.ResponseRecord, error)
	ResponseHistory(ctx context.Context, id string) ([]json.RawMessage, error)
	ResponseOutput(ctx context.Context, runID string) ([]json.RawMessage, error)
	ListResponseInputItems(ctx context.Context, responseID string, p db.ListParams) (db.Page[json.RawMessage], error)
	DeleteResponse(ctx context.Context, id string) error
	UnstoredResponses(ctx context.Context) ([]db.ResponseRecord, error)

	CreateConversation(ctx context.Context, meta db.Metadata, items []json.RawMessage) (db.Conversation, error)
	GetConversation(ctx context.Context, id string) (db.Conversation, error)
	UpdateConversation(ctx context.Context, id string, meta db.Metadata) (db.Conversation, error)
	DeleteConversation(ctx context.Context, id string) error
	ConversationItems(ctx context.Context, id string) ([]json.RawMessage, error)
	AddConversationItems(ctx context.Context, id string, items []json.RawMessage) error
	ListConversationItems(ctx context.Context, id string, p db.ListParams) (db.Page[json.RawMessage], error)
	GetConversationItem(ctx context.Context, convID, itemID string) (json.RawMessage, error)
	DeleteConversationItem(ctx context.Context, convID, itemID string) error

	bridgeStore // bridge.go: assistant versions as prompts, threads as conversations, containers
}

// ResponseEngine is what the Responses handlers need from the run engine.
type ResponseEngine interface {
	CreateResponse(ctx context.Context, t db.Thread, r db.Run, resp db.ResponseRecord, input []json.RawMessage) (db.Run, error)
	Cancel(ctx context.Context, threadID, runID string) (db.Run, error)
	StopThread(ctx context.Context, threadID string) error
	CountTokens(ctx context.Context, run db.Run, items []json.RawMessage) (int64, error)
	// Events reads a run's events after a position; Logged says whether
	// they are still held (else the store has the run's final state).
	Events(runID string, after int64) *agent.Subscription
	Logged(runID string) bool
	// Serves reports whether a provider serves the model.
	Serves(model string) bool
}

// Responses serves /v1/responses and /v1/conversations.
type Responses struct {
	store   ResponseStore
	engine  ResponseEngine
	log     *slog.Logger
	streams *respond.Streams // ended when the server shuts down
	// held are the store: false responses this process's requests are
	// serving, from before they are created until forget deletes them;
	// SweepUnstored removes any other (their process died).
	held sync.Map
}

// NewResponses returns the Responses and Conversations handlers.
func NewResponses(store ResponseStore, engine ResponseEngine, log *slog.Logger) *Responses {
	streams := respond.NewStreams(log)
	streams.KeepInline(respond.InlineStreams)
	return &Responses{store: store, engine: engine, log: log, streams: streams}
}

// CloseStreams ends every open stream, for a graceful shutdown.
func (h *Responses) CloseStreams() { h.streams.Close() }

// createFields are the parameters of POST /v1/responses.
var createFields = []string{"model", "input", "instructions", "previous_response_id", "conversation", "tools",
	"tool_choice", "parallel_tool_calls", "text", "max_output_tokens", "max_tool_calls", "temperature", "top_p",
	"metadata", "store", "include", "truncation", "user", "safety_identifier", "prompt_cache_key", "service_tier",
	"stream", "stream_options", "background", "reasoning", "top_logprobs", "prompt", "presence_penalty",
	"frequency_penalty", "prompt_cache_retention", "context_management"}

// request is a checked create request: the run to execute and the
// response record around it.
type request struct {
	run     db.Run
	rec     db.ResponseRecord
	input   []json.RawMessage
	stream  bool
	include []string
	// prefix is the history of a store: false response this request
	// continues on the same WebSocket (see socket.go), sent as input.
	prefix []json.RawMessage
}

var functionName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// CreateResponse handles POST /v1/responses.
func (h *Responses) CreateResponse(c *echo.Context) error {
	ctx := c.Request().Context()
	req, err := h.parseCreate(c)
	if err != nil {
		return err
	}
	rec, run, err := h.create(ctx, req)
	if err != nil {
		return err
	}
	if req.stream {
		// An unstored response is forgotten when its stream ends.
		return h.stream(c, rec, run.Model, req.include, -1, func(ctx context.Context) { h.forget(ctx, rec) })
	}
	defer h.forget(ctx, rec)
	switch {
	case rec.Background:
		return c.JSON(http.StatusOK, withRun(shell(rec, run.Model, "queued"), run))
	}
	if err := h.waitFinished(ctx, run.ID); err != nil {
		return err
	}
	stored, err := h.store.GetResponse(context.WithoutCancel(ctx), rec.ID)
	if err != nil {
		return respond.StoreErr(err, "response", rec.ID)
	}
	o, err := h.load(ctx, stored, req.include)
	if err != nil {
		return respond.Internal(err)
	}
	return c.JSON(http.StatusOK, o)
}

// create stores a checked request's response and queues its run.
func (h *Responses) create(ctx context.Context, req request) (db.ResponseRecord, db.Run, error) {
	thread := db.Thread{Metadata: db.Metadata{"response_id": req.rec.ID}}
	run, err := h.createResponse(ctx, thread, req.run, req.rec, req.input)
	switch {
	case errors.Is(err, db.ErrConversationLocked):
		return req.rec, run, respond.Invalid("conversation", "conversation_locked",
			"Another process is currently operating on this conversation. Please retry in a few seconds.")
	case errors.Is(err, db.ErrNotFound):
		return req.rec, run, respond.NotFound("conversation", *req.rec.ConversationID)
	case err != nil: // a project's settings or rate limit refused it, or a failure
		return req.rec, run, respond.RunErr(err, "")
	}
	rec := req.rec
	rec.RunID, rec.ThreadID, rec.CreatedAt = run.ID, run.ThreadID, run.CreatedAt
	return rec, run, nil
}

// Start creates a stored response from the fields of a create request,
// checked as POST /v1/responses checks them, and queues its run: the web
// app's playground drives assistants through it. It returns the response
// with its run and thread; a refused request is a *respond.Error naming
// the param. stream and background are not for it to set.
func (h *Responses) Start(ctx context.Context, fields map[string]json.RawMessage) (db.ResponseRecord, error) {
	for _, k := range []string{"stream", "background", "store"} {
		delete(fields, k)
	}
	req, err := h.parseFields(ctx, fields, false, nil)
	if err != nil {
		return req.rec, err
	}
	rec, _, err := h.create(ctx, req)
	return rec, err
}

// createResponse has the engine create a response; a store: false one is
// held (safe from SweepUnstored) from before it exists.
func (h *Responses) createResponse(ctx context.Context, t db.Thread, r db.Run, rec db.ResponseRecord, input []json.RawMessage) (db.Run, error) {
	if !rec.Store {
		h.held.Store(rec.ID, struct{}{})
	}
	run, err := h.engine.CreateResponse(ctx, t, r, rec, input)
	if err != nil {
		h.held.Delete(rec.ID)
	}
	return run, err
}

// forget deletes a store: false response once its request is over: it
// was delivered, or its client went away, which stops it (nobody could
// ever read it).
func (h *Responses) forget(ctx context.Context, rec db.ResponseRecord) {
	if rec.Store {
		return
	}
	defer h.held.Delete(rec.ID)
	ctx = context.WithoutCancel(ctx)
	if err := h.engine.StopThread(ctx, rec.ThreadID); err != nil {
		h.log.Warn("stop unstored response", "response_id", rec.ID, "error", err)
	}
	if err := h.store.DeleteResponse(ctx, rec.ID); err != nil && !errors.Is(err, db.ErrNotFound) {
		h.log.Warn("delete unstored response", "response_id", rec.ID, "error", err)
	}
}

// SweepUnstored deletes the store: false responses no request of this
// process holds: their request's process died before forget could delete
// them (the engine does not resume their runs after a restart). Without
// it their thread, messages and steps would stay readable through the
// Assistants API and the web app. A sweep (agent.Sweep) runs it.
func (h *Responses) SweepUnstored(ctx context.Context) (int, error) {
	recs, err := h.store.UnstoredResponses(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, rec := range recs {
		if _, held := h.held.Load(rec.ID); held {
			continue
		}
		// The sweep spans projects; each response is deleted in its own.
		pctx := db.WithProject(ctx, rec.ProjectID)
		if err := h.engine.StopThread(pctx, rec.ThreadID); err != nil {
			return n, fmt.Errorf("stop unstored response %s: %w", rec.ID, err)
		}
		if err := h.store.DeleteResponse(pctx, rec.ID); err != nil && !errors.Is(err, db.ErrNotFound) {
			return n, err
		}
		n++
	}
	return n, nil
}

// waitFinished waits until the run has ended.
func (h *Responses) waitFinished(ctx context.Context, runID string) error {
	sub := h.engine.Events(runID, 0)
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			return &respond.Error{Status: 499, Type: "invalid_request_error", Message: "The client closed the request.", Err: err}
		}
		if ev.EndsSegment() && ev.Name != "thread.run.requires_action" {
			return nil
		}
	}
}

// parseCreate checks a create request and builds its run.
func (h *Responses) parseCreate(c *echo.Context) (request, error) {
	fields, err := readObject(c.Request(), createFields, false)
	if err != nil {
		return request{}, err
	}
	return h.parseFields(c.Request().Context(), fields, false, nil)
}

// parseFields checks the fields of a create request; counting (for
// input_tokens) model and input are optional.
//
// cached holds the histories of the store: false responses a WebSocket
// connection made, which it alone can continue from.
func (h *Responses) parseFields(ctx context.Context, fields map[string]json.RawMessage, counting bool, cached map[string][]json.RawMessage) (request, error) {
	var err error
	var req request
	req.rec = db.ResponseRecord{ID: db.NewID("resp_"), Store: true, Echo: map[string]json.RawMessage{}}
	run := &req.run
	run.ParallelToolCalls = true
	// truncation "disabled" (the default) sends the whole context: as a
	// run's strategy, last_messages without a count (all of them, and no
	// fitting to the context window). "auto" drops the oldest items to fit
	// the model's context window.
	run.TruncationStrategy = &db.TruncationStrategy{Type: "last_messages"}
	run.Metadata = db.Metadata{}
	echo := func(key string) {
		if v, ok := fields[key]; ok {
			req.rec.Echo[key] = v
		}
	}

	if _, err := field(fields, "model", &run.Model, "a string"); err != nil {
		return req, err
	}
	asst, err := h.promptAssistant(ctx, fields)
	if err != nil {
		return req, err
	}
	if asst != nil {
		run.AssistantID = asst.ID
		if run.Model == "" {
			run.Model = asst.Model
		}
	}
	if run.Model == "" && !counting {
		return req, respond.Invalid("model", "missing_required_parameter", "Missing required parameter: 'model'.")
	}
	if run.Model != "" && !h.engine.Serves(run.Model) {
		return req, &respond.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: "model",
			Code: "model_not_found", Message: fmt.Sprintf("The requested model '%s' does not exist.", run.Model)}
	}
	if raw, ok := fields["input"]; ok {
		if req.input, err = parseInput(raw, "input"); err != nil {
			return req, err
		}
	}
	if raw, ok := fields["instructions"]; ok {
		if err := json.Unmarshal(raw, &run.Instructions); err != nil {
			return req, respond.Invalid("instructions", "invalid_type", "Invalid type for 'instructions': expected a string, but got %s instead.", valueKind(raw))
		}
		echo("instructions")
	}
	var prev, conv string
	if _, err := field(fields, "previous_response_id", &prev, "a string"); err != nil {
		return req, err
	}
	if raw, ok := fields["conversation"]; ok {
		if json.Unmarshal(raw, &conv) != nil {
			var ref struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(raw, &ref) != nil || ref.ID == "" {
				return req, respond.Invalid("conversation", "invalid_type", "Invalid type for 'conversation': expected a string or an object with an 'id'.")
			}
			conv = ref.ID
		}
	}
	if prev != "" && conv != "" {
		return req, respond.Invalid("conversation", "invalid_value", "Cannot use both 'previous_response_id' and 'conversation' in the same request.")
	}
	if len(req.input) == 0 && prev == "" && conv == "" && !counting {
		if _, ok := fields["input"]; !ok {
			return req, respond.Invalid("input", "missing_required_parameter", "Missing required parameter: 'input'.")
		}
	}
	if err := h.parseTools(ctx, fields, &req); err != nil {
		return req, err
	}
	if asst != nil {
		fromAssistant(*asst, fields, &req)
	}
	if err := parseKnobs(fields, &req); err != nil {
		return req, err
	}
	for _, k := range []string{"user", "safety_identifier", "prompt_cache_key", "service_tier", "top_logprobs",
		"presence_penalty", "frequency_penalty", "prompt", "max_tool_calls"} {
		echo(k)
	}
	if raw, ok := fields["service_tier"]; ok {
		var tier string
		if json.Unmarshal(raw, &tier) != nil || !slices.Contains([]string{"auto", "default", "flex", "scale", "priority"}, tier) {
			return req, respond.Invalid("service_tier", "invalid_value", "Invalid value for 'service_tier': expected one of 'auto', 'default', 'flex', 'scale' or 'priority'.")
		}
		if tier == "auto" {
			req.rec.Echo["service_tier"] = json.RawMessage(`"default"`)
		}
	}
	if _, err := field(fields, "store", &req.rec.Store, "a boolean"); err != nil {
		return req, err
	}
	req.rec.Echo["store"] = json.RawMessage(strconv.FormatBool(req.rec.Store))
	if _, err := field(fields, "background", &req.rec.Background, "a boolean"); err != nil {
		return req, err
	}
	if req.rec.Background && !req.rec.Store {
		return req, respond.Invalid("background", "invalid_value", "Background responses require 'store' to be true.")
	}
	if _, err := field(fields, "stream", &req.stream, "a boolean"); err != nil {
		return req, err
	}
	if _, err := field(fields, "include", &req.include, "an array of strings"); err != nil {
		return req, err
	}
	for i, inc := range req.include {
		if !slices.Contains(includes, inc) {
			return req, respond.Invalid(fmt.Sprintf("include[%d]", i), "invalid_value", "Invalid value: '%s'. Supported values are: '%s'.", inc, joinQuoted(includes))
		}
	}

	// The history it continues, and the pairing of function calls.
	var history []json.RawMessage
	if prev != "" {
		req.rec.PreviousResponseID = &prev
		var ok bool
		if history, ok = cached[prev]; ok {
			req.prefix = history
		} else {
			history, err = h.store.ResponseHistory(ctx, prev)
		}
		if errors.Is(err, db.ErrNotFound) {
			return req, &respond.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: "previous_response_id",
				Code: "previous_response_not_found", Message: fmt.Sprintf("Previous response with id '%s' not found.", prev)}
		}
		if errors.Is(err, db.ErrResponseInProgress) {
			return req, respond.Invalid("previous_response_id", "invalid_value",
				"Previous response with id '%s' is still in progress; continue from it once it has finished.", prev)
		}
		if err != nil {
			return req, respond.Internal(err)
		}
	}
	if conv != "" {
		req.rec.ConversationID = &conv
		if _, err := h.store.GetConversation(ctx, conv); err != nil {
			return req, respond.StoreErr(err, "conversation", conv)
		}
		if history, err = h.store.ConversationItems(ctx, conv); err != nil {
			return req, respond.Internal(err)
		}
	}
	if err := checkCalls(history, req.input); err != nil {
		return req, err
	}
	return req, nil
}

func joinQuoted(list []string) string {
	out := ""
	for i, s := range list {
		if i > 0 {
			out += "', '"
		}
		out += s
	}
	return out
}

// parseKnobs reads the sampling and format parameters.
func parseKnobs(fields map[string]json.RawMessage, req *request) error {
	run := &req.run
	echoNum := func(key string, lo, hi float64) (*float64, error) {
		var v float64
		set, err := field(fields, key, &v, "a number")
		if err != nil || !set {
			return nil, err
		}
		if v < lo || v > hi {
			return nil, respond.Invalid(key, "invalid_value", "Invalid '%s': expected a value between %g and %g, but got %g instead.", key, lo, hi, v)
		}
		req.rec.Echo[key] = fields[key]
		return &v, nil
	}
	var err error
	if run.Temperature, err = echoNum("temperature", 0, 2); err != nil {
		return err
	}
	if run.TopP, err = echoNum("top_p", 0, 1); err != nil {
		return err
	}
	var maxOut int64
	if set, err := field(fields, "max_output_tokens", &maxOut, "an integer"); err != nil {
		return err
	} else if set {
		if maxOut < 16 {
			return respond.Invalid("max_output_tokens", "integer_below_min_value",
				"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got %d instead.", maxOut)
		}
		run.MaxCompletionTokens = &maxOut
		req.rec.Echo["max_output_tokens"] = fields["max_output_tokens"]
	}
	// max_tool_calls caps the built-in tool calls (file_search,
	// code_interpreter) of the whole response; the model's further
	// attempts are ignored (see agent's turn). Function calls do not count.
	var maxCalls *int64
	if _, err := field(fields, "max_tool_calls", &maxCalls, "an integer"); err != nil {
		return err
	} else if maxCalls != nil {
		if *maxCalls < 0 {
			return respond.Invalid("max_tool_calls", "integer_below_min_value",
				"Invalid 'max_tool_calls': integer below minimum value. Expected a value >= 0, but got %d instead.", *maxCalls)
		}
		run.MaxToolCalls = maxCalls
	}
	if _, err := field(fields, "parallel_tool_calls", &run.ParallelToolCalls, "a boolean"); err != nil {
		return err
	}
	req.rec.Echo["parallel_tool_calls"] = json.RawMessage(strconv.FormatBool(run.ParallelToolCalls))
	var meta db.Metadata
	if set, err := field(fields, "metadata", &meta, "an object of strings"); err != nil {
		return err
	} else if set {
		if err := validate.Metadata(validate.Path{"metadata"}, meta); err != nil {
			return err
		}
		run.Metadata = meta
		req.rec.Echo["metadata"] = mustJSON(meta)
	}
	var trunc string
	if set, err := field(fields, "truncation", &trunc, "a string"); err != nil {
		return err
	} else if set {
		if trunc != "auto" && trunc != "disabled" {
			return respond.Invalid("truncation", "invalid_value", "Invalid value: '%s'. Supported values are: 'auto' and 'disabled'.", trunc)
		}
		req.rec.Echo["truncation"] = fields["truncation"]
		if trunc == "auto" {
			run.TruncationStrategy.Type = "auto"
		}
	}
	var reasoning struct {
		Effort  *string `json:"effort"`
		Summary *string `json:"summary"`
	}
	if set, err := field(fields, "reasoning", &reasoning, "an object"); err != nil {
		return err
	} else if set {
		run.ReasoningEffort = reasoning.Effort
		req.rec.Echo["reasoning"] = mustJSON(map[string]any{"effort": reasoning.Effort, "summary": reasoning.Summary})
	}
	var text struct {
		Format *struct {
			Type        string          `json:"type"`
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Schema      json.RawMessage `json:"schema"`
			Strict      *bool           `json:"strict"`
		} `json:"format"`
		Verbosity *string `json:"verbosity"`
	}
	if set, err := field(fields, "text", &text, "an object"); err != nil {
		return err
	} else if set {
		shownText := map[string]any{"format": map[string]any{"type": "text"}, "verbosity": "medium"}
		if text.Verbosity != nil {
			shownText["verbosity"] = *text.Verbosity
		}
		if f := text.Format; f != nil {
			switch f.Type {
			case "text":
				run.ResponseFormat = json.RawMessage(`{"type":"text"}`)
			case "json_object":
				run.ResponseFormat = json.RawMessage(`{"type":"json_object"}`)
				shownText["format"] = map[string]any{"type": "json_object"}
			case "json_schema":
				if f.Name == "" {
					return respond.Invalid("text.format.name", "missing_required_parameter", "Missing required parameter: 'text.format.name'.")
				}
				if len(f.Schema) == 0 || f.Schema[0] != '{' {
					return respond.Invalid("text.format.schema", "missing_required_parameter", "Missing required parameter: 'text.format.schema'.")
				}
				js := map[string]any{"name": f.Name, "schema": f.Schema}
				shown := map[string]any{"type": "json_schema", "name": f.Name, "schema": f.Schema, "strict": f.Strict}
				if f.Strict != nil {
					js["strict"] = *f.Strict
				}
				if f.Description != "" {
					js["description"], shown["description"] = f.Description, f.Description
				}
				run.ResponseFormat = mustJSON(map[string]any{"type": "json_schema", "json_schema": js})
				shownText["format"] = shown
			default:
				return respond.Invalid("text.format.type", "invalid_value", "Invalid value: '%s'. Supported values are: 'text', 'json_object' and 'json_schema'.", f.Type)
			}
		}
		req.rec.Echo["text"] = mustJSON(shownText)
	}
	return nil
}

// unsupportedTools are the tool types of the Responses API this server
// does not run: a request naming one is refused, never silently served
// without it.
var unsupportedTools = []string{"web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11",
	"computer_use_preview", "computer_use", "mcp", "image_generation", "local_shell", "shell", "custom", "apply_patch"}

// parseTools reads tools and tool_choice: functions in the flat form,
// file_search with its vector stores, code_interpreter with its container.
func (h *Responses) parseTools(ctx context.Context, fields map[string]json.RawMessage, req *request) error {
	run := &req.run
	var list []json.RawMessage
	if _, err := field(fields, "tools", &list, "an array of tools"); err != nil {
		return err
	}
	tools := make([]map[string]json.RawMessage, len(list))
	for i, raw := range list {
		if err := json.Unmarshal(raw, &tools[i]); err != nil || tools[i] == nil {
			return respond.Invalid(fmt.Sprintf("tools[%d]", i), "invalid_type", "Invalid type for 'tools[%d]': expected an object, but got %s instead.", i, valueKind(raw))
		}
	}
	shownTools := []any{}
	names := map[string]bool{}
	for i, t := range tools {
		p := fmt.Sprintf("tools[%d]", i)
		var typ string
		_ = json.Unmarshal(t["type"], &typ)
		switch {
		case typ == "":
			return respond.Invalid(p+".type", "missing_required_parameter", "Missing required parameter: '%s.type'.", p)
		case slices.Contains(unsupportedTools, typ):
			return respond.Invalid(p+".type", "unsupported_value", "Tool type '%s' is not supported by this server. Supported tool types are: 'function', 'file_search' and 'code_interpreter'.", typ)
		case typ == "function":
			var fn struct {
				Type        string          `json:"type"`
				Name        string          `json:"name"`
				Description *string         `json:"description"`
				Parameters  json.RawMessage `json:"parameters"`
				Strict      *bool           `json:"strict"`
			}
			if raw := mustJSON(t); json.Unmarshal(raw, &fn) != nil {
				return typeError(p, "a function tool", raw, json.Unmarshal(raw, &fn))
			}
			if !functionName.MatchString(fn.Name) {
				return respond.Invalid(p+".name", "invalid_value", "Invalid '%s.name': expected a name of 1 to 64 letters, digits, underscores or dashes.", p)
			}
			if names[fn.Name] {
				return respond.Invalid(p+".name", "invalid_value", "Duplicate function name '%s'.", fn.Name)
			}
			names[fn.Name] = true
			if len(fn.Parameters) > 0 && string(fn.Parameters) != "null" && fn.Parameters[0] != '{' {
				return respond.Invalid(p+".parameters", "invalid_type", "Invalid type for '%s.parameters': expected an object.", p)
			}
			def := db.FunctionDef{Name: fn.Name, Strict: fn.Strict}
			if fn.Description != nil {
				def.Description = *fn.Description
			}
			if string(fn.Parameters) != "null" {
				def.Parameters = fn.Parameters
			}
			run.Tools = append(run.Tools, db.Tool{Type: "function", Function: &def})
			strict := true
			if fn.Strict != nil {
				strict = *fn.Strict
			}
			params := fn.Parameters
			if len(params) == 0 {
				params = json.RawMessage("null")
			}
			shownTools = append(shownTools, map[string]any{"type": "function", "name": fn.Name, "description": fn.Description,
				"parameters": params, "strict": strict})
		case typ == "file_search":
			var fs struct {
				Type           string             `json:"type"`
				VectorStoreIDs []string           `json:"vector_store_ids"`
				MaxNumResults  *int               `json:"max_num_results"`
				RankingOptions *db.RankingOptions `json:"ranking_options"`
				Filters        json.RawMessage    `json:"filters"`
			}
			if raw := mustJSON(t); json.Unmarshal(raw, &fs) != nil {
				return typeError(p, "a file_search tool", raw, json.Unmarshal(raw, &fs))
			}
			if len(fs.VectorStoreIDs) == 0 {
				return respond.Invalid(p+".vector_store_ids", "missing_required_parameter", "Missing required parameter: '%s.vector_store_ids'.", p)
			}
			for k, id := range fs.VectorStoreIDs {
				if _, err := h.store.GetVectorStore(ctx, id); errors.Is(err, db.ErrNotFound) {
					return respond.Invalid(fmt.Sprintf("%s.vector_store_ids[%d]", p, k), "invalid_value", "Vector store with id '%s' not found.", id)
				} else if err != nil {
					return respond.Internal(err)
				}
			}
			if fs.MaxNumResults != nil && (*fs.MaxNumResults < 1 || *fs.MaxNumResults > 50) {
				return respond.Invalid(p+".max_num_results", "invalid_value", "Invalid '%s.max_num_results': expected a value between 1 and 50.", p)
			}
			run.Tools = append(run.Tools, db.Tool{Type: "file_search", FileSearch: &db.FileSearchTool{MaxNumResults: fs.MaxNumResults, RankingOptions: fs.RankingOptions}})
			if run.ToolResources == nil {
				run.ToolResources = &db.ToolResources{}
			}
			run.ToolResources.FileSearch = &db.FileSearchResources{VectorStoreIDs: fs.VectorStoreIDs}
			shown := map[string]any{"type": "file_search", "vector_store_ids": fs.VectorStoreIDs}
			if fs.MaxNumResults != nil {
				shown["max_num_results"] = *fs.MaxNumResults
			}
			if fs.RankingOptions != nil {
				shown["ranking_options"] = fs.RankingOptions
			}
			if len(fs.Filters) > 0 {
				shown["filters"] = fs.Filters
			}
			shownTools = append(shownTools, shown)
		case typ == "code_interpreter":
			var ci struct {
				Container json.RawMessage `json:"container"`
			}
			_ = json.Unmarshal(mustJSON(t), &ci)
			var files []string
			var id string
			if json.Unmarshal(ci.Container, &id) != nil {
				var auto struct {
					Type    string   `json:"type"`
					FileIDs []string `json:"file_ids"`
				}
				if err := json.Unmarshal(ci.Container, &auto); err != nil || auto.Type != "auto" {
					return respond.Invalid(p+".container", "invalid_value", "Invalid '%s.container': expected a container id or {\"type\": \"auto\"}.", p)
				}
				files = auto.FileIDs
				if err := validate.FileIDs(ctx, h.store, validate.Path{"tools"}.Index(i).Key("container").Key("file_ids"), files); err != nil {
					return err
				}
			}
			if id != "" {
				if err := h.checkContainer(ctx, p+".container", id); err != nil { // containers.go
					return err
				}
			}
			run.Tools = append(run.Tools, db.Tool{Type: "code_interpreter"})
			if run.ToolResources == nil {
				run.ToolResources = &db.ToolResources{}
			}
			run.ToolResources.CodeInterpreter = &db.CodeInterpreterResources{FileIDs: append([]string{}, files...), ContainerID: id}
			shownTools = append(shownTools, map[string]any{"type": "code_interpreter", "container": ci.Container})
		default:
			return respond.Invalid(p+".type", "invalid_value", "Invalid value: '%s'. Supported tool types are: 'function', 'file_search' and 'code_interpreter'.", typ)
		}
	}
	if len(tools) > 0 {
		req.rec.Echo["tools"] = mustJSON(shownTools)
	}
	raw, ok := fields["tool_choice"]
	if !ok {
		return nil
	}
	var mode string
	if json.Unmarshal(raw, &mode) == nil {
		if mode != "auto" && mode != "none" && mode != "required" {
			return respond.Invalid("tool_choice", "invalid_value", "Invalid value: '%s'. Supported values are: 'none', 'auto' and 'required'.", mode)
		}
		run.ToolChoice = raw
		req.rec.Echo["tool_choice"] = raw
		return nil
	}
	var choice struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(raw, &choice); err != nil {
		return respond.Invalid("tool_choice", "invalid_type", "Invalid type for 'tool_choice': expected a string or an object.")
	}
	switch choice.Type {
	case "function":
		if !names[choice.Name] {
			return respond.Invalid("tool_choice.name", "invalid_value", "Tool choice '%s' not found in 'tools' parameter.", choice.Name)
		}
		run.ToolChoice = mustJSON(map[string]any{"type": "function", "function": map[string]any{"name": choice.Name}})
		req.rec.Echo["tool_choice"] = mustJSON(map[string]any{"type": "function", "name": choice.Name})
	case "file_search", "code_interpreter":
		run.ToolChoice = mustJSON(map[string]any{"type": choice.Type})
		req.rec.Echo["tool_choice"] = run.ToolChoice
	default:
		return respond.Invalid("tool_choice.type", "invalid_value", "Invalid value: '%s'. Supported values are: 'function', 'file_search' and 'code_interpreter'.", choice.Type)
	}
	return nil
}

// record returns a stored response, hiding store: false ones.
func (h *Responses) record(ctx context.Context, id string) (db.ResponseRecord, error) {
	rec, err := h.store.GetResponse(ctx, id)
	if err == nil && !rec.Store {
		err = db.ErrNotFound
	}
	if err != nil {
		return rec, respond.StoreErr(err, "response", id)
	}
	return rec, nil
}

// queryIncludes reads include[] (or include) from the query.
func queryIncludes(c *echo.Context) ([]string, error) {
	q := c.QueryParams()
	list := append(q["include[]"], q["include"]...)
	for i, inc := range list {
		if !slices.Contains(includes, inc) {
			return nil, respond.Invalid(fmt.Sprintf("include[%d]", i), "invalid_value", "Invalid value: '%s'. Supported values are: '%s'.", inc, joinQuoted(includes))
		}
	}
	return list, nil
}

// GetResponse handles GET /v1/responses/{id}, also streamed
// (stream=true, starting_after=N).
func (h *Responses) GetResponse(c *echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("response_id")
	include, err := queryIncludes(c)
	if err != nil {
		return err
	}
	rec, err := h.record(ctx, id)
	if err != nil {
		return err
	}
	stream := c.QueryParam("stream")
	if c.Request().ContentLength != 0 && c.Request().Body != nil {
		// openai-go's GetStreaming sends {"stream": true} as a body.
		fields, err := readObject(c.Request(), []string{"stream"}, true)
		if err != nil {
			return err
		}
		var on bool
		if _, err := field(fields, "stream", &on, "a boolean"); err != nil {
			return err
		}
		if on {
			stream = "true"
		}
	}
	switch s := stream; s {
	case "", "false":
	case "true":
		after := int64(-1)
		if v := c.QueryParam("starting_after"); v != "" {
			if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
				return respond.Invalid("starting_after", "invalid_type", "Invalid 'starting_after': expected a non-negative integer, but got '%s' instead.", v)
			}
		}
		run, err := h.store.GetRun(ctx, "", rec.RunID)
		if err != nil {
			return respond.Internal(err)
		}
		return h.stream(c, rec, run.Model, include, after, nil)
	default:
		return respond.Invalid("stream", "invalid_value", "Invalid value for 'stream': expected true or false, but got '%s'.", s)
	}
	o, err := h.load(ctx, rec, include)
	if err != nil {
		return respond.Internal(err)
	}
	return c.JSON(http.StatusOK, o)
}

// DeleteResponse handles DELETE /v1/responses/{id}.
func (h *Responses) DeleteResponse(c *echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("response_id")
	rec, err := h.record(ctx, id)
	if err != nil {
		return err
	}
	if err := h.engine.StopThread(ctx, rec.ThreadID); err != nil {
		return respond.Internal(err)
	}
	if err := h.store.DeleteResponse(ctx, id); err != nil {
		return respond.StoreErr(err, "response", id)
	}
	return c.JSON(http.StatusOK, db.Deleted{ID: id, Object: "response", Deleted: true})
}

// CancelResponse handles POST /v1/responses/{id}/cancel: only background
// responses can be cancelled; cancelling a cancelled one returns it again.
func (h *Responses) CancelResponse(c *echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("response_id")
	rec, err := h.record(ctx, id)
	if err != nil {
		return err
	}
	if !rec.Background {
		return respond.Invalid("", "", "Only responses created with background=true can be cancelled.")
	}
	run, err := h.store.GetRun(ctx, "", rec.RunID)
	if err != nil {
		return respond.Internal(err)
	}
	if !db.IsTerminal(run.Status) {
		if _, err := h.engine.Cancel(ctx, rec.ThreadID, rec.RunID); err != nil {
			var re *agent.RequestError
			if !errors.As(err, &re) { // a run that ended meanwhile is shown as it ended
				return respond.StoreErr(err, "response", id)
			}
		}
		if err := h.waitFinished(ctx, rec.RunID); err != nil {
			return err
		}
		if rec, err = h.store.GetResponse(ctx, id); err != nil {
			return respond.StoreErr(err, "response", id)
		}
	} else if run.Status != db.RunCancelled {
		return respond.Invalid("", "", "Cannot cancel a response with status '%s'.", responseStatus(run.Status))
	}
	o, err := h.load(ctx, rec, nil)
	if err != nil {
		return respond.Internal(err)
	}
	return c.JSON(http.StatusOK, o)
}

// ListInputItems handles GET /v1/responses/{id}/input_items.
func (h *Responses) ListInputItems(c *echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("response_id")
	if _, err := queryIncludes(c); err != nil {
		return err
	}
	p, err := listParams(c, 100, 20, false)
	if err != nil {
		return err
	}
	if _, err := h.record(ctx, id); err != nil {
		return err
	}
	pg, err := h.store.ListResponseInputItems(ctx, id, p)
	if err != nil {
		return respond.StoreErr(err, "response", id)
	}
	return c.JSON(http.StatusOK, newPage(pg))
}

// fromAssistant fills in what the request leaves to its prompt's
// assistant: instructions, tools (shown in the flat form), tool resources.
func fromAssistant(a db.Assistant, fields map[string]json.RawMessage, req *request) {
	run := &req.run
	if _, ok := fields["instructions"]; !ok && a.Instructions != nil {
		run.Instructions = *a.Instructions
		req.rec.Echo["instructions"] = mustJSON(*a.Instructions)
	}
	if _, ok := fields["tools"]; ok {
		return
	}
	run.Tools = a.Tools
	run.ToolResources = a.ToolResources
	shownTools := []any{}
	for _, t := range a.Tools {
		switch {
		case t.Type == "function" && t.Function != nil:
			params := t.Function.Parameters
			if len(params) == 0 {
				params = json.RawMessage("null")
			}
			var desc *string
			if t.Function.Description != "" {
				desc = &t.Function.Description
			}
			strict := t.Function.Strict != nil && *t.Function.Strict
			shownTools = append(shownTools, map[string]any{"type": "function", "name": t.Function.Name,
				"description": desc, "parameters": params, "strict": strict})
		case t.Type == "file_search":
			ids := []string{}
			if a.ToolResources != nil && a.ToolResources.FileSearch != nil {
				ids = a.ToolResources.FileSearch.VectorStoreIDs
			}
			shownTools = append(shownTools, map[string]any{"type": "file_search", "vector_store_ids": ids})
		case t.Type == "code_interpreter":
			files := []string{}
			if a.ToolResources != nil && a.ToolResources.CodeInterpreter != nil {
				files = a.ToolResources.CodeInterpreter.FileIDs
			}
			shownTools = append(shownTools, map[string]any{"type": "code_interpreter",
				"container": map[string]any{"type": "auto", "file_ids": files}})
		}
	}
	req.rec.Echo["tools"] = mustJSON(shownTools)
}

// countFields are the parameters of POST /v1/responses/input_tokens.
var countFields = []string{"model", "input", "previous_response_id", "tools", "text", "reasoning", "truncation",
	"instructions", "personality", "conversation", "tool_choice", "parallel_tool_calls"}

// CountInputTokens handles POST /v1/responses/input_tokens: the tokens the
// model would read for the request (instructions, tools, the history it
// continues and its input), estimated as the engine estimates prompts.
func (h *Responses) CountInputTokens(c *echo.Context) error {
	ctx := c.Request().Context()
	fields, err := readObject(c.Request(), countFields, true)
	if err != nil {
		return err
	}
	delete(fields, "personality")
	req, err := h.parseFields(ctx, fields, true, nil)
	if err != nil {
		return err
	}
	var items []json.RawMessage
	if prev := req.rec.PreviousResponseID; prev != nil {
		if items, err = h.store.ResponseHistory(ctx, *prev); err != nil {
			return respond.Internal(err) // parseFields found it a moment ago
		}
	}
	if conv := req.rec.ConversationID; conv != nil {
		if items, err = h.store.ConversationItems(ctx, *conv); err != nil {
			return respond.Internal(err)
		}
	}
	n, err := h.engine.CountTokens(ctx, req.run, append(items, req.input...))
	if err != nil {
		return respond.Internal(err)
	}
	return c.JSON(http.StatusOK, map[string]any{"object": "response.input_tokens", "input_tokens": n})
}
