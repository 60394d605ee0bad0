package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/labstack/echo/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
)

// Streaming: the engine's events for a run (the Assistants events, which
// serve here as the neutral form) are encoded into Responses events. The
// encoding is a pure function of the run's event log, so reading the log
// again from its start yields the same events with the same
// sequence_numbers: that is how a background response is replayed
// (starting_after skips what the client has).

// frame is one encoded Responses event.
type frame struct {
	typ  string
	data map[string]any
}

// encoder turns a response run's events into Responses events.
type encoder struct {
	rec     db.ResponseRecord
	model   string
	include []string
	final   func() (responseObject, error) // the response as stored, at the end

	seq       int64
	next      int            // next output_index
	byMessage map[string]int // message id → output_index
	text      map[string]string
	calls     map[string]*callState // step id + call index → call
	started   bool
	queuedOut bool
}

type callState struct {
	index  int
	typ    string
	id     string // the tool call id (call_…)
	itemID string
	name   string
	args   string
	done   bool
}

func newEncoder(rec db.ResponseRecord, model string, include []string, final func() (responseObject, error)) *encoder {
	return &encoder{rec: rec, model: model, include: include, final: final,
		byMessage: map[string]int{}, text: map[string]string{}, calls: map[string]*callState{}}
}

func (en *encoder) emit(out []frame, typ string, data map[string]any) []frame {
	data["type"] = typ
	data["sequence_number"] = en.seq
	en.seq++
	return append(out, frame{typ, data})
}

func (en *encoder) snapshot(status string) responseObject {
	return shell(en.rec, en.model, status)
}

// messageDelta and stepDelta are the parts of the engine's delta events
// the encoder reads.
type messageDelta struct {
	ID    string `json:"id"`
	Delta struct {
		Content []struct {
			Index int `json:"index"`
			Type  string
			Text  *struct {
				Value       string          `json:"value"`
				Annotations []db.Annotation `json:"annotations"`
			} `json:"text"`
		} `json:"content"`
	} `json:"delta"`
}

type stepDelta struct {
	ID    string `json:"id"`
	Delta struct {
		StepDetails struct {
			ToolCalls []map[string]json.RawMessage `json:"tool_calls"`
		} `json:"step_details"`
	} `json:"delta"`
}

