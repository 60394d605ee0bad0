package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/assistantd/assistantd/db"
)

// execute runs one model turn of a run: it claims the run, sends the
// thread to the upstream, streams the answer out as events, and leaves the
// run requires_action (function calls) or terminal.
func (e *Engine) execute(parent context.Context, j job) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	e.mu.Lock()
	delete(e.pending, j.runID)
	if e.inflight[j.runID] != nil {
		e.mu.Unlock()
		return
	}
	e.inflight[j.runID] = cancel
	e.mu.Unlock()

	t := &turn{e: e, runID: j.runID}
	t.execute(ctx, j.resume)

	e.mu.Lock()
	delete(e.inflight, j.runID)
	e.mu.Unlock()
	if parent.Err() == nil {
		// A cancel that arrived as this turn ended found it still in
		// flight and left settling to it: settle now (idempotent).
		e.settle(context.WithoutCancel(ctx), j.runID, db.RunCancelling, nil)
	}
}

// turn is the state of one model turn while it streams.
type turn struct {
	e     *Engine
	runID string
	run   db.Run

	msgStepID, msgID string
	msgDone          bool
	text             strings.Builder
	textSent         bool

	toolStepID string
	asm        assembler

	broken         error  // a store write failed: the turn stops
	emitted        bool   // something reached the hub: no retry from here
	finish         string // the upstream's finish_reason
	usage          *db.Usage
	promptEstimate int64
}

func (t *turn) execute(ctx context.Context, resume bool) {
	e := t.e
	wctx := context.WithoutCancel(ctx) // store writes finish even when the run is cancelled
	err := e.commit(wctx, t.runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
		run, err := tx.GetRun(ctx, t.runID)
		if err != nil {
			return err
		}
		switch {
		case resume && run.Status == db.RunInProgress:
		case !resume && run.Status == db.RunQueued:
		default:
			return errNotRunnable
		}
		t.run, err = tx.UpdateRun(ctx, t.runID, func(r *db.Run) error {
			now := e.store.Now()
			r.Status = db.RunInProgress
			if r.StartedAt == nil {
				r.StartedAt = &now
			}
			r.Attempts++
			return nil
		})
		if err != nil {
			return err
		}
		em.emit("thread.run.in_progress", t.run)
		return nil
	})
	if errors.Is(err, errNotRunnable) || errors.Is(err, db.ErrNotFound) {
		return
	}
	if err != nil {
		e.log.Error("claim run", "run_id", t.runID, "error", err)
		return
	}

	lastErr, incomplete := t.model(ctx)
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errCancelled):
		e.settle(wctx, t.runID, db.RunCancelling, t.open())
	case errors.Is(cause, errExpired):
		e.settle(wctx, t.runID, db.RunExpired, t.open())
	case errors.Is(cause, errThreadDeleted):
		t.streamError(db.ErrNotFound)
	case ctx.Err() != nil:
		// The server is stopping: leave the run in_progress; start-up
		// recovery resumes it.
	case lastErr != nil:
		t.fail(wctx, lastErr)
	case incomplete != "":
		t.endIncomplete(wctx, incomplete)
	}
}

var errNotRunnable = errors.New("run is not runnable")

// open describes the work in flight, for settling a stopped run.
func (t *turn) open() *openWork {
	o := &openWork{messageID: t.msgID, text: t.text.String()}
	if t.toolStepID != "" {
		o.stepID = t.toolStepID
	} else if !t.msgDone {
		o.stepID = t.msgStepID
	}
	o.usage = &db.Usage{PromptTokens: t.promptEstimate, CompletionTokens: CountTokens(o.text)}
	o.usage.TotalTokens = o.usage.PromptTokens + o.usage.CompletionTokens
	return o
}

