package api

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
	"github.com/assistantd/assistantd/internal/stack"
)

// Engine is what the API handlers need from the run engine.
type Engine interface {
	CreateRun(ctx context.Context, r db.Run, extra []db.Message) (db.Run, error)
	CreateThreadAndRun(ctx context.Context, t db.Thread, msgs []db.Message, r db.Run) (db.Thread, db.Run, error)
	SubmitToolOutputs(ctx context.Context, threadID, runID string, outputs []agent.ToolOutput) (db.Run, int64, error)
	Cancel(ctx context.Context, threadID, runID string) (db.Run, error)
	StopThread(ctx context.Context, threadID string) error
	// Events reads a run's events after a position, for its stream.
	Events(runID string, after int64) *agent.Subscription
	// Models lists the models the upstreams serve.
	Models(ctx context.Context) []agent.Model
}

const pollAfterMillis = "500"

// createRunRequest is the body of POST /threads/{thread_id}/runs.
type createRunRequest struct {
	validate.RunFields
	AdditionalInstructions validate.Opt[string]                    `json:"additional_instructions"`
	AdditionalMessages     validate.Opt[[]validate.MessageRequest] `json:"additional_messages"`
}

// threadAndRunRequest is the body of POST /threads/runs.
type threadAndRunRequest struct {
	validate.RunFields
	Thread        validate.Opt[validate.ThreadRequest]        `json:"thread"`
	ToolResources validate.Opt[validate.ToolResourcesRequest] `json:"tool_resources"`
}

// buildRun loads the assistant a run names and validates the run's knobs
// against it (package validate, which the playground calls too).
func (h *API) buildRun(c *echo.Context, f validate.RunFields, additional *string) (db.Run, error) {
	id, err := f.AssistantRef()
	if err != nil {
		return db.Run{}, err
	}
	asst, err := h.store.GetAssistant(c.Request().Context(), id)
	if err != nil {
		return db.Run{}, respond.StoreErr(err, "assistant", id)
	}
	return validate.Run(f, asst, additional)
}

// CreateRun handles POST /v1/threads/{thread_id}/runs.
func (h *API) CreateRun(c *echo.Context) error {
	var from *position
	var err error
	stack.Run(func() { from, err = h.createRun(c) })
	return h.streamFrom(c, from, err)
}

// createRun creates the run and answers with it, or returns where its
// stream starts.
func (h *API) createRun(c *echo.Context) (*position, error) {
	threadID := c.Param("thread_id")
	if err := checkID("thread_id", threadID, "thread_"); err != nil {
		return nil, err
	}
	if err := checkInclude(c); err != nil {
		return nil, err
	}
	var req createRunRequest
	if err := decodeBody(c.Request(), &req, false); err != nil {
		return nil, err
	}
	ctx := c.Request().Context()
	if _, err := h.store.GetThread(ctx, threadID); err != nil {
		return nil, respond.StoreErr(err, "thread", threadID)
	}
	run, err := h.buildRun(c, req.RunFields, req.AdditionalInstructions.Ptr())
	if err != nil {
		return nil, err
	}
	run.ThreadID = threadID
	if err := checkArrayLen("additional_messages", len(req.AdditionalMessages.V), validate.MaxThreadMessages); err != nil {
		return nil, err
	}
	var extra []db.Message
	for i, mr := range req.AdditionalMessages.V {
		m, err := h.buildMessage(c, validate.P("additional_messages", i), mr)
		if err != nil {
			return nil, err
		}
		extra = append(extra, m)
	}
	run, err = h.engine.CreateRun(ctx, run, extra)
	if err != nil {
		if errors.Is(err, db.ErrNotFound) {
			return nil, respond.NotFound("thread", threadID)
		}
		return nil, respond.RunErr(err, "")
	}
	if err := h.attachForSearch(ctx, threadID, extra...); err != nil {
		return nil, respond.Internal(err)
	}
	if req.Stream.V {
		return &position{run.ID, 0}, nil
	}
	return nil, c.JSON(http.StatusOK, run)
}

// CreateThreadAndRun handles POST /v1/threads/runs.
func (h *API) CreateThreadAndRun(c *echo.Context) error {
	var from *position
	var err error
	stack.Run(func() { from, err = h.createThreadAndRun(c) })
	return h.streamFrom(c, from, err)
}