// encode returns the Responses events for one engine event; done is set
// by the terminal event.
func (en *encoder) encode(ev agent.Event) (out []frame, done bool, err error) {
	if !en.started && ev.Name != "thread.run.created" && ev.Name != "thread.created" {
		// A log that starts later (the run resumed after a restart) still
		// starts the stream with response.created.
		out = en.start(out)
		if en.rec.Background {
			en.queuedOut = true
			out = en.emit(out, "response.queued", map[string]any{"response": en.snapshot("queued")})
		}
	}
	switch ev.Name {
	case "thread.run.created":
		out = en.start(out)
	case "thread.run.queued":
		if en.rec.Background && !en.queuedOut {
			en.queuedOut = true
			out = en.emit(out, "response.queued", map[string]any{"response": en.snapshot("queued")})
		}
	case "thread.run.in_progress":
		out = en.emit(out, "response.in_progress", map[string]any{"response": en.snapshot("in_progress")})
	case "thread.message.created":
		var m db.Message
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			return nil, false, err
		}
		i := en.next
		en.next++
		en.byMessage[m.ID] = i
		out = en.emit(out, "response.output_item.added", map[string]any{"output_index": i,
			"item": map[string]any{"type": "message", "id": m.ID, "status": "in_progress", "role": "assistant", "content": []any{}}})
		out = en.emit(out, "response.content_part.added", map[string]any{"item_id": m.ID, "output_index": i,
			"content_index": 0, "part": db.OutputText("", nil)})
	case "thread.message.delta":
		var d messageDelta
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return nil, false, err
		}
		i, ok := en.byMessage[d.ID]
		if !ok {
			return nil, false, nil
		}
		for _, c := range d.Delta.Content {
			if c.Text == nil || c.Index != 0 {
				continue
			}
			if c.Text.Value != "" {
				en.text[d.ID] += c.Text.Value
				out = en.emit(out, "response.output_text.delta", map[string]any{"item_id": d.ID, "output_index": i,
					"content_index": 0, "delta": c.Text.Value, "logprobs": []any{}})
			}
			for k, a := range c.Text.Annotations {
				out = en.emit(out, "response.output_text.annotation.added", map[string]any{"item_id": d.ID, "output_index": i,
					"content_index": 0, "annotation_index": k, "annotation": db.ResponseAnnotation(a)})
			}
		}
	case "thread.message.completed", "thread.message.incomplete":
		var m db.Message
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			return nil, false, err
		}
		i, ok := en.byMessage[m.ID]
		if !ok {
			return nil, false, nil
		}
		item := db.MessageItem(m)
		part := db.OutputText(en.text[m.ID], nil)
		if content, _ := item["content"].([]any); len(content) > 0 {
			part = content[0].(map[string]any)
		} else {
			item["content"] = []any{part}
		}
		out = en.emit(out, "response.output_text.done", map[string]any{"item_id": m.ID, "output_index": i,
			"content_index": 0, "text": part["text"], "logprobs": []any{}})
		out = en.emit(out, "response.content_part.done", map[string]any{"item_id": m.ID, "output_index": i,
			"content_index": 0, "part": part})
		out = en.emit(out, "response.output_item.done", map[string]any{"output_index": i, "item": item})
	case agent.EventReasoningDelta, agent.EventReasoningDone:
		var r agent.ReasoningEvent
		if err := json.Unmarshal(ev.Data, &r); err != nil {
			return nil, false, err
		}
		i, ok := en.byMessage[r.ID]
		if !ok {
			i = en.next
			en.next++
			en.byMessage[r.ID] = i
			out = en.emit(out, "response.output_item.added", map[string]any{"output_index": i, "item": map[string]any{
				"type": "reasoning", "id": r.ID, "summary": []any{}, "content": []any{}, "status": "in_progress"}})
			out = en.emit(out, "response.content_part.added", map[string]any{"item_id": r.ID, "output_index": i,
				"content_index": 0, "part": reasoningPart("")})
		}
		if ev.Name == agent.EventReasoningDelta {
			out = en.emit(out, "response.reasoning_text.delta", map[string]any{"item_id": r.ID, "output_index": i,
				"content_index": 0, "delta": r.Delta})
			break
		}
		out = en.emit(out, "response.reasoning_text.done", map[string]any{"item_id": r.ID, "output_index": i,
			"content_index": 0, "text": r.Text})
		out = en.emit(out, "response.content_part.done", map[string]any{"item_id": r.ID, "output_index": i,
			"content_index": 0, "part": reasoningPart(r.Text)})
		var item map[string]any
		_ = json.Unmarshal(shown([]json.RawMessage{mustJSON(db.ReasoningItem(db.Reasoning{ID: r.ID, Text: r.Text}, "completed"))}, en.include)[0], &item)
		out = en.emit(out, "response.output_item.done", map[string]any{"output_index": i, "item": item})
	case "thread.run.step.delta":
		var d stepDelta
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return nil, false, err
		}
		for _, tc := range d.Delta.StepDetails.ToolCalls {
			out = en.toolDelta(out, d.ID, tc)
		}
	case "thread.run.step.completed":
		var st db.RunStep
		if err := json.Unmarshal(ev.Data, &st); err != nil {
			return nil, false, err
		}
		for k, tc := range st.StepDetails.ToolCalls {
			out = en.toolDone(out, st.ID, k, tc)
		}
	case "thread.run.completed", "thread.run.incomplete", "thread.run.failed", "thread.run.cancelled", "thread.run.expired":
		o, err := en.final()
		if err != nil {
			return nil, false, err
		}
		typ := map[string]string{"completed": "response.completed", "incomplete": "response.incomplete"}[o.Status]
		if typ == "" {
			typ = "response.failed"
		}
		return en.emit(out, typ, map[string]any{"response": o}), true, nil
	case "error":
		var e struct {
			Error struct {
				Message string `json:"message"`
				Code    string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(ev.Data, &e)
		return en.emit(out, "error", map[string]any{"code": e.Error.Code, "message": e.Error.Message, "param": nil}), true, nil
	}
	return out, false, nil
}

// reasoningPart is a reasoning item's content part.
func reasoningPart(text string) map[string]any {
	return map[string]any{"type": "reasoning_text", "text": text}
}

// start emits response.created.
func (en *encoder) start(out []frame) []frame {
	en.started = true
	status := "in_progress"
	if en.rec.Background {
		status = "queued"
	}
	return en.emit(out, "response.created", map[string]any{"response": en.snapshot(status)})
}

