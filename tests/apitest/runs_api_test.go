package apitest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"

	"github.com/assistantd/assistantd/tests/upstream"
)

// pick decodes a JSON object and keeps only keys.
func pick(t testing.TB, raw string, keys ...string) map[string]any {
	t.Helper()
	var all map[string]any
	if err := json.Unmarshal([]byte(raw), &all); err != nil {
		t.Fatalf("decode %s: %v", truncate([]byte(raw), 300), err)
	}
	out := map[string]any{}
	for _, k := range keys {
		v, ok := all[k]
		if !ok {
			t.Errorf("object lacks %q: %s", k, truncate([]byte(raw), 300))
		}
		out[k] = v
	}
	return out
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jsonOf round-trips v through JSON into generic values.
func jsonOf(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

var knobKeys = []string{"model", "instructions", "tools", "metadata", "temperature", "top_p", "max_prompt_tokens",
	"max_completion_tokens", "truncation_strategy", "tool_choice", "parallel_tool_calls", "response_format"}

// upstreamKnobs is what the upstream request carried of the run's knobs.
func upstreamKnobs(t testing.TB, r any) map[string]any {
	t.Helper()
	m := jsonOf(t, r).(map[string]any)
	delete(m, "messages")
	return m
}

func TestRunKnobs(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := context.Background()
	asst := newAssistant(t, s, openai.BetaAssistantNewParams{Model: "fake-model", Instructions: openai.String("Assistant instructions."),
		Tools: []openai.AssistantToolUnionParam{weatherTool, timeTool}, Temperature: openai.Float(0.5)})

	t.Run("overrides", func(t *testing.T) {
		thread := threadWith(t, s, "first message")
		lookup := openai.AssistantToolParamOfFunction(shared.FunctionDefinitionParam{Name: "lookup",
			Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"q": map[string]any{"type": "string"}}}})
		run, err := s.Client.Beta.Threads.Runs.New(ctx, thread, openai.BetaThreadRunNewParams{
			AssistantID:            asst,
			Model:                  "fake-model-2",
			Instructions:           openai.String("Run instructions."),
			AdditionalInstructions: openai.String("Extra instructions."),
			AdditionalMessages: []openai.BetaThreadRunNewParamsAdditionalMessage{{Role: "user",
				Content: openai.BetaThreadRunNewParamsAdditionalMessageContentUnion{OfString: openai.String("knobs marker")}}},
			Tools:               []openai.AssistantToolUnionParam{lookup},
			Metadata:            shared.Metadata{"k": "v"},
			Temperature:         openai.Float(0.25),
			TopP:                openai.Float(0.75),
			MaxPromptTokens:     openai.Int(5000),
			MaxCompletionTokens: openai.Int(1000),
			TruncationStrategy:  openai.BetaThreadRunNewParamsTruncationStrategy{Type: "last_messages", LastMessages: openai.Int(10)},
			ToolChoice: openai.AssistantToolChoiceOptionUnionParam{OfAssistantToolChoice: &openai.AssistantToolChoiceParam{
				Type: openai.AssistantToolChoiceTypeFunction, Function: openai.AssistantToolChoiceFunctionParam{Name: "lookup"}}},
			ParallelToolCalls: openai.Bool(false),
			ResponseFormat:    openai.AssistantResponseFormatOptionUnionParam{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}},
		})
		if err != nil {
			t.Fatalf("create run: %v", err)
		}
		if run.Status != openai.RunStatusQueued || run.ExpiresAt-run.CreatedAt != 600 || run.JSON.Usage.Raw() != "null" {
			t.Errorf("create run: status %s, expires_at %d after created_at, usage %s; want queued, 600, null",
				run.Status, run.ExpiresAt-run.CreatedAt, run.Usage.RawJSON())
		}
		wantRun := decode(t, `{
			"model": "fake-model-2",
			"instructions": "Run instructions.\n\nExtra instructions.",
			"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
			"metadata": {"k": "v"},
			"temperature": 0.25, "top_p": 0.75,
			"max_prompt_tokens": 5000, "max_completion_tokens": 1000,
			"truncation_strategy": {"type": "last_messages", "last_messages": 10},
			"tool_choice": {"type": "function", "function": {"name": "lookup"}},
			"parallel_tool_calls": false,
			"response_format": {"type": "json_object"}}`)
		if diff := cmp.Diff(wantRun, any(pick(t, run.RawJSON(), knobKeys...))); diff != "" {
			t.Errorf("created run knobs (-want +got):\n%s", diff)
		}
		done := waitRun(t, s, thread, run.ID)
		if done.Status != openai.RunStatusCompleted {
			t.Fatalf("run %s: %+v", done.Status, done.LastError)
		}
		if diff := cmp.Diff(wantRun, any(pick(t, done.RawJSON(), knobKeys...))); diff != "" {
			t.Errorf("completed run knobs (-want +got):\n%s", diff)
		}
		reqs := requestsWith(up, "knobs marker")
		if len(reqs) != 1 {
			t.Fatalf("upstream got %d requests for the run, want 1", len(reqs))
		}
		wantReq := decode(t, `{
			"model": "fake-model-2",
			"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
			"tool_choice": {"type": "function", "function": {"name": "lookup"}},
			"parallel_tool_calls": false,
			"temperature": 0.25, "top_p": 0.75,
			"max_completion_tokens": 1000,
			"response_format": {"type": "json_object"},
			"stream": true}`)
		if diff := cmp.Diff(wantReq, any(upstreamKnobs(t, reqs[0]))); diff != "" {
			t.Errorf("upstream request (-want +got):\n%s", diff)
		}
		// The instructions go first as the system message; the additional
		// message was added to the thread before the run started.
		wantTurns := []string{"system: Run instructions.\n\nExtra instructions.", "user: first message", "user: knobs marker"}
		if diff := cmp.Diff(wantTurns, chatTurns(reqs[0])); diff != "" {
			t.Errorf("upstream messages (-want +got):\n%s", diff)
		}
		var roles []string
		for _, m := range runMessages(t, s, thread) {
			roles = append(roles, string(m.Role)+": "+messageText(m))
		}
		want := []string{"user: first message", "user: knobs marker", "assistant: You said: knobs marker"}
		if diff := cmp.Diff(want, roles); diff != "" {
			t.Errorf("thread messages (-want +got):\n%s", diff)
		}
	})

	t.Run("defaults", func(t *testing.T) {
		thread := threadWith(t, s, "defaults marker")
		run := startRun(t, s, thread, asst)
		wantRun := decode(t, `{
			"model": "fake-model",
			"instructions": "Assistant instructions.",
			"metadata": {},
			"temperature": 0.5, "top_p": null,
			"max_prompt_tokens": null, "max_completion_tokens": null,
			"truncation_strategy": {"type": "auto", "last_messages": null},
			"tool_choice": "auto",
			"parallel_tool_calls": true,
			"response_format": "auto"}`)
		keys := slices.DeleteFunc(slices.Clone(knobKeys), func(k string) bool { return k == "tools" })
		if diff := cmp.Diff(wantRun, any(pick(t, run.RawJSON(), keys...))); diff != "" {
			t.Errorf("run knobs (-want +got):\n%s", diff)
		}
		var names []string
		for _, tool := range run.Tools {
			names = append(names, tool.Function.Name)
		}
		if diff := cmp.Diff([]string{"get_weather", "get_time"}, names); diff != "" {
			t.Errorf("run tools (-want +got):\n%s", diff)
		}
		if done := waitRun(t, s, thread, run.ID); done.Status != openai.RunStatusCompleted {
			t.Fatalf("run %s: %+v", done.Status, done.LastError)
		}
		reqs := requestsWith(up, "defaults marker")
		if len(reqs) != 1 {
			t.Fatalf("upstream got %d requests for the run, want 1", len(reqs))
		}
		got := upstreamKnobs(t, reqs[0])
		var tools []string
		for _, tool := range reqs[0].Tools {
			tools = append(tools, tool["function"].(map[string]any)["name"].(string))
		}
		delete(got, "tools")
		wantReq := decode(t, `{"model": "fake-model", "tool_choice": "auto", "parallel_tool_calls": true, "temperature": 0.5,
			"top_p": null, "max_completion_tokens": null, "response_format": null, "stream": true}`)
		if diff := cmp.Diff(wantReq, any(got)); diff != "" {
			t.Errorf("upstream request (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"get_weather", "get_time"}, tools); diff != "" {
			t.Errorf("upstream tools (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"system: Assistant instructions.", "user: defaults marker"}, chatTurns(reqs[0])); diff != "" {
			t.Errorf("upstream messages (-want +got):\n%s", diff)
		}
	})

	t.Run("json_schema, required tool, zero temperature", func(t *testing.T) {
		thread := threadWith(t, s, "schema marker")
		run, err := s.Client.Beta.Threads.Runs.New(ctx, thread, openai.BetaThreadRunNewParams{
			AssistantID: asst,
			Include:     []openai.RunStepInclude{openai.RunStepIncludeStepDetailsToolCallsFileSearchResultsContent},
			Temperature: openai.Float(0),
			TopP:        openai.Float(1),
			ToolChoice:  openai.AssistantToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
			ResponseFormat: openai.AssistantResponseFormatOptionUnionParam{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "answer", Description: openai.String("The answer"),
					Strict: openai.Bool(true), Schema: map[string]any{"type": "object", "properties": map[string]any{"a": map[string]any{"type": "string"}},
						"required": []string{"a"}, "additionalProperties": false}}}},
		})
		if err != nil {
			t.Fatalf("create run: %v", err)
		}
		schema := `{"type": "json_schema", "json_schema": {"name": "answer", "description": "The answer", "strict": true,
			"schema": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": false}}}`
		wantRun := decode(t, `{"temperature": 0, "top_p": 1, "tool_choice": "required", "response_format": `+schema+`}`)
		if diff := cmp.Diff(wantRun, any(pick(t, run.RawJSON(), "temperature", "top_p", "tool_choice", "response_format"))); diff != "" {
			t.Errorf("run knobs (-want +got):\n%s", diff)
		}
		if done := waitRun(t, s, thread, run.ID); done.Status != openai.RunStatusCompleted {
			t.Fatalf("run %s: %+v", done.Status, done.LastError)
		}
		reqs := requestsWith(up, "schema marker")
		if len(reqs) != 1 {
			t.Fatalf("upstream got %d requests for the run, want 1", len(reqs))
		}
		got := pick(t, string(mustJSON(t, reqs[0])), "temperature", "top_p", "tool_choice", "response_format")
		if diff := cmp.Diff(wantRun, any(got)); diff != "" {
			t.Errorf("upstream request (-want +got):\n%s", diff)
		}
	})

	t.Run("bad knobs", func(t *testing.T) {
		thread := threadWith(t, s, "never run")
		path := "/v1/threads/" + thread + "/runs"
		tools21 := `[{"type":"function","function":{"name":"f0"}},{"type":"function","function":{"name":"f1"}},{"type":"function","function":{"name":"f2"}},{"type":"function","function":{"name":"f3"}},{"type":"function","function":{"name":"f4"}},{"type":"function","function":{"name":"f5"}},{"type":"function","function":{"name":"f6"}},{"type":"function","function":{"name":"f7"}},{"type":"function","function":{"name":"f8"}},{"type":"function","function":{"name":"f9"}},{"type":"function","function":{"name":"f10"}},{"type":"function","function":{"name":"f11"}},{"type":"function","function":{"name":"f12"}},{"type":"function","function":{"name":"f13"}},{"type":"function","function":{"name":"f14"}},{"type":"function","function":{"name":"f15"}},{"type":"function","function":{"name":"f16"}},{"type":"function","function":{"name":"f17"}},{"type":"function","function":{"name":"f18"}},{"type":"function","function":{"name":"f19"}},{"type":"function","function":{"name":"f20"}}]`
		tests := []struct {
			name, body, param, message string
		}{
			{"no assistant", `{}`, "assistant_id", "assistant_id"},
			{"temperature", `{"assistant_id":"` + asst + `","temperature":2.5}`, "temperature", ""},
			{"top_p", `{"assistant_id":"` + asst + `","top_p":1.5}`, "top_p", ""},
			{"max_prompt_tokens", `{"assistant_id":"` + asst + `","max_prompt_tokens":100}`, "max_prompt_tokens", "256"},
			{"max_completion_tokens", `{"assistant_id":"` + asst + `","max_completion_tokens":255}`, "max_completion_tokens", "256"},
			{"truncation type", `{"assistant_id":"` + asst + `","truncation_strategy":{"type":"middle"}}`, "truncation_strategy.type", "middle"},
			{"truncation count", `{"assistant_id":"` + asst + `","truncation_strategy":{"type":"last_messages"}}`, "truncation_strategy.last_messages", ""},
			{"tool_choice value", `{"assistant_id":"` + asst + `","tool_choice":"sometimes"}`, "tool_choice", "sometimes"},
			{"tool_choice function", `{"assistant_id":"` + asst + `","tool_choice":{"type":"function","function":{"name":"nope"}}}`, "tool_choice.function.name", "nope"},
			{"response_format", `{"assistant_id":"` + asst + `","response_format":{"type":"yaml"}}`, "response_format.type", "yaml"},
			{"tools", `{"assistant_id":"` + asst + `","tools":[{"type":"browser"}]}`, "tools[0].type", "browser"},
			{"model", `{"assistant_id":"` + asst + `","model":""}`, "model", ""},
			{"21 tools", `{"assistant_id":"` + asst + `","tools":` + tools21 + `}`, "tools", ""},
			{"additional message role", `{"assistant_id":"` + asst + `","additional_messages":[{"role":"system","content":"x"}]}`, "additional_messages[0].role", "system"},
			{"additional message content", `{"assistant_id":"` + asst + `","additional_messages":[{"role":"user","content":[]}]}`, "additional_messages[0].content", ""},
			{"metadata", `{"assistant_id":"` + asst + `","metadata":{"k":1}}`, "metadata", "'metadata'"},
			{"temperature type", `{"assistant_id":"` + asst + `","temperature":"hot"}`, "temperature", "'temperature'"},
		}
		for _, tc := range tests {
			res := s.doJSON(t, "POST", path, tc.body)
			wantBad(t, tc.name, res, http.StatusBadRequest, tc.param, tc.message)
		}
		res := s.doJSON(t, "POST", path+"?include[]=step_details.everything", `{"assistant_id":"`+asst+`"}`)
		wantBad(t, "include", res, http.StatusBadRequest, "include", "step_details.everything")
		res = s.doJSON(t, "POST", "/v1/threads/runs", `{"assistant_id":"`+asst+`","max_completion_tokens":"many"}`)
		wantBad(t, "thread and run type", res, http.StatusBadRequest, "max_completion_tokens", "'max_completion_tokens'")
		res = s.doJSON(t, "POST", path, `{"assistant_id":"asst_doesnotexist"}`)
		wantBad(t, "unknown assistant", res, http.StatusNotFound, "", "asst_doesnotexist")
		res = s.doJSON(t, "POST", "/v1/threads/thread_doesnotexist/runs", `{"assistant_id":"`+asst+`"}`)
		wantBad(t, "unknown thread", res, http.StatusNotFound, "", "thread_doesnotexist")
		// Nothing was created by the refused requests.
		page, err := s.Client.Beta.Threads.Runs.List(ctx, thread, openai.BetaThreadRunListParams{})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) != 0 {
			t.Errorf("refused requests created %d runs", len(page.Data))
		}
		if msgs := runMessages(t, s, thread); len(msgs) != 1 {
			t.Errorf("refused requests left %d messages, want 1", len(msgs))
		}
	})
}

