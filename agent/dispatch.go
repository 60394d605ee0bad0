package agent

// Tool dispatch: the third part of a turn. When the model has made tool
// calls, each goes to the runner that serves it (see tools.go): built-in
// tools and functions with a runner run here, in parallel, each result
// recorded as it arrives; the turn then waits in requires_action for the
// client's calls only, or, when the server ran them all, completes the step
// so the model is asked again.
//
// Durability: the calls (with their arguments) are written before any runs,
// and each result is written when it arrives, so a restart resumes only the
// calls without a result (see take and recover): no finished tool runs twice.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/assistantd/assistantd/db"
)

// builtin returns the built-in tool serving a call named name in run: one
// whose type the run enables. Nil means the call is a function call.
func (e *Engine) builtin(run db.Run, name string) Builtin {
	b, ok := e.builtins[name]
	if !ok {
		return nil
	}
	for _, tool := range run.Tools {
		if tool.Type == name {
			return b
		}
	}
	return nil
}

// offer lists the functions offered to the model for the run: its
// functions, and a function for each built-in tool it enables that this
// server runs. Built-in tools no runner serves are not offered.
func (e *Engine) offer(run db.Run) []db.FunctionDef {
	var fds []db.FunctionDef
	for _, tool := range run.Tools {
		switch {
		case tool.Type == "function" && tool.Function != nil:
			fds = append(fds, *tool.Function)
		case e.builtins[tool.Type] != nil:
			fds = append(fds, e.builtins[tool.Type].Offer(run, tool))
		}
	}
	return fds
}

// tools records the calls the model made and runs them.
func (t *turn) tools(ctx context.Context) (again bool, lastErr *db.LastError, incomplete string) {
	usage := t.turnUsage()
	for _, c := range t.asm.calls {
		if c.ignored {
			continue
		}
		if c.name == "" {
			return false, &db.LastError{Code: "server_error", Message: "The model returned a tool call without a function name."}, ""
		}
		if !c.announced {
			t.announceCall(c)
		}
	}
	// Which calls the server runs is decided now, once, and recorded
	// (ToolIO): a webhook configured later does not take over a call the
	// client was asked for.
	io := map[string]db.ToolIO{}
	var calls []db.ToolCall
	for _, c := range t.asm.calls {
		if c.ignored {
			continue
		}
		args := c.args.String()
		if c.builtin != nil {
			calls = append(calls, builtinRecord(c.ID, c.builtin, args))
			io[c.ID] = db.ToolIO{Name: c.name, Arguments: args}
			continue
		}
		calls = append(calls, db.ToolCall{ID: c.ID, Type: "function", Function: &db.FunctionCallOutput{Name: c.name, Arguments: args}})
		if t.e.cfg.Functions == nil {
			continue
		}
		_, ok, err := t.e.cfg.Functions.Function(ctx, t.run, c.name)
		if err != nil {
			if ctx.Err() != nil {
				return false, nil, ""
			}
			return false, &db.LastError{Code: "server_error", Message: fmt.Sprintf("Could not look up how to run function '%s': %v", c.name, err)}, ""
		}
		if ok {
			io[c.ID] = db.ToolIO{Name: c.name, Arguments: args}
		}
	}
	var step db.RunStep
	err := t.e.commit(context.WithoutCancel(ctx), t.runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
		var err error
		step, err = tx.UpdateStep(ctx, t.toolStepID, func(st *db.RunStep) error {
			st.StepDetails.ToolCalls, st.TurnUsage, st.ToolIO = calls, &usage, io
			t.withReasoningTokens(st)
			return nil
		})
		return err
	})
	if err != nil {
		t.streamError(err)
		return false, nil, ""
	}
	return t.dispatch(ctx, step)
}

// builtinRecord is a built-in call's step record before it runs: the
// announcing part merged with what a fresh ArgStream makes of the whole
// arguments ({"input": code, "outputs": []} for code_interpreter).
func builtinRecord(id string, b Builtin, args string) db.ToolCall {
	s := b.Stream()
	part := mergeParts(s.Start(), s.Write(args))
	raw, _ := json.Marshal(map[string]any{"id": id, "type": b.Type(), b.Type(): part})
	var tc db.ToolCall
	if err := json.Unmarshal(raw, &tc); err != nil || tc.Type != b.Type() {
		tc = db.ToolCall{ID: id, Type: b.Type()}
	}
	return tc
}