// toolDelta encodes a tool call fragment: the first announces the item.
func (en *encoder) toolDelta(out []frame, stepID string, tc map[string]json.RawMessage) []frame {
	var index int
	var typ, id string
	_ = json.Unmarshal(tc["index"], &index)
	_ = json.Unmarshal(tc["type"], &typ)
	_ = json.Unmarshal(tc["id"], &id)
	key := fmt.Sprintf("%s/%d", stepID, index)
	cs := en.calls[key]
	if cs == nil {
		if id == "" {
			return out // a result's delta for a call announced before this reader started
		}
		cs = &callState{index: en.next, typ: typ, id: id, itemID: db.CallItemID(typ, id)}
		en.next++
		en.calls[key] = cs
		out = en.announce(out, cs, tc)
	}
	switch typ {
	case "function":
		var fn struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		}
		_ = json.Unmarshal(tc["function"], &fn)
		if fn.Arguments != "" {
			cs.args += fn.Arguments
			out = en.emit(out, "response.function_call_arguments.delta", map[string]any{"item_id": cs.itemID,
				"output_index": cs.index, "delta": fn.Arguments})
		}
	case "code_interpreter":
		var ci struct {
			Input string `json:"input"`
		}
		_ = json.Unmarshal(tc["code_interpreter"], &ci)
		if ci.Input != "" {
			cs.args += ci.Input
			out = en.emit(out, "response.code_interpreter_call_code.delta", map[string]any{"item_id": cs.itemID,
				"output_index": cs.index, "delta": ci.Input})
		}
	}
	return out
}

func (en *encoder) announce(out []frame, cs *callState, tc map[string]json.RawMessage) []frame {
	switch cs.typ {
	case "function":
		var fn struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(tc["function"], &fn)
		cs.name = fn.Name
		out = en.emit(out, "response.output_item.added", map[string]any{"output_index": cs.index, "item": map[string]any{
			"type": "function_call", "id": cs.itemID, "call_id": cs.id, "name": fn.Name, "arguments": "", "status": "in_progress"}})
	case "code_interpreter":
		out = en.emit(out, "response.output_item.added", map[string]any{"output_index": cs.index, "item": map[string]any{
			"type": "code_interpreter_call", "id": cs.itemID, "status": "in_progress", "container_id": "", "code": "", "outputs": nil}})
		out = en.emit(out, "response.code_interpreter_call.in_progress", map[string]any{"item_id": cs.itemID, "output_index": cs.index})
	case "file_search":
		out = en.emit(out, "response.output_item.added", map[string]any{"output_index": cs.index, "item": map[string]any{
			"type": "file_search_call", "id": cs.itemID, "status": "in_progress", "queries": []any{}, "results": nil}})
		out = en.emit(out, "response.file_search_call.in_progress", map[string]any{"item_id": cs.itemID, "output_index": cs.index})
		out = en.emit(out, "response.file_search_call.searching", map[string]any{"item_id": cs.itemID, "output_index": cs.index})
	}
	return out
}

// toolDone closes a call when its step completes.
func (en *encoder) toolDone(out []frame, stepID string, k int, tc db.ToolCall) []frame {
	key := fmt.Sprintf("%s/%d", stepID, k)
	cs := en.calls[key]
	if cs == nil {
		cs = &callState{index: en.next, typ: tc.Type, id: tc.ID, itemID: db.CallItemID(tc.Type, tc.ID)}
		en.next++
		en.calls[key] = cs
		out = en.announce(out, cs, map[string]json.RawMessage{"function": mustJSON(tc.Function)})
	}
	if cs.done {
		return out
	}
	cs.done = true
	item := db.ToolCallItem(tc, db.ToolIO{}, "completed")
	switch tc.Type {
	case "function":
		out = en.emit(out, "response.function_call_arguments.done", map[string]any{"item_id": cs.itemID,
			"output_index": cs.index, "name": item["name"], "arguments": item["arguments"]})
	case "code_interpreter":
		out = en.emit(out, "response.code_interpreter_call_code.done", map[string]any{"item_id": cs.itemID,
			"output_index": cs.index, "code": item["code"]})
		out = en.emit(out, "response.code_interpreter_call.interpreting", map[string]any{"item_id": cs.itemID, "output_index": cs.index})
		out = en.emit(out, "response.code_interpreter_call.completed", map[string]any{"item_id": cs.itemID, "output_index": cs.index})
	case "file_search":
		out = en.emit(out, "response.file_search_call.completed", map[string]any{"item_id": cs.itemID, "output_index": cs.index})
	}
	items := shown([]json.RawMessage{mustJSON(item)}, en.include)
	var shownItem map[string]any
	_ = json.Unmarshal(items[0], &shownItem)
	return en.emit(out, "response.output_item.done", map[string]any{"output_index": cs.index, "item": shownItem})
}