// wantBad asserts an error response's status, param (when set) and that
// its message contains message.
func wantBad(t testing.TB, name string, res rawResponse, status int, param, message string) {
	t.Helper()
	var body struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
		} `json:"error"`
	}
	if err := json.Unmarshal(res.Body, &body); err != nil {
		t.Errorf("%s: body %s: %v", name, truncate(res.Body, 300), err)
		return
	}
	gotParam := ""
	if body.Error.Param != nil {
		gotParam = *body.Error.Param
	}
	if res.Status != status || (param != "" && gotParam != param) || body.Error.Message == "" ||
		!strings.Contains(body.Error.Message, message) || body.Error.Type != "invalid_request_error" {
		t.Errorf("%s: got %d param %q type %q message %q; want %d param %q, message containing %q", name, res.Status, gotParam,
			body.Error.Type, body.Error.Message, status, param, message)
	}
}

func TestRunConversation(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := context.Background()
	asst := newAssistant(t, s)

	t.Run("two turns", func(t *testing.T) {
		t.Parallel()
		thread := threadWith(t, s, "My name is Ada.")
		run1 := startRun(t, s, thread, asst)
		if r := waitRun(t, s, thread, run1.ID); r.Status != openai.RunStatusCompleted {
			t.Fatalf("turn 1: %s %+v", r.Status, r.LastError)
		}
		addMessage(t, s, thread, "[[recall]] What did I say first?")
		run2 := startRun(t, s, thread, asst)
		if r := waitRun(t, s, thread, run2.ID); r.Status != openai.RunStatusCompleted {
			t.Fatalf("turn 2: %s %+v", r.Status, r.LastError)
		}
		if got, want := lastAssistantText(t, s, thread), "Earlier you said: My name is Ada."; got != want {
			t.Errorf("turn 2 answer %q, want %q", got, want)
		}
		reqs := requestsWith(up, "What did I say first?")
		if len(reqs) != 1 {
			t.Fatalf("upstream got %d requests for turn 2, want 1", len(reqs))
		}
		want := []string{"system: Be brief.", "user: My name is Ada.", "assistant: You said: My name is Ada.",
			"user: [[recall]] What did I say first?"}
		if diff := cmp.Diff(want, chatTurns(reqs[0])); diff != "" {
			t.Errorf("turn 2 history (-want +got):\n%s", diff)
		}
		// Each assistant message names its run and assistant.
		msgs := runMessages(t, s, thread)
		if len(msgs) != 4 {
			t.Fatalf("%d messages, want 4", len(msgs))
		}
		for i, runID := range map[int]string{1: run1.ID, 3: run2.ID} {
			m := msgs[i]
			if m.Role != "assistant" || m.RunID != runID || m.AssistantID != asst || m.Status != "completed" || m.CompletedAt == 0 {
				t.Errorf("message %d: role %s run %s assistant %s status %s completed_at %d; want assistant of %s, completed",
					i, m.Role, m.RunID, m.AssistantID, m.Status, m.CompletedAt, runID)
			}
		}
		// List, retrieve and modify runs.
		page, err := s.Client.Beta.Threads.Runs.List(ctx, thread, openai.BetaThreadRunListParams{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range page.Data {
			ids = append(ids, r.ID)
		}
		if diff := cmp.Diff([]string{run2.ID, run1.ID}, ids); diff != "" {
			t.Errorf("run list, newest first (-want +got):\n%s", diff)
		}
		page, err = s.Client.Beta.Threads.Runs.List(ctx, thread, openai.BetaThreadRunListParams{Limit: openai.Int(1),
			Order: openai.BetaThreadRunListParamsOrderAsc, After: openai.String(run1.ID)})
		if err != nil || len(page.Data) != 1 || page.Data[0].ID != run2.ID || page.HasMore {
			t.Errorf("run list after %s: %v %+v", run1.ID, err, page)
		}
		upd, err := s.Client.Beta.Threads.Runs.Update(ctx, thread, run1.ID, openai.BetaThreadRunUpdateParams{Metadata: shared.Metadata{"rating": "good"}})
		if err != nil {
			t.Fatal(err)
		}
		if upd.Metadata["rating"] != "good" || upd.Status != openai.RunStatusCompleted {
			t.Errorf("modified run: metadata %v status %s", upd.Metadata, upd.Status)
		}
		got, err := s.Client.Beta.Threads.Runs.Get(ctx, thread, run1.ID)
		if err != nil || got.Metadata["rating"] != "good" {
			t.Errorf("run after modify: %v %v", err, got)
		}
		// Steps: one message_creation step naming the answer.
		steps := runSteps(t, s, thread, run2.ID)
		if len(steps) != 1 || steps[0].Type != "message_creation" || steps[0].Status != "completed" ||
			steps[0].StepDetails.MessageCreation.MessageID != msgs[3].ID || steps[0].RunID != run2.ID || steps[0].AssistantID != asst {
			t.Errorf("steps of turn 2: %+v", steps)
		} else {
			st, err := s.Client.Beta.Threads.Runs.Steps.Get(ctx, thread, run2.ID, steps[0].ID, openai.BetaThreadRunStepGetParams{
				Include: []openai.RunStepInclude{openai.RunStepIncludeStepDetailsToolCallsFileSearchResultsContent}})
			if err != nil || st.ID != steps[0].ID || st.CompletedAt == 0 {
				t.Errorf("get step: %v %+v", err, st)
			}
		}
	})

	t.Run("create thread and run", func(t *testing.T) {
		t.Parallel()
		run, err := s.Client.Beta.Threads.NewAndRun(ctx, openai.BetaThreadNewAndRunParams{
			AssistantID: asst,
			Thread: openai.BetaThreadNewAndRunParamsThread{
				Messages: []openai.BetaThreadNewAndRunParamsThreadMessage{{Role: "user",
					Content: openai.BetaThreadNewAndRunParamsThreadMessageContentUnion{OfString: openai.String("new thread marker")}}},
				Metadata: shared.Metadata{"via": "createAndRun"},
			},
			Instructions: openai.String("Thread-and-run instructions."),
			Metadata:     shared.Metadata{"run": "1"},
		})
		if err != nil {
			t.Fatalf("create thread and run: %v", err)
		}
		if run.Status != openai.RunStatusQueued || !strings.HasPrefix(run.ThreadID, "thread_") || run.Metadata["run"] != "1" ||
			run.Instructions != "Thread-and-run instructions." {
			t.Errorf("created run: %s", run.RawJSON())
		}
		th, err := s.Client.Beta.Threads.Get(ctx, run.ThreadID)
		if err != nil || th.Metadata["via"] != "createAndRun" {
			t.Errorf("new thread: %v %+v", err, th)
		}
		if r := waitRun(t, s, run.ThreadID, run.ID); r.Status != openai.RunStatusCompleted {
			t.Fatalf("run %s %+v", r.Status, r.LastError)
		}
		if got := lastAssistantText(t, s, run.ThreadID); got != "You said: new thread marker" {
			t.Errorf("answer %q", got)
		}
		reqs := requestsWith(up, "new thread marker")
		if len(reqs) != 1 || reqs[0].Messages[0].Text() != "Thread-and-run instructions." {
			t.Errorf("upstream requests %+v", reqs)
		}
	})
}

var callID = regexp.MustCompile(`^call_[A-Za-z0-9]+$`)

// requiredCalls summarises a run's required_action as "name(args)".
func requiredCalls(t testing.TB, run *openai.Run) ([]string, []string) {
	t.Helper()
	if run.Status != openai.RunStatusRequiresAction || run.RequiredAction.Type != "submit_tool_outputs" {
		t.Fatalf("run %s, required_action %s; want requires_action", run.Status, run.RequiredAction.RawJSON())
	}
	var calls, ids []string
	for _, c := range run.RequiredAction.SubmitToolOutputs.ToolCalls {
		calls = append(calls, c.Function.Name+"("+c.Function.Arguments+")")
		ids = append(ids, c.ID)
		if !callID.MatchString(c.ID) || c.Type != "function" {
			t.Errorf("tool call id %q type %q; want call_… function", c.ID, c.Type)
		}
	}
	return calls, ids
}

func outputs(ids []string, outs ...string) openai.BetaThreadRunSubmitToolOutputsParams {
	var p openai.BetaThreadRunSubmitToolOutputsParams
	for i, id := range ids {
		p.ToolOutputs = append(p.ToolOutputs, openai.BetaThreadRunSubmitToolOutputsParamsToolOutput{
			ToolCallID: openai.String(id), Output: openai.String(outs[i])})
	}
	return p
}

func TestRunFunctionCalls(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := context.Background()
	asst := newAssistant(t, s)

	tests := []struct {
		name, text string
		want       []string // calls as name(args)
	}{
		{"one call", `weather one [[call get_weather {"city":"Paris","units":"metric"}]]`,
			[]string{`get_weather({"city":"Paris","units":"metric"})`}},
		{"two parallel calls", `weather two [[call get_weather {"city":"Oslo"}]] [[call get_time {"tz":"Europe/Oslo"}]]`,
			[]string{`get_weather({"city":"Oslo"})`, `get_time({"tz":"Europe/Oslo"})`}},
		{"ollama quirk", `weather ollama [[quirk ollama]] [[call get_weather {"city":"Rome"}]] [[call get_time {"tz":"CET"}]]`,
			[]string{`get_weather({"city":"Rome"})`, `get_time({"tz":"CET"})`}},
		{"noindex quirk", `weather noindex [[quirk noindex]] [[call get_weather {"city":"Lima, Peru"}]] [[call get_time {"tz":"America/Lima"}]]`,
			[]string{`get_weather({"city":"Lima, Peru"})`, `get_time({"tz":"America/Lima"})`}},
		{"no arguments", `weather empty [[call get_time]]`, []string{`get_time({})`}},
	}
	var mu sync.Mutex
	allIDs := map[string]string{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			thread := threadWith(t, s, tc.text)
			run := startRun(t, s, thread, asst)
			run = waitRun(t, s, thread, run.ID, openai.RunStatusRequiresAction)
			calls, ids := requiredCalls(t, run)
			if diff := cmp.Diff(tc.want, calls); diff != "" {
				t.Fatalf("required calls (-want +got):\n%s", diff)
			}
			mu.Lock()
			for _, id := range ids {
				if other, dup := allIDs[id]; dup {
					t.Errorf("call id %s used twice (also in %s)", id, other)
				}
				allIDs[id] = tc.name
			}
			mu.Unlock()
			if run.ExpiresAt == 0 || run.StartedAt == 0 || run.Usage.TotalTokens != 0 {
				t.Errorf("waiting run: expires_at %d started_at %d usage %s", run.ExpiresAt, run.StartedAt, run.Usage.RawJSON())
			}
			// The tool step waits with the calls and null outputs.
			steps := runSteps(t, s, thread, run.ID)
			if len(steps) != 1 || steps[0].Type != "tool_calls" || steps[0].Status != "in_progress" {
				t.Fatalf("steps while waiting: %+v", steps)
			}
			var stepCalls []string
			for _, c := range steps[0].StepDetails.ToolCalls {
				if c.Function.JSON.Output.Valid() {
					t.Errorf("call %s has output %q before submission", c.ID, c.Function.Output)
				}
				stepCalls = append(stepCalls, c.ID+" "+c.Function.Name+"("+c.Function.Arguments+")")
			}
			var wantStep []string
			for i, c := range calls {
				wantStep = append(wantStep, ids[i]+" "+c)
			}
			if diff := cmp.Diff(wantStep, stepCalls); diff != "" {
				t.Errorf("step tool calls (-want +got):\n%s", diff)
			}

			outs := make([]string, len(ids))
			for i := range ids {
				outs[i] = tc.name + " output " + string(rune('A'+i))
			}
			sub, err := s.Client.Beta.Threads.Runs.SubmitToolOutputs(ctx, thread, run.ID, outputs(ids, outs...))
			if err != nil {
				t.Fatalf("submit: %v", err)
			}
			if sub.Status != openai.RunStatusQueued || sub.RequiredAction.Type != "" {
				t.Errorf("after submit: status %s required_action %s", sub.Status, sub.RequiredAction.RawJSON())
			}
			done := waitRun(t, s, thread, run.ID)
			if done.Status != openai.RunStatusCompleted {
				t.Fatalf("run %s %+v", done.Status, done.LastError)
			}
			if got, want := lastAssistantText(t, s, thread), "Tool results: "+strings.Join(outs, "; "); got != want {
				t.Errorf("answer %q, want %q", got, want)
			}
			// The second upstream request replays the calls and outputs.
			reqs := requestsWith(up, tc.text)
			if len(reqs) != 2 {
				t.Fatalf("upstream got %d requests, want 2", len(reqs))
			}
			var assistantCalls []string
			for i, c := range calls {
				assistantCalls = append(assistantCalls, c+"#"+ids[i])
			}
			want := []string{"system: Be brief.", "user: " + tc.text, "assistant: " + strings.Join(assistantCalls, " ")}
			for i, id := range ids {
				want = append(want, "tool["+id+"]: "+outs[i])
			}
			if diff := cmp.Diff(want, chatTurns(reqs[1])); diff != "" {
				t.Errorf("second request (-want +got):\n%s", diff)
			}
			// Steps: the tool step completed with outputs, then the answer.
			steps = runSteps(t, s, thread, run.ID)
			if len(steps) != 2 || steps[0].Status != "completed" || steps[1].Type != "message_creation" || steps[1].Status != "completed" {
				t.Fatalf("steps after the run: %+v", steps)
			}
			for i, c := range steps[0].StepDetails.ToolCalls {
				if c.Function.Output != outs[i] {
					t.Errorf("call %s output %q, want %q", c.ID, c.Function.Output, outs[i])
				}
			}
			// A later run replays the whole first run: the calls with their
			// outputs, then the answer.
			next := "follow-up to " + tc.name
			addMessage(t, s, thread, next)
			if r := waitRun(t, s, thread, startRun(t, s, thread, asst).ID); r.Status != openai.RunStatusCompleted {
				t.Fatalf("follow-up run %s", r.Status)
			}
			reqs = requestsWith(up, next)
			if len(reqs) != 1 {
				t.Fatalf("upstream got %d follow-up requests", len(reqs))
			}
			want = append(want, "assistant: Tool results: "+strings.Join(outs, "; "), "user: "+next)
			if diff := cmp.Diff(want, chatTurns(reqs[0])); diff != "" {
				t.Errorf("follow-up request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunRequestErrors(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	ctx := context.Background()
	asst := newAssistant(t, s)
	thread := threadWith(t, s, `two calls [[call get_weather {"city":"Bern"}]] [[call get_time {"tz":"CET"}]]`)
	run := startRun(t, s, thread, asst)
	run = waitRun(t, s, thread, run.ID, openai.RunStatusRequiresAction)
	_, ids := requiredCalls(t, run)
	if len(ids) != 2 {
		t.Fatalf("%d calls, want 2", len(ids))
	}
	runs := s.Client.Beta.Threads.Runs

	// A waiting run is not terminal: polling clients are told when to come back.
	res := s.doJSON(t, "GET", "/v1/threads/"+thread+"/runs/"+run.ID, "")
	if v := res.Header.Get("Openai-Poll-After-Ms"); v == "" {
		t.Errorf("GET of a requires_action run: no openai-poll-after-ms header")
	}

	wantErr := func(name string, err error, status int, message string) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", name)
			return
		}
		ae := apiError(t, err)
		if ae.StatusCode != status || !strings.Contains(ae.Message, message) {
			t.Errorf("%s: %d %q, want %d with %q", name, ae.StatusCode, ae.Message, status, message)
		}
	}
	_, err := runs.SubmitToolOutputs(ctx, thread, run.ID, openai.BetaThreadRunSubmitToolOutputsParams{
		ToolOutputs: []openai.BetaThreadRunSubmitToolOutputsParamsToolOutput{}})
	wantErr("no outputs", err, 400, "Expected tool outputs for call_ids")
	_, err = runs.SubmitToolOutputs(ctx, thread, run.ID, outputs(ids[:1], "only one"))
	wantErr("partial outputs", err, 400, "Expected tool outputs for call_ids")
	_, err = runs.SubmitToolOutputs(ctx, thread, run.ID, outputs([]string{ids[0], "call_unknown"}, "a", "b"))
	wantErr("unknown call id", err, 400, "Expected tool outputs for call_ids")
	_, err = runs.SubmitToolOutputs(ctx, thread, run.ID, outputs([]string{ids[0], ids[1], ids[1]}, "a", "b", "c"))
	wantErr("duplicate call id", err, 400, ids[1])
	_, err = s.Client.Beta.Threads.Messages.New(ctx, thread, textMessage("interrupting"))
	wantErr("message during active run", err, 400, "Can't add messages to "+thread)
	_, err = runs.New(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst,
		AdditionalMessages: []openai.BetaThreadRunNewParamsAdditionalMessage{{Role: "user",
			Content: openai.BetaThreadRunNewParamsAdditionalMessageContentUnion{OfString: openai.String("refused with its run")}}}})
	wantErr("second run", err, 400, "already has an active run "+run.ID)
	// The refused requests changed nothing: the run still waits, and the
	// refused run's additional message was not added.
	if r, err := runs.Get(ctx, thread, run.ID); err != nil || r.Status != openai.RunStatusRequiresAction {
		t.Fatalf("run after refused requests: %v %v", err, r.Status)
	}
	if msgs := runMessages(t, s, thread); len(msgs) != 1 {
		t.Errorf("%d messages after refused requests, want 1", len(msgs))
	}

	if _, err := runs.SubmitToolOutputs(ctx, thread, run.ID, outputs(ids, "sunny", "noon")); err != nil {
		t.Fatalf("submit: %v", err)
	}
	if r := waitRun(t, s, thread, run.ID); r.Status != openai.RunStatusCompleted {
		t.Fatalf("run %s %+v", r.Status, r.LastError)
	}
	res = s.doJSON(t, "GET", "/v1/threads/"+thread+"/runs/"+run.ID, "")
	if v := res.Header.Get("Openai-Poll-After-Ms"); v != "" {
		t.Errorf("GET of a completed run: openai-poll-after-ms %q, want none", v)
	}
	_, err = runs.SubmitToolOutputs(ctx, thread, run.ID, outputs(ids, "again", "again"))
	wantErr("submit on a completed run", err, 400, "")
	_, err = runs.Cancel(ctx, thread, run.ID)
	wantErr("cancel a completed run", err, 400, "Cannot cancel run with status 'completed'.")

	_, err = runs.Get(ctx, thread, "run_doesnotexist")
	wantErr("get unknown run", err, 404, "run_doesnotexist")
	_, err = runs.Cancel(ctx, thread, "run_doesnotexist")
	wantErr("cancel unknown run", err, 404, "run_doesnotexist")
	_, err = runs.SubmitToolOutputs(ctx, thread, "run_doesnotexist", outputs(ids, "a", "b"))
	wantErr("submit to unknown run", err, 404, "run_doesnotexist")
	_, err = runs.Steps.List(ctx, thread, "run_doesnotexist", openai.BetaThreadRunStepListParams{})
	wantErr("steps of unknown run", err, 404, "run_doesnotexist")
	_, err = runs.Steps.Get(ctx, thread, run.ID, "step_doesnotexist", openai.BetaThreadRunStepGetParams{})
	wantErr("unknown step", err, 404, "step_doesnotexist")
	other := threadWith(t, s)
	_, err = runs.Get(ctx, other, run.ID)
	wantErr("run of another thread", err, 404, run.ID)
	_, err = runs.Update(ctx, other, run.ID, openai.BetaThreadRunUpdateParams{Metadata: shared.Metadata{"a": "b"}})
	wantErr("modify run of another thread", err, 404, run.ID)
	_, err = runs.List(ctx, "thread_doesnotexist", openai.BetaThreadRunListParams{})
	wantErr("runs of unknown thread", err, 404, "thread_doesnotexist")
	res = s.doJSON(t, "GET", "/v1/threads/"+thread+"/runs/"+run.ID+"/steps?include[]=bogus", "")
	wantBad(t, "bad include", res, 400, "include", "bogus")
	// A message may be added again once the run has ended.
	if _, err := s.Client.Beta.Threads.Messages.New(ctx, thread, textMessage("after the run")); err != nil {
		t.Errorf("message after the run: %v", err)
	}
}

func TestModels(t *testing.T) {
	t.Parallel()
	t.Run("pattern", func(t *testing.T) {
		t.Parallel()
		s, _ := startRunServer(t)
		page, err := s.Client.Models.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.ID)
		}
		// "*" serves what the upstream lists.
		if diff := cmp.Diff([]string{"fake-model", "fake-model-2"}, ids); diff != "" {
			t.Errorf("models (-want +got):\n%s", diff)
		}
	})
	t.Run("named", func(t *testing.T) {
		t.Parallel()
		s, _ := startRunServer(t, "--upstream-models", "fake-model")
		page, err := s.Client.Models.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) != 1 || page.Data[0].ID != "fake-model" || page.Data[0].Object != "model" {
			t.Errorf("models: %s", page.RawJSON())
		}
		// A run on a model no provider serves fails with a clear reason.
		asst := newAssistant(t, s, openai.BetaAssistantNewParams{Model: "other-model"})
		thread := threadWith(t, s, "hello")
		run := waitRun(t, s, thread, startRun(t, s, thread, asst).ID, openai.RunStatusFailed)
		if run.LastError.Code == "" || !strings.Contains(run.LastError.Message, "other-model") || run.FailedAt == 0 {
			t.Errorf("failed run: last_error %s failed_at %d", run.LastError.RawJSON(), run.FailedAt)
		}
	})
}

