package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
)

// Engine is what the API handlers need from the run engine.
type Engine interface {
	CreateRun(ctx context.Context, r db.Run, extra []db.Message) (db.Run, error)
	CreateThreadAndRun(ctx context.Context, t db.Thread, msgs []db.Message, r db.Run) (db.Thread, db.Run, error)
	SubmitToolOutputs(ctx context.Context, threadID, runID string, outputs []agent.ToolOutput) (db.Run, int64, error)
	Cancel(ctx context.Context, threadID, runID string) (db.Run, error)
	StopThread(ctx context.Context, threadID string) error
	Hub() *agent.Hub
	Providers() *agent.Providers
}

const (
	maxRunTools     = 20
	minTokenLimit   = 256
	pollAfterMillis = "500"
)

// runFields are the knobs shared by create run and create thread and run.
type runFields struct {
	AssistantID         Opt[string]                `json:"assistant_id"`
	Model               Opt[string]                `json:"model"`
	Instructions        Opt[string]                `json:"instructions"`
	Tools               Opt[[]db.Tool]             `json:"tools"`
	Metadata            Opt[db.Metadata]           `json:"metadata"`
	Temperature         Opt[float64]               `json:"temperature"`
	TopP                Opt[float64]               `json:"top_p"`
	Stream              Opt[bool]                  `json:"stream"`
	MaxPromptTokens     Opt[int64]                 `json:"max_prompt_tokens"`
	MaxCompletionTokens Opt[int64]                 `json:"max_completion_tokens"`
	TruncationStrategy  Opt[db.TruncationStrategy] `json:"truncation_strategy"`
	ToolChoice          Opt[json.RawMessage]       `json:"tool_choice"`
	ParallelToolCalls   Opt[bool]                  `json:"parallel_tool_calls"`
	ResponseFormat      Opt[json.RawMessage]       `json:"response_format"`
	ReasoningEffort     Opt[string]                `json:"reasoning_effort"`
}

// createRunRequest is the body of POST /threads/{thread_id}/runs.
type createRunRequest struct {
	runFields
	AdditionalInstructions Opt[string]           `json:"additional_instructions"`
	AdditionalMessages     Opt[[]messageRequest] `json:"additional_messages"`
}

// threadAndRunRequest is the body of POST /threads/runs.
type threadAndRunRequest struct {
	runFields
	Thread        Opt[threadRequest]        `json:"thread"`
	ToolResources Opt[toolResourcesRequest] `json:"tool_resources"`
}