// mergeParts merges delta parts as the SDKs accumulate them: strings
// concatenate, objects merge recursively, anything else is replaced.
func mergeParts(acc, next any) any {
	a, b := asJSONValue(acc), asJSONValue(next)
	switch av := a.(type) {
	case string:
		if bv, ok := b.(string); ok {
			return av + bv
		}
	case map[string]any:
		if bv, ok := b.(map[string]any); ok {
			for k, v := range bv {
				if old, ok := av[k]; ok {
					av[k] = mergeParts(old, v)
				} else {
					av[k] = v
				}
			}
			return av
		}
	}
	if b == nil {
		return a
	}
	return b
}

// asJSONValue turns v into its plain JSON value (maps, strings, numbers).
func asJSONValue(v any) any {
	if v == nil {
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	if json.Unmarshal(raw, &out) != nil {
		return nil
	}
	return out
}

// pendingCall is a server-side call still to run.
type pendingCall struct {
	index  int
	call   ToolCall
	runner Runner
}

type callOutcome struct {
	pendingCall
	result ToolResult
	err    error
}

// dispatch runs the step's server-side calls that have no result yet, in
// parallel, recording each result as it arrives. Then the run waits for the
// client's calls (requires_action), or, when there are none, the step
// completes and the model is asked again.
func (t *turn) dispatch(ctx context.Context, step db.RunStep) (again bool, lastErr *db.LastError, incomplete string) {
	var pending []pendingCall
	for i, tc := range step.StepDetails.ToolCalls {
		io, server := step.ToolIO[tc.ID]
		if !server || io.Output != nil || io.Client {
			continue
		}
		r, lastErr := t.runner(ctx, tc, io)
		if lastErr != nil {
			if ctx.Err() != nil {
				return false, nil, ""
			}
			return false, lastErr, ""
		}
		call := ToolCall{ID: tc.ID, Name: io.Name, Arguments: io.Arguments, Run: t.run}
		pending = append(pending, pendingCall{index: i, call: call, runner: r})
	}

	outcomes := make(chan callOutcome)
	for _, p := range pending {
		go func() {
			if p.runner == nil { // no longer served: the client answers it
				outcomes <- callOutcome{pendingCall: p, err: ErrToClient}
				return
			}
			start := time.Now()
			tctx, span := t.e.startTool(ctx, p.call)
			res, err := p.runner.Run(tctx, p.call)
			endSpan(span, err)
			t.e.observeTool(p.call.Name, err, start)
			outcomes <- callOutcome{pendingCall: p, result: res, err: err}
		}()
	}
	var failed error
	for range pending {
		o := <-outcomes
		switch {
		case o.err == nil || errors.Is(o.err, ErrToClient):
			// Recorded even when the run is stopping: a finished call
			// never runs again.
			if err := t.record(ctx, step.ID, o, o.err != nil); err != nil {
				failed = err
			}
		case ctx.Err() != nil:
			// Stopping: what did not finish runs again on resume.
		default:
			failed = &toolError{call: o.call, err: o.err}
		}
	}
	if ctx.Err() != nil {
		return false, nil, ""
	}
	if failed != nil {
		if errors.Is(failed, db.ErrNotFound) || errors.Is(failed, db.ErrIllegalTransition) {
			t.streamError(failed)
			return false, nil, ""
		}
		return false, &db.LastError{Code: "server_error", Message: failed.Error()}, ""
	}
	return t.afterTools(ctx, step.ID)
}

// toolError is a runner's failure, which fails the run.
type toolError struct {
	call ToolCall
	err  error
}

func (e *toolError) Error() string {
	return fmt.Sprintf("The %s tool call %s could not be run: %v", e.call.Name, e.call.ID, e.err)
}

func (e *toolError) Unwrap() error { return e.err }

// runner finds the runner of a recorded server-side call; nil for a
// function no runner serves any more (the client answers it).
func (t *turn) runner(ctx context.Context, tc db.ToolCall, io db.ToolIO) (Runner, *db.LastError) {
	if tc.Type != "function" {
		b := t.e.builtins[tc.Type]
		if b == nil {
			return nil, &db.LastError{Code: "server_error", Message: fmt.Sprintf("No runner serves the %s tool on this server.", tc.Type)}
		}
		return b, nil
	}
	if t.e.cfg.Functions == nil {
		return nil, nil
	}
	r, ok, err := t.e.cfg.Functions.Function(ctx, t.run, io.Name)
	if err != nil {
		return nil, &db.LastError{Code: "server_error", Message: fmt.Sprintf("Could not look up how to run function '%s': %v", io.Name, err)}
	}
	if !ok {
		return nil, nil
	}
	return r, nil
}

// record writes one finished server-side call into its step (or marks it
// left to the client) and sends its last delta.
func (t *turn) record(ctx context.Context, stepID string, o callOutcome, toClient bool) error {
	return t.e.commit(context.WithoutCancel(ctx), t.runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
		var typ string
		_, err := tx.UpdateStep(ctx, stepID, func(st *db.RunStep) error {
			if o.index >= len(st.StepDetails.ToolCalls) {
				return fmt.Errorf("step %s has no tool call %d", stepID, o.index)
			}
			tc := &st.StepDetails.ToolCalls[o.index]
			io := st.ToolIO[tc.ID]
			typ = tc.Type
			if toClient {
				io.Client = true
			} else {
				out := o.result.Output
				io.Output, io.Attachments = &out, o.result.Attachments
				d := o.result.Details
				d.ID, d.Type = tc.ID, tc.Type
				if d.Type == "function" && d.Function == nil {
					d.Function = &db.FunctionCallOutput{Name: io.Name, Arguments: io.Arguments, Output: &out}
				}
				*tc = d
			}
			st.ToolIO[tc.ID] = io
			return nil
		})
		if err != nil {
			return err
		}
		if !toClient && o.result.Delta != nil {
			em.emit("thread.run.step.delta", newStepDelta(stepID, builtinDelta(o.index, "", typ, o.result.Delta)))
		}
		return nil
	})
}