// model performs the turn. It returns a last_error to fail the run with,
// or an incomplete reason ("max_prompt_tokens", "max_completion_tokens"),
// or neither when it has already moved the run on (or ctx ended).
func (t *turn) model(ctx context.Context) (*db.LastError, string) {
	e := t.e
	steps, err := e.store.ThreadSteps(ctx, t.run.ThreadID)
	if err != nil {
		return internalErr(ctx, err)
	}
	var used db.Usage
	n := 0
	for _, st := range steps {
		if st.RunID == t.runID {
			n++
			if st.TurnUsage != nil {
				used = used.Add(*st.TurnUsage)
			}
		}
	}
	if n >= e.cfg.MaxSteps {
		return &db.LastError{Code: "server_error", Message: fmt.Sprintf("The run reached its limit of %d steps.", e.cfg.MaxSteps)}, ""
	}
	provider, ok := e.providers.For(t.run.Model)
	if !ok {
		return &db.LastError{Code: "invalid_prompt", Message: fmt.Sprintf(
			"No upstream provider serves model '%s'. Configure one with --upstream-models or a providers file.", t.run.Model)}, ""
	}
	msgs, seqs, err := e.store.HistoryMessages(ctx, t.run.ThreadID)
	if err != nil {
		return internalErr(ctx, err)
	}
	runs, err := e.store.ThreadRuns(ctx, t.run.ThreadID)
	if err != nil {
		return internalErr(ctx, err)
	}
	items, err := buildHistory(ctx, storeFiles{e.store}, msgs, seqs, runs, steps)
	if err != nil {
		return internalErr(ctx, err)
	}
	fixed := CountTokens(t.run.Instructions) + perMessageTokens
	for _, tool := range t.run.Tools {
		if tool.Function != nil {
			fixed += CountTokens(tool.Function.Name) + CountTokens(tool.Function.Description) + CountTokens(string(tool.Function.Parameters))
		}
	}
	var budget int64
	if mp := t.run.MaxPromptTokens; mp != nil {
		if budget = *mp - used.PromptTokens; budget <= 0 {
			return nil, "max_prompt_tokens"
		}
	}
	items, fits := truncate(items, t.run.TruncationStrategy, fixed, budget)
	if !fits {
		return nil, "max_prompt_tokens"
	}
	if window := provider.ContextTokens; window > 0 && (t.run.TruncationStrategy == nil || t.run.TruncationStrategy.Type == "auto") {
		reserve := int64(1024) // room for the answer
		if mc := t.run.MaxCompletionTokens; mc != nil {
			reserve = min(*mc-used.CompletionTokens, window/2)
		}
		if items, fits = truncate(items, nil, fixed, window-reserve); !fits {
			return &db.LastError{Code: "invalid_prompt", Message: fmt.Sprintf(
				"The latest message alone does not fit the model's context window of %d tokens.", window)}, ""
		}
	}
	t.promptEstimate = fixed
	for _, it := range items {
		t.promptEstimate += it.tokens
	}
	params := requestParams(t.run, items)
	if mc := t.run.MaxCompletionTokens; mc != nil {
		left := *mc - used.CompletionTokens
		if left <= 0 {
			return nil, "max_completion_tokens"
		}
		params.MaxCompletionTokens = openai.Int(left)
	}

	stream := !provider.NoStream
	for attempt := 0; ; attempt++ {
		err = t.call(ctx, provider, params, stream)
		if err == nil || ctx.Err() != nil {
			break
		}
		if stream && !t.emitted && streamingUnsupported(err) {
			stream = false // fall back to a plain request once
			continue
		}
		if t.emitted || attempt >= e.cfg.Retries || !retryable(err) {
			break
		}
		wait := backoff(err, e.cfg.RetryBackoff, attempt)
		e.log.Warn("upstream request failed; retrying", "run_id", t.runID, "provider", provider.Name, "attempt", attempt+1, "wait", wait, "error", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	if ctx.Err() != nil {
		return nil, ""
	}
	if t.broken != nil {
		return &db.LastError{Code: "server_error", Message: "The run could not be recorded: " + t.broken.Error()}, ""
	}
	if err != nil {
		return upstreamErr(provider.Name, err), ""
	}
	return t.complete(ctx)
}

// storeFiles adapts the store's OpenFile to fileReader.
type storeFiles struct{ s Store }

func (f storeFiles) OpenFile(ctx context.Context, id string) (db.File, io.ReadCloser, error) {
	file, r, err := f.s.OpenFile(ctx, id)
	if err != nil {
		return file, nil, err
	}
	return file, r, nil
}

func internalErr(ctx context.Context, err error) (*db.LastError, string) {
	if ctx.Err() != nil {
		return nil, ""
	}
	return &db.LastError{Code: "server_error", Message: "Internal error while preparing the run: " + err.Error()}, ""
}

// call sends one request and feeds the answer into the turn.
func (t *turn) call(ctx context.Context, p *Provider, params openai.ChatCompletionNewParams, stream bool) error {
	if !stream {
		resp, err := p.Client.Chat.Completions.New(ctx, params)
		if err != nil {
			return err
		}
		if resp.JSON.Usage.Valid() {
			t.usage = &db.Usage{PromptTokens: resp.Usage.PromptTokens, CompletionTokens: resp.Usage.CompletionTokens, TotalTokens: resp.Usage.TotalTokens}
		}
		if len(resp.Choices) == 0 {
			return nil
		}
		ch := resp.Choices[0]
		if ch.Message.Content != "" {
			t.onText(ctx, ch.Message.Content)
		}
		for i, tc := range ch.Message.ToolCalls {
			var d openai.ChatCompletionChunkChoiceDeltaToolCall
			raw, _ := json.Marshal(map[string]any{"index": i, "id": tc.ID, "type": "function",
				"function": map[string]string{"name": tc.Function.Name, "arguments": tc.Function.Arguments}})
			if err := json.Unmarshal(raw, &d); err != nil {
				return err
			}
			t.onTool(ctx, d)
		}
		t.finish = string(ch.FinishReason)
		return nil
	}
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	s := p.Client.Chat.Completions.NewStreaming(ctx, params)
	defer s.Close()
	for s.Next() && t.broken == nil {
		chunk := s.Current()
		if chunk.JSON.Usage.Valid() && chunk.Usage.TotalTokens > 0 {
			t.usage = &db.Usage{PromptTokens: chunk.Usage.PromptTokens, CompletionTokens: chunk.Usage.CompletionTokens, TotalTokens: chunk.Usage.TotalTokens}
		}
		for _, ch := range chunk.Choices {
			if ch.Index != 0 {
				continue
			}
			if ch.Delta.Content != "" {
				t.onText(ctx, ch.Delta.Content)
			}
			if ch.Delta.Refusal != "" {
				t.onText(ctx, ch.Delta.Refusal)
			}
			for _, tc := range ch.Delta.ToolCalls {
				t.onTool(ctx, tc)
			}
			if ch.FinishReason != "" {
				t.finish = ch.FinishReason
			}
		}
	}
	return s.Err()
}

type messageDelta struct {
	ID     string `json:"id"`
	Object string `json:"object"`
	Delta  struct {
		Content []textDelta `json:"content"`
	} `json:"delta"`
}

type textDelta struct {
	Index int    `json:"index"`
	Type  string `json:"type"`
	Text  struct {
		Value       string          `json:"value"`
		Annotations []db.Annotation `json:"annotations,omitzero"`
	} `json:"text"`
}

// onText streams a text fragment, opening the message (and its step) on
// the first one.
func (t *turn) onText(ctx context.Context, frag string) {
	if t.broken != nil || t.toolStepID != "" || t.msgDone {
		// Text after tool calls in one answer: rare, and a second message
		// would interleave with the tool step; the calls carry the turn.
		return
	}
	if t.msgStepID == "" && !t.openMessage(ctx) {
		return
	}
	t.text.WriteString(frag)
	d := messageDelta{ID: t.msgID, Object: "thread.message.delta"}
	td := textDelta{Index: 0, Type: "text"}
	td.Text.Value = frag
	if !t.textSent {
		td.Text.Annotations = []db.Annotation{} // once, so clients start from an empty list
	}
	d.Delta.Content = []textDelta{td}
	t.publish("thread.message.delta", d)
	t.textSent = true
}

func (t *turn) publish(name string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %s: %v", name, err))
	}
	t.e.hub.Publish(t.runID, name, b)
	t.emitted = true
}

// openMessage creates the message_creation step and its in-progress
// message.
func (t *turn) openMessage(ctx context.Context) bool {
	err := t.e.commit(context.WithoutCancel(ctx), t.runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
		m, err := tx.CreateMessage(ctx, db.Message{ThreadID: t.run.ThreadID, Status: "in_progress", Role: "assistant",
			AssistantID: &t.run.AssistantID, RunID: &t.run.ID})
		if err != nil {
			return err
		}
		st, err := tx.CreateStep(ctx, db.RunStep{RunID: t.runID, ThreadID: t.run.ThreadID, AssistantID: t.run.AssistantID,
			Type: db.StepMessageCreation, StepDetails: db.StepDetails{Type: db.StepMessageCreation,
				MessageCreation: &db.MessageCreation{MessageID: m.ID}}})
		if err != nil {
			return err
		}
		em.emit("thread.run.step.created", st)
		em.emit("thread.run.step.in_progress", st)
		em.emit("thread.message.created", m)
		em.emit("thread.message.in_progress", m)
		t.msgStepID, t.msgID = st.ID, m.ID
		return nil
	})
	if err != nil {
		t.broken = err
		return false
	}
	t.emitted = true
	return true
}