// createThreadAndRun creates the thread and run and answers with the run,
// or returns where its stream starts.
func (h *API) createThreadAndRun(c *echo.Context) (*position, error) {
	var req threadAndRunRequest
	if err := decodeBody(c.Request(), &req, false); err != nil {
		return nil, err
	}
	run, err := h.buildRun(c, req.RunFields, nil)
	if err != nil {
		return nil, err
	}
	thread, msgs, err := h.buildThread(c, "thread", req.Thread.V)
	if err != nil {
		return nil, err
	}
	if req.ToolResources.Set {
		if run.ToolResources, err = h.toolResources(c, "tool_resources", req.ToolResources.Ptr()); err != nil {
			return nil, err
		}
	}
	_, run, err = h.engine.CreateThreadAndRun(c.Request().Context(), thread, msgs, run)
	if err != nil {
		return nil, respond.RunErr(err, "")
	}
	if err := h.attachForSearch(c.Request().Context(), run.ThreadID, msgs...); err != nil {
		return nil, respond.Internal(err)
	}
	if req.Stream.V {
		return &position{run.ID, 0}, nil
	}
	return nil, c.JSON(http.StatusOK, run)
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
		return respond.StoreErr(err, "run", runID)
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
		return respond.StoreErr(err, "thread", threadID)
	}
	page, err := h.store.ListRuns(ctx, threadID, p)
	if err != nil {
		return respond.StoreErr(err, "", "")
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
		return respond.RunErr(err, runID)
	}
	return c.JSON(http.StatusOK, run)
}

// SubmitToolOutputs handles POST .../runs/{run_id}/submit_tool_outputs.
func (h *API) SubmitToolOutputs(c *echo.Context) error {
	var from *position
	var err error
	stack.Run(func() { from, err = h.submitToolOutputs(c) })
	return h.streamFrom(c, from, err)
}

// submitToolOutputs hands the outputs over and answers with the run, or
// returns where its stream resumes.
func (h *API) submitToolOutputs(c *echo.Context) (*position, error) {
	threadID, runID, err := runPath(c)
	if err != nil {
		return nil, err
	}
	var req struct {
		ToolOutputs validate.Opt[[]validate.ToolOutputRequest] `json:"tool_outputs"`
		Stream      validate.Opt[bool]                         `json:"stream"`
	}
	if err := decodeBody(c.Request(), &req, false); err != nil {
		return nil, err
	}
	checked, err := validate.ToolOutputs(validate.P("tool_outputs"), req.ToolOutputs)
	if err != nil {
		return nil, err
	}
	outputs := make([]agent.ToolOutput, len(checked))
	for i, o := range checked {
		outputs[i] = agent.ToolOutput{ToolCallID: o.ToolCallID, Output: o.Output}
	}
	run, from, err := h.engine.SubmitToolOutputs(c.Request().Context(), threadID, runID, outputs)
	if err != nil {
		return nil, respond.RunErr(err, runID)
	}
	if req.Stream.V {
		return &position{runID, from}, nil
	}
	return nil, c.JSON(http.StatusOK, run)
}

// stepIncludes are the include[] values run step endpoints accept.
var stepIncludes = []string{"step_details.tool_calls[*].file_search.results[*].content"}

// checkInclude validates include[] (and, leniently, include).
func checkInclude(c *echo.Context) error {
	q := c.QueryParams()
	for _, v := range append(q["include[]"], q["include"]...) {
		if !slices.Contains(stepIncludes, v) {
			return respond.Invalid("include", "invalid_value", "Invalid value: '%s'. Supported values are: '%s'.", v, stepIncludes[0])
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
		return respond.StoreErr(err, "run", runID)
	}
	page, err := h.store.ListSteps(ctx, threadID, runID, p)
	if err != nil {
		return respond.StoreErr(err, "", "")
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
		return respond.StoreErr(err, "run step", stepID)
	}
	if !wantsSearchContent(c) {
		stripSearchContent(&st)
	}
	return c.JSON(http.StatusOK, st)
}

// ListModels handles GET /v1/models.
func (h *API) ListModels(c *echo.Context) error {
	models, err := h.projectModels(c.Request().Context(), h.engine.Models(c.Request().Context()))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"object": "list", "data": models})
}