// afterTools moves the run on once every server-side call of the step has
// a result: to requires_action for the calls the client answers, or, when
// there are none, the step completes and the model is asked again.
func (t *turn) afterTools(ctx context.Context, stepID string) (again bool, lastErr *db.LastError, incomplete string) {
	err := t.e.commit(context.WithoutCancel(ctx), t.runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
		steps, err := tx.RunSteps(ctx, t.runID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(steps, func(st db.RunStep) bool { return st.ID == stepID })
		if i < 0 {
			return db.ErrNotFound
		}
		st := steps[i]
		var required []db.RequiredToolCall
		for _, tc := range st.StepDetails.ToolCalls {
			io, server := st.ToolIO[tc.ID]
			if tc.Function != nil && (!server || io.Client) {
				required = append(required, db.RequiredToolCall{ID: tc.ID, Type: "function",
					Function: db.FunctionCall{Name: tc.Function.Name, Arguments: tc.Function.Arguments}})
			}
		}
		if len(required) > 0 {
			// A response does not wait: it completes with its function
			// calls, and the next response carries their outputs.
			if t.run.ResponseID != "" {
				now := t.e.store.Now()
				st, err := tx.UpdateStep(ctx, stepID, func(st *db.RunStep) error {
					st.Status, st.CompletedAt = db.StepCompleted, &now
					return nil
				})
				if err != nil {
					return err
				}
				em.emit("thread.run.step.completed", st)
				return t.e.finish(ctx, tx, em, t.runID, db.RunCompleted, nil, nil, now)
			}
			run, err := tx.UpdateRun(ctx, t.runID, func(r *db.Run) error {
				r.Status = db.RunRequiresAction
				r.RequiredAction = &db.RequiredAction{Type: "submit_tool_outputs", SubmitToolOutputs: db.SubmitToolOutputs{ToolCalls: required}}
				return nil
			})
			if err != nil {
				return err
			}
			em.emit("thread.run.requires_action", run)
			return nil
		}
		now := t.e.store.Now()
		st, err = tx.UpdateStep(ctx, stepID, func(st *db.RunStep) error {
			st.Status, st.CompletedAt = db.StepCompleted, &now
			return nil
		})
		if err != nil {
			return err
		}
		em.emit("thread.run.step.completed", st)
		again = true
		return nil
	})
	if err != nil {
		t.streamError(err)
		return false, nil, ""
	}
	if again {
		t.toolStepID = "" // done: nothing open for a cancel to settle
	}
	return again, nil, ""
}
