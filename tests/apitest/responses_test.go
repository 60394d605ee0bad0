package apitest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/conversations"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"
)

// Responses and Conversations through openai-go's services over real
// HTTP, against the scripted upstream. Every JSON body is validated by the
// client middleware (Response, ResponseItemList, Conversation* schemas);
// every stream event against ResponseStreamEvent here.

func textParams(text string) responses.ResponseNewParams {
	return responses.ResponseNewParams{Model: "fake-model", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(text)}}
}

// outputText joins the text of a response's output messages.
func outputText(r *responses.Response) string {
	var b strings.Builder
	for _, it := range r.Output {
		if it.Type != "message" {
			continue
		}
		for _, c := range it.Content {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

// checkEvents validates every stream event against the spec's
// ResponseStreamEvent schema and checks that sequence numbers strictly
// increase, and returns the events' types.
func checkEvents(t *testing.T, evs []responses.ResponseStreamEventUnion) []string {
	t.Helper()
	var types []string
	last := int64(-1)
	for _, ev := range evs {
		if err := validateJSON("ResponseStreamEvent", []byte(ev.RawJSON())); err != nil {
			t.Errorf("event %s: %v\n%s", ev.Type, err, ev.RawJSON())
		}
		if ev.SequenceNumber <= last {
			t.Errorf("event %s: sequence_number %d after %d", ev.Type, ev.SequenceNumber, last)
		}
		last = ev.SequenceNumber
		types = append(types, ev.Type)
	}
	return types
}

func readStream(t *testing.T, s interface {
	Next() bool
	Current() responses.ResponseStreamEventUnion
	Err() error
}) []responses.ResponseStreamEventUnion {
	t.Helper()
	var evs []responses.ResponseStreamEventUnion
	for s.Next() {
		evs = append(evs, s.Current())
	}
	if err := s.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	return evs
}

func respErr(t *testing.T, err error, status int) *openai.Error {
	t.Helper()
	var ae *openai.Error
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an API error %d", err, status)
	}
	if ae.StatusCode != status {
		t.Fatalf("status = %d, want %d: %s", ae.StatusCode, status, ae.RawJSON())
	}
	return ae
}

func TestResponseText(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := context.Background()
	p := textParams("hello there")
	p.Instructions = openai.String("Be brief.")
	p.Metadata = shared.Metadata{"case": "text"}
	r, err := s.Client.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != "completed" || outputText(r) != "You said: hello there" || r.Instructions.OfString != "Be brief." {
		t.Errorf("response = %s", r.RawJSON())
	}
	if r.Usage.TotalTokens == 0 || r.Usage.TotalTokens != r.Usage.InputTokens+r.Usage.OutputTokens {
		t.Errorf("usage = %+v", r.Usage)
	}
	if r.Metadata["case"] != "text" {
		t.Errorf("metadata = %v", r.Metadata)
	}
	reqs := requestsWith(up, "hello there")
	if len(reqs) != 1 || reqs[0].Messages[0].Role != "system" || reqs[0].Messages[0].Text() != "Be brief." {
		t.Fatalf("upstream requests = %+v", reqs)
	}

	got, err := s.Client.Responses.Get(ctx, r.ID, responses.ResponseGetParams{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != r.ID || outputText(got) != outputText(r) || got.Output[0].ID != r.Output[0].ID {
		t.Errorf("get = %s, want %s", got.RawJSON(), r.RawJSON())
	}
	items, err := s.Client.Responses.InputItems.List(ctx, r.ID, responses.InputItemListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items.Data) != 1 || items.Data[0].Role != "user" || firstText(items.Data[0].RawJSON()) != "hello there" {
		t.Errorf("input items = %s", items.RawJSON())
	}

	if err := s.Client.Responses.Delete(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.Client.Responses.Get(ctx, r.ID, responses.ResponseGetParams{})
	respErr(t, err, http.StatusNotFound)
}

func TestResponseInputItemsPaging(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	ctx := context.Background()
	var input responses.ResponseInputParam
	for _, text := range []string{"one", "two", "three"} {
		input = append(input, responses.ResponseInputItemParamOfMessage(text, responses.EasyInputMessageRoleUser))
	}
	r, err := s.Client.Responses.New(ctx, responses.ResponseNewParams{Model: "fake-model",
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: input}})
	if err != nil {
		t.Fatal(err)
	}
	texts := func(order responses.InputItemListParamsOrder, limit int64, after string) ([]string, bool) {
		p := responses.InputItemListParams{Order: order, Limit: openai.Int(limit)}
		if after != "" {
			p.After = openai.String(after)
		}
		page, err := s.Client.Responses.InputItems.List(ctx, r.ID, p)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, it := range page.Data {
			out = append(out, firstText(it.RawJSON())+"|"+it.ID)
		}
		var raw struct {
			HasMore bool `json:"has_more"`
		}
		_ = json.Unmarshal([]byte(page.RawJSON()), &raw)
		return out, raw.HasMore
	}
	desc, _ := texts("", 10, "")
	if len(desc) != 3 || !strings.HasPrefix(desc[0], "three|") || !strings.HasPrefix(desc[2], "one|") {
		t.Fatalf("default (desc) order = %v", desc)
	}
	first, more := texts(responses.InputItemListParamsOrderAsc, 2, "")
	if len(first) != 2 || !more || !strings.HasPrefix(first[0], "one|") {
		t.Fatalf("asc page 1 = %v more=%v", first, more)
	}
	_, lastID, _ := strings.Cut(first[1], "|")
	rest, more := texts(responses.InputItemListParamsOrderAsc, 2, lastID)
	if len(rest) != 1 || more || !strings.HasPrefix(rest[0], "three|") {
		t.Fatalf("asc page 2 = %v more=%v", rest, more)
	}
}

func TestResponseStream(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	ctx := streamContext(t)
	evs := readStream(t, s.Client.Responses.NewStreaming(ctx, textParams("stream me [[chunks 5]]")))
	types := checkEvents(t, evs)
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
	if len(types) < 9 || !slices.Equal(types[:4], want) {
		t.Fatalf("events = %v", types)
	}
	tail := []string{"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"}
	if !slices.Equal(types[len(types)-4:], tail) {
		t.Fatalf("events end with %v, want %v", types[len(types)-4:], tail)
	}
	var deltas strings.Builder
	for _, ev := range evs {
		if ev.Type == "response.output_text.delta" {
			deltas.WriteString(ev.Delta)
		}
	}
	final := evs[len(evs)-1].Response
	if deltas.String() == "" || deltas.String() != outputText(&final) {
		t.Errorf("deltas %q, final text %q", deltas.String(), outputText(&final))
	}
	stored, err := s.Client.Responses.Get(ctx, final.ID, responses.ResponseGetParams{})
	if err != nil {
		t.Fatal(err)
	}
	if outputText(stored) != outputText(&final) || stored.Output[0].ID != final.Output[0].ID {
		t.Errorf("stored %s, streamed %s", stored.RawJSON(), final.RawJSON())
	}
}

func TestResponseChain(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := context.Background()
	p := textParams("first question")
	p.Instructions = openai.String("Answer like a pirate.")
	r1, err := s.Client.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	p2 := textParams("second question")
	p2.PreviousResponseID = openai.String(r1.ID)
	r2, err := s.Client.Responses.New(ctx, p2)
	if err != nil {
		t.Fatal(err)
	}
	if r2.PreviousResponseID != r1.ID || r2.Instructions.OfString != "" {
		t.Errorf("r2 = %s", r2.RawJSON())
	}
	reqs := requestsWith(up, "second question")
	if len(reqs) != 1 {
		t.Fatalf("%d upstream requests", len(reqs))
	}
	got := chatTurns(reqs[0])
	want := []string{"user: first question", "assistant: You said: first question", "user: second question"}
	if !slices.Equal(got, want) {
		t.Errorf("r2's prompt = %q, want %q (instructions are not inherited)", got, want)
	}
	// A fork: a third response from r1 does not see r2.
	p3 := textParams("fork")
	p3.PreviousResponseID = openai.String(r1.ID)
	if _, err := s.Client.Responses.New(ctx, p3); err != nil {
		t.Fatal(err)
	}
	got = chatTurns(requestsWith(up, "fork")[0])
	want = []string{"user: first question", "assistant: You said: first question", "user: fork"}
	if !slices.Equal(got, want) {
		t.Errorf("fork's prompt = %q, want %q", got, want)
	}
}

func TestResponseStoreFalse(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	ctx := context.Background()
	p := textParams("forget me")
	p.Store = openai.Bool(false)
	r, err := s.Client.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if outputText(r) != "You said: forget me" || !strings.Contains(r.RawJSON(), `"store":false`) {
		t.Errorf("response = %s", r.RawJSON())
	}
	_, err = s.Client.Responses.Get(ctx, r.ID, responses.ResponseGetParams{})
	respErr(t, err, http.StatusNotFound)
	p2 := textParams("again")
	p2.PreviousResponseID = openai.String(r.ID)
	_, err = s.Client.Responses.New(ctx, p2)
	ae := respErr(t, err, http.StatusBadRequest)
	if ae.Code != "previous_response_not_found" || ae.Param != "previous_response_id" {
		t.Errorf("error = %s", ae.RawJSON())
	}
}

func TestResponseErrors(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t, "--upstream-models", "fake-model")
	tests := []struct {
		name, body, param, code, msg string
	}{
		{"unknown model", `{"model":"nope","input":"hi"}`, "model", "model_not_found", "nope"},
		{"missing model", `{"input":"hi"}`, "model", "missing_required_parameter", "model"},
		{"web_search", `{"model":"fake-model","input":"hi","tools":[{"type":"web_search"}]}`, "tools[0].type", "unsupported_value", "web_search"},
		{"mcp", `{"model":"fake-model","input":"hi","tools":[{"type":"function","name":"f"},{"type":"mcp","server_label":"x"}]}`, "tools[1].type", "unsupported_value", "mcp"},
		{"bad role", `{"model":"fake-model","input":[{"role":"robot","content":"hi"}]}`, "input[0].role", "invalid_value", "robot"},
		{"bad part", `{"model":"fake-model","input":[{"role":"user","content":[{"type":"input_audio"}]}]}`, "input[0].content[0].type", "invalid_value", "input_audio"},
		{"bad item", `{"model":"fake-model","input":[{"type":"teleport"}]}`, "input[0].type", "invalid_value", "teleport"},
		{"unknown parameter", `{"model":"fake-model","input":"hi","colour":"red"}`, "colour", "unknown_parameter", "colour"},
		{"previous not found", `{"model":"fake-model","input":"hi","previous_response_id":"resp_nope"}`, "previous_response_id", "previous_response_not_found", "resp_nope"},
		{"previous and conversation", `{"model":"fake-model","input":"hi","previous_response_id":"resp_a","conversation":"conv_b"}`, "conversation", "invalid_value", "previous_response_id"},
		{"orphan output", `{"model":"fake-model","input":[{"type":"function_call_output","call_id":"call_x","output":"1"}]}`, "input", "", "call_x"},
		{"max_output_tokens", `{"model":"fake-model","input":"hi","max_output_tokens":3}`, "max_output_tokens", "integer_below_min_value", "16"},
		{"tool not an object", `{"model":"fake-model","input":"hi","tools":[5]}`, "tools[0]", "invalid_type", "object"},
		{"function name type", `{"model":"fake-model","input":"hi","tools":[{"type":"function","name":5}]}`, "tools[0].name", "invalid_type", "string"},
		{"missing vector store", `{"model":"fake-model","input":"hi","tools":[{"type":"file_search","vector_store_ids":["vs_nope"]}]}`, "tools[0].vector_store_ids[0]", "invalid_value", "vs_nope"},
		{"missing container file", `{"model":"fake-model","input":"hi","tools":[{"type":"code_interpreter","container":{"type":"auto","file_ids":["file-nope"]}}]}`, "tools[0].container.file_ids", "invalid_value", "file-nope"},
		{"metadata value", `{"model":"fake-model","input":"hi","metadata":{"a":1}}`, "metadata", "invalid_type", "metadata"},
		{"reasoning effort type", `{"model":"fake-model","input":"hi","reasoning":{"effort":5}}`, "reasoning.effort", "invalid_type", "string"},
		{"unknown prompt", `{"model":"fake-model","input":"hi","prompt":{"id":"pmpt_1"}}`, "prompt.id", "invalid_value", "pmpt_1"},
		{"no input", `{"model":"fake-model"}`, "input", "missing_required_parameter", "input"},
		{"tool_choice unknown function", `{"model":"fake-model","input":"hi","tool_choice":{"type":"function","name":"f"}}`, "tool_choice.name", "invalid_value", "f"},
		{"background without store", `{"model":"fake-model","input":"hi","background":true,"store":false}`, "background", "invalid_value", "store"},
		{"bad include", `{"model":"fake-model","input":"hi","include":["everything"]}`, "include[0]", "invalid_value", "everything"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := s.do(t, "POST", "/v1/responses", strings.NewReader(tc.body), nil)
			if res.Status != http.StatusBadRequest {
				t.Fatalf("status %d: %s", res.Status, res.Body)
			}
			var e struct {
				Error struct {
					Message string  `json:"message"`
					Param   *string `json:"param"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(res.Body, &e); err != nil {
				t.Fatal(err)
			}
			code := ""
			if e.Error.Code != nil {
				code = *e.Error.Code
			}
			if e.Error.Param == nil || *e.Error.Param != tc.param || code != tc.code || !strings.Contains(e.Error.Message, tc.msg) {
				t.Errorf("error = %s, want param %q code %q mentioning %q", res.Body, tc.param, tc.code, tc.msg)
			}
		})
	}
}

// weatherFn is get_weather in the Responses API's flat function form.
var weatherFn = responses.ToolUnionParam{OfFunction: &responses.FunctionToolParam{Name: "get_weather",
	Parameters: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}

func TestResponseFunctionCalls(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := context.Background()
	p := textParams(`weather please [[call get_weather {"city":"Paris"}]] [[call get_weather {"city":"Rome"}]]`)
	p.Tools = []responses.ToolUnionParam{weatherFn}
	r1, err := s.Client.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Status != "completed" || len(r1.Output) != 2 {
		t.Fatalf("r1 = %s", r1.RawJSON())
	}
	var calls []string
	for _, it := range r1.Output {
		if it.Type != "function_call" || it.Name != "get_weather" || it.CallID == "" || it.ID == it.CallID {
			t.Fatalf("item = %s", it.RawJSON())
		}
		calls = append(calls, it.CallID)
	}
	if r1.Output[0].Arguments.OfString != `{"city":"Paris"}` {
		t.Errorf("arguments = %s", r1.Output[0].RawJSON())
	}
	output := func(callID, out string) responses.ResponseInputItemUnionParam {
		it := responses.ResponseInputItemParamOfFunctionCallOutput(out)
		it.OfFunctionCallOutput.CallID = openai.String(callID)
		return it
	}
	next := func(items ...responses.ResponseInputItemUnionParam) (*responses.Response, error) {
		return s.Client.Responses.New(ctx, responses.ResponseNewParams{Model: "fake-model", PreviousResponseID: openai.String(r1.ID),
			Tools: []responses.ToolUnionParam{weatherFn}, Input: responses.ResponseNewParamsInputUnion{OfInputItemList: items}})
	}
	// One output missing: the other call is named.
	_, err = next(output(calls[0], "sunny"))
	if ae := respErr(t, err, http.StatusBadRequest); ae.Param != "input" || !strings.Contains(ae.Message, "No tool output found for function call "+calls[1]) {
		t.Errorf("error = %s", ae.RawJSON())
	}
	// An output without its call.
	_, err = next(output(calls[0], "sunny"), output(calls[1], "rain"), output("call_stray", "?"))
	if ae := respErr(t, err, http.StatusBadRequest); ae.Param != "input" || !strings.Contains(ae.Message, "call_id call_stray") {
		t.Errorf("error = %s", ae.RawJSON())
	}
	r2, err := next(output(calls[0], "sunny"), output(calls[1], "rain"))
	if err != nil {
		t.Fatal(err)
	}
	if outputText(r2) != "Tool results: sunny; rain" {
		t.Errorf("r2 = %s", r2.RawJSON())
	}
	reqs := up.Requests()
	last := reqs[len(reqs)-1]
	var toolMsgs []string
	for _, m := range last.Messages {
		if m.Role == "assistant" && len(m.ToolCalls) == 2 {
			toolMsgs = append(toolMsgs, "calls:"+m.ToolCalls[0].ID+","+m.ToolCalls[1].ID)
		}
		if m.Role == "tool" {
			toolMsgs = append(toolMsgs, m.ToolCallID+"="+m.Text())
		}
	}
	want := []string{"calls:" + calls[0] + "," + calls[1], calls[0] + "=sunny", calls[1] + "=rain"}
	if !slices.Equal(toolMsgs, want) {
		t.Errorf("replayed tool round = %q, want %q", toolMsgs, want)
	}
}

func TestResponseFunctionStream(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	p := textParams(`stream a call [[call get_weather {"city":"Oslo"}]]`)
	p.Tools = []responses.ToolUnionParam{weatherFn}
	evs := readStream(t, s.Client.Responses.NewStreaming(streamContext(t), p))
	types := checkEvents(t, evs)
	for _, want := range []string{"response.output_item.added", "response.function_call_arguments.delta",
		"response.function_call_arguments.done", "response.output_item.done", "response.completed"} {
		if !slices.Contains(types, want) {
			t.Errorf("events %v lack %s", types, want)
		}
	}
	var args string
	for _, ev := range evs {
		if ev.Type == "response.function_call_arguments.delta" {
			args += ev.Delta
		}
	}
	final := evs[len(evs)-1].Response
	if args != `{"city":"Oslo"}` || final.Output[0].Arguments.OfString != args {
		t.Errorf("arguments streamed %q, final %s", args, final.RawJSON())
	}
}

func TestConversations(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := context.Background()
	conv, err := s.Client.Conversations.New(ctx, conversations.ConversationNewParams{
		Metadata: shared.Metadata{"topic": "demo"},
		Items:    []responses.ResponseInputItemUnionParam{responses.ResponseInputItemParamOfMessage("my name is Ada", responses.EasyInputMessageRoleUser)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Client.Conversations.Get(ctx, conv.ID); err != nil || !strings.Contains(got.RawJSON(), `"topic":"demo"`) {
		t.Fatalf("get = %v, %v", got, err)
	}
	if got, err := s.Client.Conversations.Update(ctx, conv.ID, conversations.ConversationUpdateParams{Metadata: shared.Metadata{"topic": "renamed"}}); err != nil || !strings.Contains(got.RawJSON(), `"topic":"renamed"`) {
		t.Fatalf("update = %v, %v", got, err)
	}
	ask := func(text string) *responses.Response {
		p := textParams(text)
		p.Conversation = responses.ResponseNewParamsConversationUnion{OfString: openai.String(conv.ID)}
		r, err := s.Client.Responses.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1 := ask("hello")
	if r1.Conversation.ID != conv.ID {
		t.Errorf("r1.conversation = %s", r1.RawJSON())
	}
	ask("and again")
	got := chatTurns(requestsWith(up, "and again")[0])
	want := []string{"user: my name is Ada", "user: hello", "assistant: You said: hello", "user: and again"}
	if !slices.Equal(got, want) {
		t.Errorf("prompt = %q, want %q", got, want)
	}
	page, err := s.Client.Conversations.Items.List(ctx, conv.ID, conversations.ItemListParams{Order: conversations.ItemListParamsOrderAsc})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 5 || page.Data[2].ID != r1.Output[0].ID {
		t.Fatalf("items = %s", page.RawJSON())
	}
	// Adding items, fetching and deleting one.
	added, err := s.Client.Conversations.Items.New(ctx, conv.ID, conversations.ItemNewParams{
		Items: []responses.ResponseInputItemUnionParam{responses.ResponseInputItemParamOfMessage("a note", responses.EasyInputMessageRoleDeveloper)}})
	if err != nil || len(added.Data) != 1 {
		t.Fatalf("add = %v, %v", added, err)
	}
	id := added.Data[0].ID
	if it, err := s.Client.Conversations.Items.Get(ctx, conv.ID, id, conversations.ItemGetParams{}); err != nil || it.ID != id {
		t.Fatalf("get item = %v, %v", it, err)
	}
	if c, err := s.Client.Conversations.Items.Delete(ctx, conv.ID, id); err != nil || c.ID != conv.ID {
		t.Fatalf("delete item = %v, %v", c, err)
	}
	_, err = s.Client.Conversations.Items.Get(ctx, conv.ID, id, conversations.ItemGetParams{})
	respErr(t, err, http.StatusNotFound)
	// More than 20 items at once.
	var many []responses.ResponseInputItemUnionParam
	for range 21 {
		many = append(many, responses.ResponseInputItemParamOfMessage("x", responses.EasyInputMessageRoleUser))
	}
	_, err = s.Client.Conversations.Items.New(ctx, conv.ID, conversations.ItemNewParams{Items: many})
	if ae := respErr(t, err, http.StatusBadRequest); ae.Param != "items" {
		t.Errorf("error = %s", ae.RawJSON())
	}
	if d, err := s.Client.Conversations.Delete(ctx, conv.ID); err != nil || !d.Deleted {
		t.Fatalf("delete = %v, %v", d, err)
	}
	_, err = s.Client.Conversations.Get(ctx, conv.ID)
	respErr(t, err, http.StatusNotFound)
}

func TestConversationLocked(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	ctx := context.Background()
	conv, err := s.Client.Conversations.New(ctx, conversations.ConversationNewParams{})
	if err != nil {
		t.Fatal(err)
	}
	p := textParams("slowly [[slow 300ms]] [[chunks 20]]")
	p.Conversation = responses.ResponseNewParamsConversationUnion{OfString: openai.String(conv.ID)}
	p.Background = openai.Bool(true)
	r1, err := s.Client.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Status != "queued" && r1.Status != "in_progress" {
		t.Fatalf("r1 = %s", r1.RawJSON())
	}
	p2 := textParams("meanwhile")
	p2.Conversation = p.Conversation
	_, err = s.Client.Responses.New(ctx, p2)
	if ae := respErr(t, err, http.StatusBadRequest); ae.Code != "conversation_locked" || ae.Param != "conversation" {
		t.Errorf("error = %s", ae.RawJSON())
	}
	if _, err := s.Client.Responses.Cancel(ctx, r1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.Responses.New(ctx, p2); err != nil {
		t.Fatalf("after the first ended: %v", err)
	}
}

func TestResponseBackground(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	ctx := streamContext(t)
	p := textParams("in the background [[chunks 6]]")
	p.Background = openai.Bool(true)
	r, err := s.Client.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Background || (r.Status != "queued" && r.Status != "in_progress") {
		t.Fatalf("r = %s", r.RawJSON())
	}
	all := readStream(t, s.Client.Responses.GetStreaming(ctx, r.ID, responses.ResponseGetParams{}))
	types := checkEvents(t, all)
	if types[0] != "response.created" || types[1] != "response.queued" || types[len(types)-1] != "response.completed" {
		t.Fatalf("events = %v", types)
	}
	n := all[4].SequenceNumber
	rest := readStream(t, s.Client.Responses.GetStreaming(ctx, r.ID, responses.ResponseGetParams{StartingAfter: openai.Int(n)}))
	checkEvents(t, rest)
	if len(rest) != len(all)-5 || rest[0].SequenceNumber != n+1 || rest[0].RawJSON() != all[5].RawJSON() {
		t.Errorf("replay after %d: %d events starting %s; want %d starting %s", n, len(rest), rest[0].RawJSON(), len(all)-5, all[5].RawJSON())
	}
	// Cancelling a finished response that did not end cancelled is refused.
	_, err = s.Client.Responses.Cancel(ctx, r.ID)
	respErr(t, err, http.StatusBadRequest)
}

func TestResponseCancel(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	ctx := context.Background()
	p := textParams("take your time [[slow 500ms]] [[chunks 40]]")
	p.Background = openai.Bool(true)
	r, err := s.Client.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	c1, err := s.Client.Responses.Cancel(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c1.Status != "cancelled" {
		t.Fatalf("cancel = %s", c1.RawJSON())
	}
	c2, err := s.Client.Responses.Cancel(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c2.RawJSON() != c1.RawJSON() {
		t.Errorf("second cancel = %s, first %s", c2.RawJSON(), c1.RawJSON())
	}
	// Only background responses can be cancelled.
	plain, err := s.Client.Responses.New(ctx, textParams("quick"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Client.Responses.Cancel(ctx, plain.ID)
	respErr(t, err, http.StatusBadRequest)
}

// firstText is the text of an item's first content part.
func firstText(raw string) string {
	var it struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if json.Unmarshal([]byte(raw), &it) != nil || len(it.Content) == 0 {
		return ""
	}
	return it.Content[0].Text
}

// An assistant as the response's prompt: its model, instructions and
// tools serve the response, and its webhook answers a function server-side
// as it does for runs.
func TestResponseAssistantPrompt(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t, "--webhook-allow-networks", "127.0.0.0/8")
	asst := newAssistant(t, s) // fake-model, "Be brief.", get_weather and get_time
	hook := newHookReceiver(t, answerOutput("14°C"))
	hook.configure(t, s, asst, "get_weather", "")
	ctx := context.Background()
	r, err := s.Client.Responses.New(ctx, responses.ResponseNewParams{
		Prompt: responses.ResponsePromptParam{ID: asst},
		Input:  responses.ResponseNewParamsInputUnion{OfString: openai.String(`prompted [[call get_weather {"city":"Oslo"}]]`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != "fake-model" || r.Instructions.OfString != "Be brief." || len(r.Tools) != 2 {
		t.Errorf("response = %s", r.RawJSON())
	}
	if len(r.Output) != 2 || r.Output[0].Type != "function_call" || outputText(r) != "Tool results: 14°C" {
		t.Fatalf("output = %s", r.RawJSON())
	}
	got := hook.requests()
	if len(got) != 1 || got[0].Payload.Function.Arguments != `{"city":"Oslo"}` || got[0].Payload.AssistantID != asst {
		t.Errorf("deliveries = %+v", got)
	}
	first := requestsWith(up, "prompted")[0]
	if first.Messages[0].Role != "system" || first.Messages[0].Text() != "Be brief." || len(first.Tools) != 2 {
		t.Errorf("upstream request = %+v", first)
	}
	// A response continuing from it needs no output for the call the
	// webhook answered; the model reads the call with the webhook's output.
	next, err := s.Client.Responses.New(ctx, responses.ResponseNewParams{Prompt: responses.ResponsePromptParam{ID: asst},
		PreviousResponseID: openai.String(r.ID), Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("and tomorrow?")}})
	if err != nil {
		t.Fatal(err)
	}
	if outputText(next) != "You said: and tomorrow?" {
		t.Errorf("next = %s", next.RawJSON())
	}
	turns := chatTurns(requestsWith(up, "and tomorrow?")[0])
	callID := r.Output[0].CallID
	wantTurns := []string{"system: Be brief.", `user: prompted [[call get_weather {"city":"Oslo"}]]`,
		`assistant: get_weather({"city":"Oslo"})#` + callID, "tool[" + callID + "]: 14°C", "assistant: Tool results: 14°C", "user: and tomorrow?"}
	if !slices.Equal(turns, wantTurns) {
		t.Errorf("the model read %q, want %q", turns, wantTurns)
	}
	// An unknown assistant is a 400 naming prompt.id.
	_, err = s.Client.Responses.New(ctx, responses.ResponseNewParams{Prompt: responses.ResponsePromptParam{ID: "asst_nope"},
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	if ae := respErr(t, err, http.StatusBadRequest); ae.Param != "prompt.id" {
		t.Errorf("error = %s", ae.RawJSON())
	}
}

// file_search in a response: the tool names its vector stores; the call
// becomes a file_search_call item (results with include[]), the marker the
// answer quotes a file_citation annotation; streamed, the
// file_search_call and annotation events.
func TestResponseFileSearch(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	ctx := streamContext(t)
	doc := uploadText(t, s, "octopus.txt", "Octopuses have three hearts and blue blood.")
	vs := s.doJSON(t, "POST", "/v1/vector_stores", `{"name":"sea","file_ids":["`+doc+`"]}`)
	var store struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(vs.Body, &store); err != nil || vs.Status != 200 {
		t.Fatalf("vector store: %d %s", vs.Status, vs.Body)
	}
	p := textParams(`How many hearts? [[call file_search {"query":"octopus hearts"}]]`)
	p.Tools = []responses.ToolUnionParam{{OfFileSearch: &responses.FileSearchToolParam{VectorStoreIDs: []string{store.ID}}}}
	p.Include = []responses.ResponseIncludable{responses.ResponseIncludableFileSearchCallResults}
	r, err := s.Client.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Output) != 2 || r.Output[0].Type != "file_search_call" || r.Output[1].Type != "message" {
		t.Fatalf("output = %s", r.RawJSON())
	}
	call := r.Output[0]
	if !slices.Equal(call.Queries, []string{"octopus hearts"}) || len(call.Results) != 1 || call.Results[0].FileID != doc ||
		!strings.Contains(call.Results[0].Text, "three hearts") {
		t.Errorf("file_search_call = %s", call.RawJSON())
	}
	anns := r.Output[1].Content[0].Annotations
	if len(anns) == 0 || anns[0].Type != "file_citation" || anns[0].FileID != doc || anns[0].Filename != "octopus.txt" {
		t.Errorf("message = %s", r.Output[1].RawJSON())
	}
	// Without include[], no results.
	plain, err := s.Client.Responses.Get(ctx, r.ID, responses.ResponseGetParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.Output[0].Results) != 0 {
		t.Errorf("results without include[]: %s", plain.Output[0].RawJSON())
	}

	p.Input = responses.ResponseNewParamsInputUnion{OfString: openai.String(`Streamed: hearts? [[call file_search {"query":"octopus hearts"}]]`)}
	evs := readStream(t, s.Client.Responses.NewStreaming(ctx, p))
	types := checkEvents(t, evs)
	for _, want := range []string{"response.file_search_call.in_progress", "response.file_search_call.searching",
		"response.file_search_call.completed", "response.output_text.annotation.added", "response.completed"} {
		if !slices.Contains(types, want) {
			t.Errorf("events %v lack %s", types, want)
		}
	}
}

// code_interpreter in a response: container auto with files; the call is
// a code_interpreter_call item with its code, outputs with include[].
func TestResponseCodeInterpreter(t *testing.T) {
	t.Parallel()
	s, _ := startCodeServer(t)
	ctx := streamContext(t)
	data := uploadText(t, s, "numbers.csv", "n\n1\n2\n3\n")
	code := "import pandas as pd\nprint(pd.read_csv('/mnt/data/numbers.csv').n.sum())"
	p := textParams("Sum it " + callDirective(code))
	p.Tools = []responses.ToolUnionParam{{OfCodeInterpreter: &responses.ToolCodeInterpreterParam{
		Container: responses.ToolCodeInterpreterContainerUnionParam{OfCodeInterpreterToolAuto: &responses.ToolCodeInterpreterContainerCodeInterpreterContainerAutoParam{FileIDs: []string{data}}}}}}
	p.Include = []responses.ResponseIncludable{responses.ResponseIncludableCodeInterpreterCallOutputs}
	evs := readStream(t, s.Client.Responses.NewStreaming(ctx, p))
	types := checkEvents(t, evs)
	for _, want := range []string{"response.code_interpreter_call.in_progress", "response.code_interpreter_call_code.delta",
		"response.code_interpreter_call_code.done", "response.code_interpreter_call.interpreting",
		"response.code_interpreter_call.completed", "response.completed"} {
		if !slices.Contains(types, want) {
			t.Errorf("events %v lack %s", types, want)
		}
	}
	r := evs[len(evs)-1].Response
	if r.Status != "completed" || len(r.Output) < 1 || r.Output[0].Type != "code_interpreter_call" {
		t.Fatalf("response = %s", r.RawJSON())
	}
	call := r.Output[0]
	if call.Code != code || len(call.Outputs) == 0 || !strings.Contains(call.Outputs[0].Logs, "6") {
		t.Errorf("code_interpreter_call = %s", call.RawJSON())
	}

	// A figure: an image output whose url serves the PNG.
	fig := textParams("Plot it " + callDirective("import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.show()"))
	fig.Tools, fig.Include = p.Tools, p.Include
	r2, err := s.Client.Responses.New(ctx, fig)
	if err != nil {
		t.Fatal(err)
	}
	var url string
	for _, o := range r2.Output[0].Outputs {
		if o.Type == "image" {
			url = o.URL
		}
	}
	if url == "" {
		t.Fatalf("no image output: %s", r2.Output[0].RawJSON())
	}
	img := s.do(t, "GET", url, nil, nil)
	if img.Status != http.StatusOK || !strings.HasPrefix(string(img.Body), "\x89PNG") {
		t.Errorf("GET %s: %d, %d bytes", url, img.Status, len(img.Body))
	}
	// Without include[], no outputs.
	plain, err := s.Client.Responses.Get(ctx, r2.ID, responses.ResponseGetParams{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plain.Output[0].RawJSON(), `"outputs":null`) {
		t.Errorf("outputs without include[]: %s", plain.Output[0].RawJSON())
	}
}

// TestResponseOpenResponsesScenarios ports the HTTP scenarios of the Open
// Responses compliance suite (openresponses/openresponses,
// src/lib/compliance-tests.ts) as raw requests: each must complete, match
// the Response schema, and reach the model as the scenario means.
func TestResponseOpenResponsesScenarios(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	up.Script("What's the weather like in San Francisco?", `[[call get_weather {"location":"San Francisco, CA"}]]`)
	const png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
	tests := []struct {
		name, body string
		wantType   string   // an output item of this type
		wantTurns  []string // the chat turns the model read
	}{
		{"basic-response", `{"model":"fake-model","input":[{"type":"message","role":"user","content":"Say hello in exactly 3 words."}]}`,
			"message", []string{"user: Say hello in exactly 3 words."}},
		{"assistant-phase", `{"model":"fake-model","input":[{"type":"message","role":"user","content":"Hi"},
			{"type":"message","role":"assistant","content":"Checking.","phase":"commentary"},
			{"type":"message","role":"user","content":"Go on."}]}`,
			"message", []string{"user: Hi", "assistant: Checking.", "user: Go on."}},
		{"system-prompt", `{"model":"fake-model","input":[{"type":"message","role":"system","content":"You are a pirate."},
			{"type":"message","role":"user","content":"Say hello."}]}`,
			"message", []string{"system: You are a pirate.", "user: Say hello."}},
		{"tool-calling", `{"model":"fake-model","input":[{"type":"message","role":"user","content":"What's the weather like in San Francisco?"}],
			"tools":[{"type":"function","name":"get_weather","description":"Get the current weather","parameters":{"type":"object",
			"properties":{"location":{"type":"string"}},"required":["location"]}}]}`,
			"function_call", []string{"user: What's the weather like in San Francisco?"}},
		{"image-input", `{"model":"fake-model","input":[{"type":"message","role":"user","content":[
			{"type":"input_text","text":"What do you see?"},{"type":"input_image","image_url":"` + png + `"}]}]}`,
			"message", []string{"user: What do you see?"}},
		{"multi-turn", `{"model":"fake-model","input":[{"type":"message","role":"user","content":"My name is Alice."},
			{"type":"message","role":"assistant","content":"Hello Alice!"},{"type":"message","role":"user","content":"What is my name?"}]}`,
			"message", []string{"user: My name is Alice.", "assistant: Hello Alice!", "user: What is my name?"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := s.do(t, "POST", "/v1/responses", strings.NewReader(tc.body), nil)
			if res.Status != http.StatusOK {
				t.Fatalf("status %d: %s", res.Status, res.Body)
			}
			var r struct {
				Status string `json:"status"`
				Output []struct {
					Type string `json:"type"`
				} `json:"output"`
			}
			if err := json.Unmarshal(res.Body, &r); err != nil {
				t.Fatal(err)
			}
			if r.Status != "completed" || len(r.Output) == 0 || r.Output[0].Type != tc.wantType {
				t.Errorf("response = %s", res.Body)
			}
			last := tc.wantTurns[len(tc.wantTurns)-1]
			_, text, _ := strings.Cut(last, ": ")
			reqs := requestsWith(up, text)
			if len(reqs) == 0 {
				t.Fatalf("no upstream request with %q", text)
			}
			if got := chatTurns(reqs[0]); !slices.Equal(got, tc.wantTurns) {
				t.Errorf("model read %q, want %q", got, tc.wantTurns)
			}
			if tc.name == "image-input" && !strings.Contains(string(reqs[0].Messages[0].Content), png) {
				t.Errorf("image not sent: %s", reqs[0].Messages[0].Content)
			}
		})
	}
}

// A background response interrupted by a crash resumes after the restart
// and completes; its events are then replayed from the store (the
// in-memory log died with the process), schema-valid and in order.
func TestResponseRestart(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := context.Background()
	p := textParams("survive [[slow 150ms]] [[chunks 12]]")
	p.Background = openai.Bool(true)
	r, err := s.Client.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the model is answering, then crash.
	deadline := time.Now().Add(runDeadline)
	for len(requestsWith(up, "survive")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the upstream was never asked")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.kill(t)
	s.restart(t)
	var done *responses.Response
	for deadline = time.Now().Add(runDeadline); ; {
		got, err := s.Client.Responses.Get(ctx, r.ID, responses.ResponseGetParams{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == "completed" || got.Status == "failed" {
			done = got
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %s after the restart", got.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11"
	if done.Status != "completed" || outputText(done) != want || len(done.Output) != 1 {
		t.Fatalf("after restart: %s", done.RawJSON())
	}
	evs := readStream(t, s.Client.Responses.GetStreaming(streamContext(t), r.ID, responses.ResponseGetParams{}))
	types := checkEvents(t, evs)
	if types[0] != "response.created" || types[len(types)-1] != "response.completed" || outputText(&evs[len(evs)-1].Response) != want {
		t.Errorf("replay: %v", types)
	}
	// Once the process that ran it is gone, the replay is rebuilt from the
	// store: whole items, the same final response. On PostgreSQL the
	// durable event log outlives the process: the replay is the same.
	s.restart(t)
	if onPostgres {
		again := checkEvents(t, readStream(t, s.Client.Responses.GetStreaming(streamContext(t), r.ID, responses.ResponseGetParams{})))
		if !slices.Equal(again, types) {
			t.Errorf("replay after a restart: %v, want %v", again, types)
		}
		return
	}
	evs = readStream(t, s.Client.Responses.GetStreaming(streamContext(t), r.ID, responses.ResponseGetParams{}))
	types = checkEvents(t, evs)
	wantTypes := []string{"response.created", "response.queued", "response.in_progress", "response.output_item.added",
		"response.content_part.added", "response.output_text.delta", "response.output_text.done", "response.content_part.done",
		"response.output_item.done", "response.completed"}
	if !slices.Equal(types, wantTypes) || evs[5].Delta != want || evs[9].Response.RawJSON() != done.RawJSON() {
		t.Errorf("rebuilt replay: %v", types)
	}
	tail := readStream(t, s.Client.Responses.GetStreaming(streamContext(t), r.ID, responses.ResponseGetParams{StartingAfter: openai.Int(7)}))
	if types := checkEvents(t, tail); !slices.Equal(types, wantTypes[8:]) {
		t.Errorf("rebuilt replay after 7: %v", types)
	}
}

// input_tokens counts what the model would read: more for a longer input,
// more again for instructions, tools and the history it continues; and it
// matches the estimate a response records when the upstream reports no
// usage.
func TestResponseInputTokens(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	ctx := context.Background()
	count := func(p responses.InputTokenCountParams) int64 {
		t.Helper()
		res, err := s.Client.Responses.InputTokens.Count(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return res.InputTokens
	}
	short := count(responses.InputTokenCountParams{Model: openai.String("fake-model"),
		Input: responses.InputTokenCountParamsInputUnion{OfString: openai.String("hello")}})
	long := count(responses.InputTokenCountParams{Model: openai.String("fake-model"),
		Input: responses.InputTokenCountParamsInputUnion{OfString: openai.String("hello there, how are you doing on this fine day?")}})
	withMore := count(responses.InputTokenCountParams{Model: openai.String("fake-model"), Instructions: openai.String("Be brief."),
		Tools: []responses.ToolUnionParam{weatherFn}, Input: responses.InputTokenCountParamsInputUnion{OfString: openai.String("hello")}})
	if !(0 < short && short < long && short < withMore) {
		t.Errorf("counts: short %d, long %d, with instructions and tools %d", short, long, withMore)
	}
	p := textParams("remember this [[nousage]]")
	r, err := s.Client.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(responses.InputTokenCountParams{Input: responses.InputTokenCountParamsInputUnion{OfString: openai.String("remember this [[nousage]]")}}); n != r.Usage.InputTokens {
		t.Errorf("counted %d, the response's estimate %d", n, r.Usage.InputTokens)
	}
	next := count(responses.InputTokenCountParams{PreviousResponseID: openai.String(r.ID),
		Input: responses.InputTokenCountParamsInputUnion{OfString: openai.String("and?")}})
	if next <= r.Usage.InputTokens {
		t.Errorf("with history %d, without %d", next, r.Usage.InputTokens)
	}
}

// compact: the model summarises the conversation; the output is its user
// messages and a compaction item, which a new chain takes as input and the
// model reads as the summary.
func TestResponseCompact(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := context.Background()
	up.Answer("Summarize the conversation above, as instructed.", "Launch Tuesday; notify support first.")
	r1, err := s.Client.Responses.New(ctx, textParams("We agreed to launch on Tuesday and notify support first."))
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Client.Responses.Compact(ctx, responses.ResponseCompactParams{Model: "fake-model", PreviousResponseID: openai.String(r1.ID),
		Input: responses.ResponseCompactParamsInputUnion{OfString: openai.String("Anything else?")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Output) != 3 || c.Output[0].Type != "message" || c.Output[1].Type != "message" || c.Output[2].Type != "compaction" ||
		c.Usage.TotalTokens == 0 {
		t.Fatalf("compacted = %s", c.RawJSON())
	}
	summaryReq := requestsWith(up, "Summarize the conversation above")
	if len(summaryReq) != 1 || !strings.Contains(summaryReq[0].Messages[0].Text(), "Summarize the conversation so far") {
		t.Fatalf("summary request = %+v", summaryReq)
	}
	// A new chain from the compacted items.
	var input responses.ResponseInputParam
	for _, it := range c.Output {
		if it.Type == "compaction" {
			input = append(input, responses.ResponseInputItemParamOfCompaction(it.EncryptedContent))
		} else {
			input = append(input, responses.ResponseInputItemParamOfMessage(firstText(it.RawJSON()), responses.EasyInputMessageRoleUser))
		}
	}
	input = append(input, responses.ResponseInputItemParamOfMessage("When do we launch?", responses.EasyInputMessageRoleUser))
	if _, err := s.Client.Responses.New(ctx, responses.ResponseNewParams{Model: "fake-model",
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: input}}); err != nil {
		t.Fatal(err)
	}
	got := chatTurns(requestsWith(up, "When do we launch?")[0])
	want := []string{"user: We agreed to launch on Tuesday and notify support first.", "user: Anything else?",
		"system: Summary of the conversation so far:\n\nLaunch Tuesday; notify support first.", "user: When do we launch?"}
	if !slices.Equal(got, want) {
		t.Errorf("the model read %q, want %q", got, want)
	}
	// Foreign (OpenAI-encrypted) compaction content is refused; so is a
	// compact request without a model.
	res := s.doJSON(t, "POST", "/v1/responses", `{"model":"fake-model","input":[{"type":"compaction","encrypted_content":"gAAAAB"}]}`)
	if res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), "input[0].encrypted_content") {
		t.Errorf("foreign compaction: %d %s", res.Status, res.Body)
	}
	res = s.doJSON(t, "POST", "/v1/responses/compact", `{"input":"hi"}`)
	if res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), `"param":"model"`) {
		t.Errorf("compact without model: %d %s", res.Status, res.Body)
	}
}

// An upstream failure fails the response with the run's error: status
// failed, error {code, message}; streamed, response.failed ends the
// stream.
func TestResponseFailed(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t, "--upstream-retries", "0")
	ctx := context.Background()
	r, err := s.Client.Responses.New(ctx, textParams("break [[status 429]]"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != "failed" || r.Error.Code != "rate_limit_exceeded" || !strings.Contains(r.Error.Message, "429") || len(r.Output) != 0 {
		t.Errorf("response = %s", r.RawJSON())
	}
	evs := readStream(t, s.Client.Responses.NewStreaming(streamContext(t), textParams("break again [[status 500]]")))
	types := checkEvents(t, evs)
	last := evs[len(evs)-1]
	if types[len(types)-1] != "response.failed" || last.Response.Status != "failed" || last.Response.Error.Code != "server_error" {
		t.Errorf("events %v, last %s", types, last.RawJSON())
	}
}

// An answer cut off at the token cap ends the response incomplete, with
// reason max_output_tokens; streamed, response.incomplete ends the stream.
func TestResponseIncomplete(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	p := textParams("cut me off [[length]]")
	p.MaxOutputTokens = openai.Int(16)
	r, err := s.Client.Responses.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != "incomplete" || r.IncompleteDetails.Reason != "max_output_tokens" || r.MaxOutputTokens != 16 ||
		len(r.Output) != 1 || r.Output[0].Status != "incomplete" {
		t.Errorf("response = %s", r.RawJSON())
	}
	p.Input = responses.ResponseNewParamsInputUnion{OfString: openai.String("cut me off again [[length]]")}
	evs := readStream(t, s.Client.Responses.NewStreaming(streamContext(t), p))
	types := checkEvents(t, evs)
	if types[len(types)-1] != "response.incomplete" || evs[len(evs)-1].Response.IncompleteDetails.Reason != "max_output_tokens" {
		t.Errorf("events %v", types)
	}
}