// closeMessage completes (or marks incomplete) the open message and
// completes its step with usage.
func (t *turn) closeMessage(ctx context.Context, tx *db.Tx, em *emitter, reason string, usage db.Usage) error {
	now := t.e.store.Now()
	text := t.text.String()
	m, err := tx.UpdateMessage(ctx, t.msgID, func(m *db.Message) error {
		if text != "" {
			m.Content = []db.ContentPart{{Type: "text", Text: &db.Text{Value: text, Annotations: []db.Annotation{}}}}
		}
		if reason == "" {
			m.Status, m.CompletedAt = "completed", &now
		} else {
			m.Status, m.IncompleteAt, m.IncompleteDetails = "incomplete", &now, &db.IncompleteDetails{Reason: reason}
		}
		return nil
	})
	if err != nil {
		return err
	}
	st, err := tx.UpdateStep(ctx, t.msgStepID, func(st *db.RunStep) error {
		st.Status, st.CompletedAt, st.TurnUsage = db.StepCompleted, &now, &usage
		return nil
	})
	if err != nil {
		return err
	}
	em.emit("thread.message."+m.Status, m)
	em.emit("thread.run.step.completed", st)
	t.msgDone = true
	return nil
}

type stepDelta struct {
	ID     string `json:"id"`
	Object string `json:"object"`
	Delta  struct {
		StepDetails struct {
			Type      string          `json:"type"`
			ToolCalls []toolCallDelta `json:"tool_calls"`
		} `json:"step_details"`
	} `json:"delta"`
}