// replay is the event sequence of a finished response whose run's event
// log is gone: created, in_progress, each output item whole, the end.
func (en *encoder) replay() ([]frame, error) {
	o, err := en.final()
	if err != nil {
		return nil, err
	}
	var out []frame
	status := "in_progress"
	if en.rec.Background {
		status = "queued"
	}
	out = en.emit(out, "response.created", map[string]any{"response": en.snapshot(status)})
	if en.rec.Background {
		out = en.emit(out, "response.queued", map[string]any{"response": en.snapshot("queued")})
	}
	out = en.emit(out, "response.in_progress", map[string]any{"response": en.snapshot("in_progress")})
	for i, raw := range o.Output {
		var item map[string]any
		if json.Unmarshal(raw, &item) != nil {
			continue
		}
		id, _ := item["id"].(string)
		added := map[string]any{}
		for k, v := range item {
			added[k] = v
		}
		added["status"] = "in_progress"
		if item["type"] == "message" || item["type"] == "reasoning" {
			added["content"] = []any{}
		}
		out = en.emit(out, "response.output_item.added", map[string]any{"output_index": i, "item": added})
		if item["type"] == "message" {
			content, _ := item["content"].([]any)
			for k, p := range content {
				part, _ := p.(map[string]any)
				out = en.emit(out, "response.content_part.added", map[string]any{"item_id": id, "output_index": i,
					"content_index": k, "part": db.OutputText("", nil)})
				if text, _ := part["text"].(string); text != "" {
					out = en.emit(out, "response.output_text.delta", map[string]any{"item_id": id, "output_index": i,
						"content_index": k, "delta": text, "logprobs": []any{}})
				}
				out = en.emit(out, "response.output_text.done", map[string]any{"item_id": id, "output_index": i,
					"content_index": k, "text": part["text"], "logprobs": []any{}})
				out = en.emit(out, "response.content_part.done", map[string]any{"item_id": id, "output_index": i,
					"content_index": k, "part": part})
			}
		}
		if item["type"] == "reasoning" {
			content, _ := item["content"].([]any)
			for k, p := range content {
				part, _ := p.(map[string]any)
				text, _ := part["text"].(string)
				out = en.emit(out, "response.content_part.added", map[string]any{"item_id": id, "output_index": i,
					"content_index": k, "part": reasoningPart("")})
				if text != "" {
					out = en.emit(out, "response.reasoning_text.delta", map[string]any{"item_id": id, "output_index": i,
						"content_index": k, "delta": text})
				}
				out = en.emit(out, "response.reasoning_text.done", map[string]any{"item_id": id, "output_index": i,
					"content_index": k, "text": text})
				out = en.emit(out, "response.content_part.done", map[string]any{"item_id": id, "output_index": i,
					"content_index": k, "part": reasoningPart(text)})
			}
		}
		if item["type"] == "function_call" {
			out = en.emit(out, "response.function_call_arguments.done", map[string]any{"item_id": id, "output_index": i,
				"name": item["name"], "arguments": item["arguments"]})
		}
		out = en.emit(out, "response.output_item.done", map[string]any{"output_index": i, "item": item})
	}
	typ := map[string]string{"completed": "response.completed", "incomplete": "response.incomplete"}[o.Status]
	if typ == "" {
		typ = "response.failed"
	}
	return en.emit(out, typ, map[string]any{"response": o}), nil
}

// sink receives encoded events; keepAlive is called when the stream has
// been idle for respond.Heartbeat.
type sink struct {
	event     func(f frame) error
	keepAlive func() error
}

// follow encodes the response's events after sequence number `after`
// (-1: all) into out until the response ends, ctx ends or out fails. The
// response does not depend on the reader.
func (h *Responses) follow(ctx context.Context, rec db.ResponseRecord, model string, include []string, after int64, out sink) {
	final := func() (responseObject, error) {
		stored, err := h.store.GetResponse(context.WithoutCancel(ctx), rec.ID)
		if err != nil {
			return responseObject{}, err
		}
		return h.load(context.WithoutCancel(ctx), stored, include)
	}
	en := newEncoder(rec, model, include, final)
	write := func(frames []frame) error {
		for _, f := range frames {
			if seq, _ := f.data["sequence_number"].(int64); seq <= after {
				continue
			}
			if err := out.event(f); err != nil {
				return err
			}
		}
		return nil
	}
	if !h.engine.Logged(rec.RunID) {
		run, err := h.store.GetRun(ctx, "", rec.RunID)
		if err == nil && db.IsTerminal(run.Status) {
			frames, err := en.replay()
			if err != nil {
				h.log.Error("replay response", "response_id", rec.ID, "error", err)
				return
			}
			_ = write(frames)
			return
		}
	}
	sub := h.engine.Events(rec.RunID, 0)
	for {
		wctx, cancelWait := context.WithTimeout(ctx, respond.Heartbeat)
		ev, err := sub.Next(wctx)
		cancelWait()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			if out.keepAlive() != nil {
				return
			}
			continue
		}
		if err != nil {
			return // the reader went away; the response goes on
		}
		if ev.Internal() && ev.Name != agent.EventReasoningDelta && ev.Name != agent.EventReasoningDone {
			continue
		}
		frames, done, err := en.encode(ev)
		if err != nil {
			h.log.Error("encode response event", "response_id", rec.ID, "event", ev.Name, "error", err)
			_ = write(en.emit(nil, "error", map[string]any{"code": "server_error", "message": "The response could not be streamed.", "param": nil}))
			return
		}
		if err := write(frames); err != nil || done {
			return
		}
	}
}