func TestRunProviders(t *testing.T) {
	t.Parallel()
	// A providers file routes llama3.1 to a second upstream, called without
	// streaming; everything else goes to the default upstream.
	local := upstream.New()
	localSrv := httptest.NewServer(local)
	t.Cleanup(localSrv.Close)
	file := filepath.Join(t.TempDir(), "providers.yaml")
	yaml := "providers:\n  - name: local\n    base_url: " + localSrv.URL + "/v1\n    models: [\"llama3.1\"]\n    no_stream: true\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s, def := startRunServer(t, "--providers", file)
	ctx := context.Background()

	page, err := s.Client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var models []string
	for _, m := range page.Data {
		models = append(models, m.ID+" "+m.OwnedBy)
	}
	if diff := cmp.Diff([]string{"fake-model default", "fake-model-2 default", "llama3.1 local"}, models); diff != "" {
		t.Errorf("models (-want +got):\n%s", diff)
	}

	llama := newAssistant(t, s, openai.BetaAssistantNewParams{Model: "llama3.1", Tools: []openai.AssistantToolUnionParam{weatherTool, timeTool}})
	text := `local tools [[call get_weather {"city":"Oslo"}]] [[call get_time {"tz":"CET"}]]`
	thread := threadWith(t, s, text)
	run := waitRun(t, s, thread, startRun(t, s, thread, llama).ID, openai.RunStatusRequiresAction)
	calls, ids := requiredCalls(t, run)
	if diff := cmp.Diff([]string{`get_weather({"city":"Oslo"})`, `get_time({"tz":"CET"})`}, calls); diff != "" {
		t.Fatalf("calls (-want +got):\n%s", diff)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 2 {
		t.Errorf("call ids %v are not unique", ids)
	}
	if _, err := s.Client.Beta.Threads.Runs.SubmitToolOutputs(ctx, thread, run.ID, outputs(ids, "mild", "noon")); err != nil {
		t.Fatal(err)
	}
	if r := waitRun(t, s, thread, run.ID); r.Status != openai.RunStatusCompleted {
		t.Fatalf("run %s %s", r.Status, r.LastError.RawJSON())
	}
	if got := lastAssistantText(t, s, thread); got != "Tool results: mild; noon" {
		t.Errorf("answer %q", got)
	}
	reqs := requestsWith(local, "local tools")
	if len(reqs) != 2 || reqs[0].Stream || reqs[1].Stream || reqs[0].Model != "llama3.1" {
		t.Errorf("local upstream requests, want 2 non-streaming ones for llama3.1: %+v", reqs)
	}
	if n := len(requestsWith(def, "local tools")); n != 0 {
		t.Errorf("default upstream got %d of the llama3.1 requests", n)
	}

	// A streamed run on the non-streaming provider still has the canonical
	// event order.
	thread = threadWith(t, s, "local stream")
	evs := streamRun(t, s, thread, llama).all()
	if diff := cmp.Diff(withDone(textRunEvents), eventNames(evs)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got := deltaText(t, evs); got != "You said: local stream" {
		t.Errorf("streamed %q", got)
	}

	// So does a streamed function round trip (whole calls from a plain
	// JSON answer become the step deltas).
	t.Run("streamed function calls", func(t *testing.T) { functionRoundTrip(t, s, local, llama, "") })

	// Other models go to the default upstream, streamed.
	thread = threadWith(t, s, "default route")
	if r := waitRun(t, s, thread, startRun(t, s, thread, newAssistant(t, s)).ID); r.Status != openai.RunStatusCompleted {
		t.Fatalf("run %s", r.Status)
	}
	if reqs := requestsWith(def, "default route"); len(reqs) != 1 || !reqs[0].Stream || len(requestsWith(local, "default route")) != 0 {
		t.Errorf("default route: %d requests", len(reqs))
	}
}