type toolCallDelta struct {
	Index    int    `json:"index"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type"`
	Function struct {
		Name      string  `json:"name,omitempty"`
		Arguments string  `json:"arguments"`
		Output    *string `json:"output"`
	} `json:"function"`
}

// MarshalJSON leaves "output" out of continuation fragments: the first
// fragment of a call carries "output": null, later ones only arguments.
func (d toolCallDelta) MarshalJSON() ([]byte, error) {
	fn := map[string]any{"arguments": d.Function.Arguments}
	if d.ID != "" {
		fn["name"] = d.Function.Name
		fn["output"] = nil
	}
	m := map[string]any{"index": d.Index, "type": d.Type, "function": fn}
	if d.ID != "" {
		m["id"] = d.ID
	}
	return json.Marshal(m)
}

// onTool folds a tool call fragment in, opening the tool_calls step on
// the first one (after closing any open message: one step at a time).
func (t *turn) onTool(ctx context.Context, tc openai.ChatCompletionChunkChoiceDeltaToolCall) {
	if t.broken != nil {
		return
	}
	if t.toolStepID == "" {
		err := t.e.commit(context.WithoutCancel(ctx), t.runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
			if t.msgStepID != "" && !t.msgDone {
				if err := t.closeMessage(ctx, tx, em, "", db.Usage{}); err != nil {
					return err
				}
			}
			st, err := tx.CreateStep(ctx, db.RunStep{RunID: t.runID, ThreadID: t.run.ThreadID, AssistantID: t.run.AssistantID,
				Type: db.StepToolCalls, StepDetails: db.StepDetails{Type: db.StepToolCalls}})
			if err != nil {
				return err
			}
			em.emit("thread.run.step.created", st)
			em.emit("thread.run.step.in_progress", st)
			t.toolStepID = st.ID
			return nil
		})
		if err != nil {
			t.broken = err
			return
		}
		t.emitted = true
	}
	call, frag := t.asm.add(tc)
	switch {
	case !call.announced && call.name != "":
		t.announceCall(call)
	case call.announced && frag != "":
		d := toolCallDelta{Index: t.asm.position(call), Type: "function"}
		d.Function.Arguments = frag
		t.publishStepDelta(d)
	}
}