// buildRun validates the run knobs against the assistant and returns the
// run with its effective settings.
func (h *API) buildRun(c *echo.Context, f runFields, additional *string) (db.Run, error) {
	var r db.Run
	if !f.AssistantID.Set || f.AssistantID.Null {
		return r, invalid("assistant_id", "missing_required_parameter", "Missing required parameter: 'assistant_id'.")
	}
	if err := checkID("assistant_id", f.AssistantID.V, "asst_"); err != nil {
		return r, err
	}
	asst, err := h.store.GetAssistant(c.Request().Context(), f.AssistantID.V)
	if err != nil {
		return r, storeErr(err, "assistant", f.AssistantID.V)
	}
	r.AssistantID, r.Model, r.Tools = asst.ID, asst.Model, asst.Tools
	r.Temperature, r.TopP, r.ResponseFormat, r.ReasoningEffort = asst.Temperature, asst.TopP, asst.ResponseFormat, asst.ReasoningEffort
	if asst.Instructions != nil {
		r.Instructions = *asst.Instructions
	}
	if f.Model.Set && !f.Model.Null {
		if f.Model.V == "" {
			return r, invalid("model", "invalid_value", "Invalid 'model': expected a non-empty string.")
		}
		r.Model = f.Model.V
	}
	if f.Instructions.Set && !f.Instructions.Null {
		if err := checkLen("instructions", &f.Instructions.V, maxInstructions); err != nil {
			return r, err
		}
		r.Instructions = f.Instructions.V
	}
	if additional != nil && *additional != "" {
		if err := checkLen("additional_instructions", additional, maxInstructions); err != nil {
			return r, err
		}
		if r.Instructions != "" {
			r.Instructions += "\n\n"
		}
		r.Instructions += *additional
	}
	if f.Tools.Set && !f.Tools.Null {
		if err := checkTools("tools", f.Tools.V, maxRunTools); err != nil {
			return r, err
		}
		r.Tools = slices.Clone(f.Tools.V)
	}
	if err := checkMetadata("metadata", f.Metadata.V); err != nil {
		return r, err
	}
	r.Metadata = f.Metadata.V
	if f.Temperature.Set && !f.Temperature.Null {
		if err := checkRange("temperature", &f.Temperature.V, 0, 2); err != nil {
			return r, err
		}
		r.Temperature = f.Temperature.Ptr()
	}
	if f.TopP.Set && !f.TopP.Null {
		if err := checkRange("top_p", &f.TopP.V, 0, 1); err != nil {
			return r, err
		}
		r.TopP = f.TopP.Ptr()
	}
	for _, lim := range []struct {
		name string
		v    Opt[int64]
		dst  **int64
	}{{"max_prompt_tokens", f.MaxPromptTokens, &r.MaxPromptTokens}, {"max_completion_tokens", f.MaxCompletionTokens, &r.MaxCompletionTokens}} {
		if p := lim.v.Ptr(); p != nil {
			if *p < minTokenLimit {
				return r, invalid(lim.name, "integer_below_min_value",
					"Invalid '%s': integer below minimum value. Expected a value >= %d, but got %d instead.", lim.name, minTokenLimit, *p)
			}
			*lim.dst = p
		}
	}
	r.TruncationStrategy = &db.TruncationStrategy{Type: "auto"}
	if ts := f.TruncationStrategy.Ptr(); ts != nil {
		switch ts.Type {
		case "auto":
			if ts.LastMessages != nil {
				return r, invalid("truncation_strategy.last_messages", "invalid_value",
					"Invalid 'truncation_strategy.last_messages': only allowed when type is 'last_messages'.")
			}
		case "last_messages":
			if ts.LastMessages == nil || *ts.LastMessages < 1 {
				return r, invalid("truncation_strategy.last_messages", "invalid_value",
					"Invalid 'truncation_strategy.last_messages': expected an integer >= 1 when type is 'last_messages'.")
			}
		default:
			return r, invalid("truncation_strategy.type", "invalid_value",
				"Invalid value: '%s'. Supported values are: 'auto' and 'last_messages'.", ts.Type)
		}
		r.TruncationStrategy = ts
	}
	r.ToolChoice = json.RawMessage(`"auto"`)
	if f.ToolChoice.Set && !f.ToolChoice.Null {
		tc, err := checkToolChoice(f.ToolChoice.V, r.Tools)
		if err != nil {
			return r, err
		}
		r.ToolChoice = tc
	}
	r.ParallelToolCalls = true
	if p := f.ParallelToolCalls.Ptr(); p != nil {
		r.ParallelToolCalls = *p
	}
	if f.ResponseFormat.Set && !f.ResponseFormat.Null {
		rf, err := checkResponseFormat("response_format", f.ResponseFormat.V)
		if err != nil {
			return r, err
		}
		r.ResponseFormat = rf
	}
	if e := f.ReasoningEffort.Ptr(); e != nil {
		if !slices.Contains(reasoningEfforts, *e) {
			return r, invalid("reasoning_effort", "invalid_value",
				"Invalid value: '%s'. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', 'xhigh', and 'max'.", *e)
		}
		r.ReasoningEffort = e
	}
	return r, nil
}