// stream writes the response's events after sequence number `after` (-1:
// all) as Server-Sent Events until the response ends. end, if set, runs
// when the stream has ended (the handler may have returned long before).
func (h *Responses) stream(c *echo.Context, rec db.ResponseRecord, model string, include []string, after int64, end func(ctx context.Context)) error {
	ctx := streamContext(c.Request().Context())
	f := &responseFeed{h: h, ctx: ctx, rec: rec, after: after}
	f.en = newEncoder(rec, model, include, func() (responseObject, error) {
		stored, err := h.store.GetResponse(ctx, rec.ID)
		if err != nil {
			return responseObject{}, err
		}
		return h.load(ctx, stored, include)
	})
	err := respond.Stream(c, h.streams, f)
	if end != nil {
		if d := respond.DetachedOf(c); d != nil {
			d.OnEnd(func() { end(ctx) })
		} else {
			end(ctx)
		}
	}
	return err
}

// streamContext is what a stream's later store reads need of the
// request's context: its project (and key), and its span. The request's
// own context is cancelled when its handler returns, and keeping it would
// keep the request and its connection's buffers with it while the stream
// runs on.
func streamContext(ctx context.Context) context.Context {
	out := trace.ContextWithSpanContext(context.Background(), trace.SpanContextFromContext(ctx))
	if p, ok := db.PrincipalFrom(ctx); ok {
		return db.WithPrincipal(out, p)
	}
	if project, err := db.ProjectFrom(ctx); err == nil {
		return db.WithProject(out, project)
	}
	return out
}

// responseFeed reads a response's run events as the hub publishes them and
// encodes them into Responses events (what follow does for a WebSocket).
type responseFeed struct {
	h     *Responses
	ctx   context.Context
	rec   db.ResponseRecord
	en    *encoder
	after int64
	sub   *agent.Subscription // nil until the first Fill
}

func (f *responseFeed) Fill(b *respond.Batch) bool {
	write := func(frames []frame) {
		for _, fr := range frames {
			if seq, _ := fr.data["sequence_number"].(int64); seq <= f.after {
				continue
			}
			data, err := json.Marshal(fr.data)
			if err != nil {
				f.h.log.Error("encode response event", "response_id", f.rec.ID, "event", fr.typ, "error", err)
				continue
			}
			b.Event(fr.typ, "", data)
		}
	}
	if f.sub == nil {
		if !f.h.engine.Logged(f.rec.RunID) {
			run, err := f.h.store.GetRun(f.ctx, "", f.rec.RunID)
			if err == nil && db.IsTerminal(run.Status) {
				frames, err := f.en.replay()
				if err != nil {
					f.h.log.Error("replay response", "response_id", f.rec.ID, "error", err)
					return true
				}
				write(frames)
				return true
			}
		}
		f.sub = f.h.engine.Events(f.rec.RunID, 0)
	}
	for {
		ev, ok := f.sub.TryNext()
		if !ok {
			return false
		}
		if ev.Internal() && ev.Name != agent.EventReasoningDelta && ev.Name != agent.EventReasoningDone {
			continue
		}
		frames, done, err := f.en.encode(ev)
		if err != nil {
			f.h.log.Error("encode response event", "response_id", f.rec.ID, "event", ev.Name, "error", err)
			write(f.en.emit(nil, "error", map[string]any{"code": "server_error", "message": "The response could not be streamed.", "param": nil}))
			return true
		}
		write(frames)
		if done {
			return true
		}
	}
}

func (f *responseFeed) Notify(wake func()) {
	if f.sub == nil {
		wake() // the first Fill has not run
		return
	}
	f.sub.Notify(wake)
}

func (f *responseFeed) Stop() {
	if f.sub != nil {
		f.sub.Stop()
	}
}