// announceCall sends a call's first fragment: id, type, name, the
// arguments so far, and a null output.
func (t *turn) announceCall(call *toolCall) {
	d := toolCallDelta{Index: t.asm.position(call), ID: call.ID, Type: "function"}
	d.Function.Name, d.Function.Arguments = call.name, call.args.String()
	t.publishStepDelta(d)
	call.announced = true
}

func (t *turn) publishStepDelta(d toolCallDelta) {
	sd := stepDelta{ID: t.toolStepID, Object: "thread.run.step.delta"}
	sd.Delta.StepDetails.Type = db.StepToolCalls
	sd.Delta.StepDetails.ToolCalls = []toolCallDelta{d}
	t.publish("thread.run.step.delta", sd)
}

// turnUsage is the upstream's usage, or an estimate when it sent none.
func (t *turn) turnUsage() db.Usage {
	if t.usage != nil {
		return *t.usage
	}
	completion := CountTokens(t.text.String())
	for _, c := range t.asm.calls {
		completion += CountTokens(c.name) + CountTokens(c.args.String())
	}
	return db.Usage{PromptTokens: t.promptEstimate, CompletionTokens: completion, TotalTokens: t.promptEstimate + completion}
}

// complete ends the turn after the upstream answered: function calls move
// the run to requires_action; text completes it (incomplete on a token cap).
func (t *turn) complete(ctx context.Context) (*db.LastError, string) {
	usage := t.turnUsage()
	wctx := context.WithoutCancel(ctx)
	if t.toolStepID != "" {
		for _, c := range t.asm.calls {
			if c.name == "" {
				return &db.LastError{Code: "server_error", Message: "The model returned a tool call without a function name."}, ""
			}
			if !c.announced {
				t.announceCall(c)
			}
		}
		err := t.e.commit(wctx, t.runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
			var required []db.RequiredToolCall
			var calls []db.ToolCall
			for _, c := range t.asm.calls {
				args := c.args.String()
				calls = append(calls, db.ToolCall{ID: c.ID, Type: "function", Function: &db.FunctionCallOutput{Name: c.name, Arguments: args}})
				required = append(required, db.RequiredToolCall{ID: c.ID, Type: "function", Function: db.FunctionCall{Name: c.name, Arguments: args}})
			}
			if _, err := tx.UpdateStep(ctx, t.toolStepID, func(st *db.RunStep) error {
				st.StepDetails.ToolCalls, st.TurnUsage = calls, &usage
				return nil
			}); err != nil {
				return err
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
		})
		if err != nil {
			t.streamError(err)
		}
		return nil, ""
	}
	if t.msgStepID == "" && !t.openMessage(ctx) {
		return &db.LastError{Code: "server_error", Message: "Could not record the model's answer."}, ""
	}
	reason, runIncomplete := "", ""
	switch t.finish {
	case "length":
		reason, runIncomplete = "max_tokens", "max_completion_tokens"
	case "content_filter":
		reason = "content_filter"
	}
	err := t.e.commit(wctx, t.runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
		if err := t.closeMessage(ctx, tx, em, reason, usage); err != nil {
			return err
		}
		now := t.e.store.Now()
		if runIncomplete != "" {
			return t.e.finish(ctx, tx, em, t.runID, db.RunIncomplete, nil, &db.IncompleteDetails{Reason: runIncomplete}, now)
		}
		return t.e.finish(ctx, tx, em, t.runID, db.RunCompleted, nil, nil, now)
	})
	if err != nil {
		t.streamError(err)
	}
	return nil, ""
}