// checkToolChoice validates tool_choice against the run's tools.
func checkToolChoice(raw json.RawMessage, tools []db.Tool) (json.RawMessage, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "none", "auto":
		case "required":
			if len(tools) == 0 {
				return nil, invalid("tool_choice", "invalid_value", "Invalid 'tool_choice': 'required' needs at least one tool.")
			}
		default:
			return nil, invalid("tool_choice", "invalid_value", "Invalid value: '%s'. Supported values are: 'none', 'auto', and 'required'.", s)
		}
		return json.Marshal(s)
	}
	var obj struct {
		Type     string `json:"type"`
		Function *struct {
			Name string `json:"name"`
		} `json:"function,omitempty"`
	}
	if err := strictUnmarshal(raw, &obj); err != nil {
		return nil, invalid("tool_choice", "invalid_type", "Invalid type for 'tool_choice': expected a string or an object with a 'type'.")
	}
	switch obj.Type {
	case "function":
		if obj.Function == nil || obj.Function.Name == "" {
			return nil, invalid("tool_choice.function.name", "missing_required_parameter", "Missing required parameter: 'tool_choice.function.name'.")
		}
		if !slices.ContainsFunc(tools, func(t db.Tool) bool { return t.Function != nil && t.Function.Name == obj.Function.Name }) {
			return nil, invalid("tool_choice.function.name", "invalid_value",
				"Invalid 'tool_choice.function.name': no function named '%s' is among the run's tools.", obj.Function.Name)
		}
	case "code_interpreter", "file_search":
		if obj.Function != nil {
			return nil, invalid("tool_choice.function", "unknown_parameter", "Unknown parameter: 'tool_choice.function'.")
		}
		if !slices.ContainsFunc(tools, func(t db.Tool) bool { return t.Type == obj.Type }) {
			return nil, invalid("tool_choice.type", "invalid_value", "Invalid 'tool_choice': the run has no '%s' tool.", obj.Type)
		}
	default:
		return nil, invalid("tool_choice.type", "invalid_value",
			"Invalid value: '%s'. Supported values are: 'function', 'code_interpreter', and 'file_search'.", obj.Type)
	}
	return json.Marshal(obj)
}

// runErr maps engine and store errors of run operations.
func runErr(err error, runID string) error {
	var re *agent.RequestError
	var ar *db.ActiveRunError
	switch {
	case errors.As(err, &re):
		return invalid(re.Param, re.Code, "%s", re.Message)
	case errors.As(err, &ar):
		if ar.RunID == "" {
			return invalid("", "", "Thread %s already has an active run.", ar.ThreadID)
		}
		return invalid("", "", "Thread %s already has an active run %s.", ar.ThreadID, ar.RunID)
	case errors.Is(err, db.ErrIllegalTransition):
		return invalid("", "invalid_state", "The run changed status while the request was processed; retrieve it and try again.")
	}
	return storeErr(err, "run", runID)
}

// CreateRun handles POST /v1/threads/{thread_id}/runs.
func (h *API) CreateRun(c *echo.Context) error {
	threadID := c.Param("thread_id")
	if err := checkID("thread_id", threadID, "thread_"); err != nil {
		return err
	}
	if err := checkInclude(c); err != nil {
		return err
	}
	var req createRunRequest
	if err := decodeBody(c.Request(), &req, false); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := h.store.GetThread(ctx, threadID); err != nil {
		return storeErr(err, "thread", threadID)
	}
	run, err := h.buildRun(c, req.runFields, req.AdditionalInstructions.Ptr())
	if err != nil {
		return err
	}
	run.ThreadID = threadID
	if err := checkArrayLen("additional_messages", len(req.AdditionalMessages.V), maxThreadMessages); err != nil {
		return err
	}
	var extra []db.Message
	for i, mr := range req.AdditionalMessages.V {
		m, err := h.buildMessage(c, fmt.Sprintf("additional_messages[%d]", i), mr)
		if err != nil {
			return err
		}
		extra = append(extra, m)
	}
	run, err = h.engine.CreateRun(ctx, run, extra)
	if err != nil {
		if errors.Is(err, db.ErrNotFound) {
			return notFound("thread", threadID)
		}
		return runErr(err, "")
	}
	if err := h.attachForSearch(ctx, threadID, extra...); err != nil {
		return Internal(err)
	}
	if req.Stream.V {
		return h.streamRun(c, run.ID, 0)
	}
	return c.JSON(http.StatusOK, run)
}

// CreateThreadAndRun handles POST /v1/threads/runs.
func (h *API) CreateThreadAndRun(c *echo.Context) error {
	var req threadAndRunRequest
	if err := decodeBody(c.Request(), &req, false); err != nil {
		return err
	}
	run, err := h.buildRun(c, req.runFields, nil)
	if err != nil {
		return err
	}
	thread, msgs, err := h.buildThread(c, "thread", req.Thread.V)
	if err != nil {
		return err
	}
	if req.ToolResources.Set {
		if run.ToolResources, err = h.toolResources(c, "tool_resources", req.ToolResources.Ptr()); err != nil {
			return err
		}
	}
	_, run, err = h.engine.CreateThreadAndRun(c.Request().Context(), thread, msgs, run)
	if err != nil {
		return runErr(err, "")
	}
	if err := h.attachForSearch(c.Request().Context(), run.ThreadID, msgs...); err != nil {
		return Internal(err)
	}
	if req.Stream.V {
		return h.streamRun(c, run.ID, 0)
	}
	return c.JSON(http.StatusOK, run)
}

// runPath reads and checks the thread and run ids of the URL.
func runPath(c *echo.Context) (threadID, runID string, err error) {
	threadID, runID = c.Param("thread_id"), c.Param("run_id")
	if err := checkID("thread_id", threadID, "thread_"); err != nil {
		return "", "", err
	}
	if err := checkID("run_id", runID, "run_"); err != nil {
		return "", "", err
	}
	return threadID, runID, nil
}

// GetRun handles GET /v1/threads/{thread_id}/runs/{run_id}. While the run
// is not terminal it tells polling clients when to come back.
func (h *API) GetRun(c *echo.Context) error {
	threadID, runID, err := runPath(c)
	if err != nil {
		return err
	}
	run, err := h.store.GetRun(c.Request().Context(), threadID, runID)
	if err != nil {
		return storeErr(err, "run", runID)
	}
	if !db.IsTerminal(run.Status) {
		c.Response().Header().Set("Openai-Poll-After-Ms", pollAfterMillis)
	}
	return c.JSON(http.StatusOK, run)
}

// ListRuns handles GET /v1/threads/{thread_id}/runs.
func (h *API) ListRuns(c *echo.Context) error {
	threadID := c.Param("thread_id")
	if err := checkID("thread_id", threadID, "thread_"); err != nil {
		return err
	}
	p, err := listParams(c, 100, 20, true)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := h.store.GetThread(ctx, threadID); err != nil {
		return storeErr(err, "thread", threadID)
	}
	page, err := h.store.ListRuns(ctx, threadID, p)
	if err != nil {
		return storeErr(err, "", "")
	}
	return c.JSON(http.StatusOK, newList(page, func(r db.Run) string { return r.ID }))
}

// ModifyRun handles POST /v1/threads/{thread_id}/runs/{run_id}: metadata.
func (h *API) ModifyRun(c *echo.Context) error {
	threadID, runID, err := runPath(c)
	if err != nil {
		return err
	}
	return modifyMetadata(c, "run", runID,
		func(ctx context.Context) (db.Run, error) { return h.store.GetRun(ctx, threadID, runID) },
		func(ctx context.Context, meta db.Metadata) (db.Run, error) {
			return h.store.UpdateRunMetadata(ctx, threadID, runID, meta)
		})
}

// CancelRun handles POST /v1/threads/{thread_id}/runs/{run_id}/cancel.
func (h *API) CancelRun(c *echo.Context) error {
	threadID, runID, err := runPath(c)
	if err != nil {
		return err
	}
	var req struct{}
	if err := decodeBody(c.Request(), &req, true); err != nil {
		return err
	}
	run, err := h.engine.Cancel(c.Request().Context(), threadID, runID)
	if err != nil {
		return runErr(err, runID)
	}
	return c.JSON(http.StatusOK, run)
}