// endIncomplete ends the run incomplete before the model was called (a
// token budget already spent).
func (t *turn) endIncomplete(ctx context.Context, reason string) {
	err := t.e.commit(ctx, t.runID, func(ctx context.Context, tx *db.Tx, em *emitter) error {
		return t.e.finish(ctx, tx, em, t.runID, db.RunIncomplete, nil, &db.IncompleteDetails{Reason: reason}, t.e.store.Now())
	})
	if err != nil {
		t.streamError(err)
	}
}

// fail ends the run failed, keeping any text already streamed in its
// message (incomplete) and failing the open step with the same error.
func (t *turn) fail(ctx context.Context, lastErr *db.LastError) {
	if err := t.e.fail(ctx, t.runID, t.open(), lastErr); err != nil {
		t.streamError(err)
	}
}

// streamError tells the run's stream readers that the run could not be
// recorded (its thread was deleted, or the store failed), as the wrapped
// error event all three SDKs raise, and logs it.
func (t *turn) streamError(err error) {
	if errors.Is(err, db.ErrIllegalTransition) {
		return // settled elsewhere (cancelled or expired meanwhile)
	}
	t.e.log.Error("run could not be recorded", "run_id", t.runID, "error", err)
	msg := "The run could not be recorded."
	if errors.Is(err, db.ErrNotFound) {
		msg = "The run no longer exists: its thread was deleted."
	}
	t.publish("error", map[string]any{"error": map[string]any{"message": msg, "type": "server_error", "param": nil, "code": "server_error"}})
}

// retryable reports whether an upstream error may pass on retry: rate
// limits, server errors, timeouts and dropped connections.
func retryable(err error) bool {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		s := apiErr.StatusCode
		return s == http.StatusTooManyRequests || s == http.StatusRequestTimeout || s == http.StatusConflict || s >= 500
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "connection reset") ||
		strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "connection refused")
}

// streamingUnsupported spots upstreams that reject stream=true.
func streamingUnsupported(err error) bool {
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		return false
	}
	return (apiErr.StatusCode == http.StatusBadRequest || apiErr.StatusCode == http.StatusNotImplemented) &&
		strings.Contains(strings.ToLower(apiErr.Message), "stream")
}

// backoff doubles base per attempt, or honours the upstream's Retry-After.
func backoff(err error, base time.Duration, attempt int) time.Duration {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) && apiErr.Response != nil {
		if ms, err := strconv.ParseFloat(apiErr.Response.Header.Get("Retry-After-Ms"), 64); err == nil && ms >= 0 {
			return min(time.Duration(ms*float64(time.Millisecond)), time.Minute)
		}
		if s, err := strconv.ParseFloat(apiErr.Response.Header.Get("Retry-After"), 64); err == nil && s >= 0 {
			return min(time.Duration(s*float64(time.Second)), time.Minute)
		}
	}
	return base << attempt
}

// upstreamErr describes a failed upstream request as the run's last_error.
func upstreamErr(provider string, err error) *db.LastError {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		code := "server_error"
		if apiErr.StatusCode == http.StatusTooManyRequests {
			code = "rate_limit_exceeded"
		}
		msg := apiErr.Message
		if msg == "" {
			msg = http.StatusText(apiErr.StatusCode)
		}
		return &db.LastError{Code: code, Message: fmt.Sprintf("The model provider '%s' answered HTTP %d: %s", provider, apiErr.StatusCode, msg)}
	}
	return &db.LastError{Code: "server_error", Message: fmt.Sprintf("The model provider '%s' could not be reached: %v", provider, err)}
}