// SubmitToolOutputs handles POST .../runs/{run_id}/submit_tool_outputs.
func (h *API) SubmitToolOutputs(c *echo.Context) error {
	threadID, runID, err := runPath(c)
	if err != nil {
		return err
	}
	var req struct {
		ToolOutputs Opt[[]struct {
			ToolCallID *string `json:"tool_call_id"`
			Output     *string `json:"output"`
		}] `json:"tool_outputs"`
		Stream Opt[bool] `json:"stream"`
	}
	if err := decodeBody(c.Request(), &req, false); err != nil {
		return err
	}
	if !req.ToolOutputs.Set || req.ToolOutputs.Null {
		return invalid("tool_outputs", "missing_required_parameter", "Missing required parameter: 'tool_outputs'.")
	}
	outputs := make([]agent.ToolOutput, 0, len(req.ToolOutputs.V))
	for i, o := range req.ToolOutputs.V {
		if o.ToolCallID == nil || *o.ToolCallID == "" {
			return invalid(fmt.Sprintf("tool_outputs[%d].tool_call_id", i), "missing_required_parameter",
				"Missing required parameter: 'tool_outputs[%d].tool_call_id'.", i)
		}
		out := ""
		if o.Output != nil {
			out = *o.Output
		}
		if err := checkLen(fmt.Sprintf("tool_outputs[%d].output", i), &out, 512*1024); err != nil {
			return err
		}
		outputs = append(outputs, agent.ToolOutput{ToolCallID: *o.ToolCallID, Output: out})
	}
	run, from, err := h.engine.SubmitToolOutputs(c.Request().Context(), threadID, runID, outputs)
	if err != nil {
		return runErr(err, runID)
	}
	if req.Stream.V {
		return h.streamRun(c, runID, from)
	}
	return c.JSON(http.StatusOK, run)
}

// stepIncludes are the include[] values run step endpoints accept.
var stepIncludes = []string{"step_details.tool_calls[*].file_search.results[*].content"}

// checkInclude validates include[] (and, leniently, include).
func checkInclude(c *echo.Context) error {
	q := c.QueryParams()
	for _, v := range append(q["include[]"], q["include"]...) {
		if !slices.Contains(stepIncludes, v) {
			return invalid("include", "invalid_value", "Invalid value: '%s'. Supported values are: '%s'.", v, stepIncludes[0])
		}
	}
	return nil
}

// ListRunSteps handles GET .../runs/{run_id}/steps.
func (h *API) ListRunSteps(c *echo.Context) error {
	threadID, runID, err := runPath(c)
	if err != nil {
		return err
	}
	if err := checkInclude(c); err != nil {
		return err
	}
	p, err := listParams(c, 100, 20, true)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := h.store.GetRun(ctx, threadID, runID); err != nil {
		return storeErr(err, "run", runID)
	}
	page, err := h.store.ListSteps(ctx, threadID, runID, p)
	if err != nil {
		return storeErr(err, "", "")
	}
	if !wantsSearchContent(c) {
		for i := range page.Data {
			stripSearchContent(&page.Data[i])
		}
	}
	return c.JSON(http.StatusOK, newList(page, func(s db.RunStep) string { return s.ID }))
}

// GetRunStep handles GET .../runs/{run_id}/steps/{step_id}.
func (h *API) GetRunStep(c *echo.Context) error {
	threadID, runID, err := runPath(c)
	if err != nil {
		return err
	}
	stepID := c.Param("step_id")
	if err := checkID("step_id", stepID, "step_"); err != nil {
		return err
	}
	if err := checkInclude(c); err != nil {
		return err
	}
	st, err := h.store.GetStep(c.Request().Context(), threadID, runID, stepID)
	if err != nil {
		return storeErr(err, "run step", stepID)
	}
	if !wantsSearchContent(c) {
		stripSearchContent(&st)
	}
	return c.JSON(http.StatusOK, st)
}

// ListModels handles GET /v1/models.
func (h *API) ListModels(c *echo.Context) error {
	models := h.engine.Providers().Models(c.Request().Context())
	return c.JSON(http.StatusOK, map[string]any{"object": "list", "data": models})
}
