package apitest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
)

// max_tool_calls caps the built-in tool calls of a whole response: the
// model's further attempts are ignored (neither run nor shown), and once
// the cap is reached the built-in tools are no longer offered. Function
// calls do not count.
func TestResponseMaxToolCalls(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := streamContext(t)
	doc := uploadText(t, s, "octopus.txt", "Octopuses have three hearts and blue blood.")
	vs := s.doJSON(t, "POST", "/v1/vector_stores", `{"name":"sea","file_ids":["`+doc+`"]}`)
	var store struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(vs.Body, &store); err != nil || vs.Status != 200 {
		t.Fatalf("vector store: %d %s", vs.Status, vs.Body)
	}
	tools := []responses.ToolUnionParam{{OfFileSearch: &responses.FileSearchToolParam{VectorStoreIDs: []string{store.ID}}}}
	const ask = `[[call file_search {"query":"octopus hearts"}]] [[call file_search {"query":"blue blood"}]]`
	kinds := func(r *responses.Response) []string {
		var out []string
		for _, it := range r.Output {
			out = append(out, it.Type)
		}
		return out
	}
	offered := func(req int) []string {
		var names []string
		for _, tool := range up.Requests()[req].Tools {
			fn, _ := tool["function"].(map[string]any)
			name, _ := fn["name"].(string)
			names = append(names, name)
		}
		return names
	}

	// Without a cap both calls run.
	p := textParams("Uncapped " + ask)
	p.Tools = tools
	r, err := s.Client.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(r); !slices.Equal(got, []string{"file_search_call", "file_search_call", "message"}) {
		t.Fatalf("uncapped output = %v", got)
	}

	// Capped at 1: the second call is ignored, and the model is asked
	// again without file_search.
	before := len(up.Requests())
	p = textParams("Capped " + ask)
	p.Tools, p.MaxToolCalls = tools, openai.Int(1)
	r, err = s.Client.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(r); !slices.Equal(got, []string{"file_search_call", "message"}) {
		t.Fatalf("capped output = %v: %s", got, r.RawJSON())
	}
	if !slices.Equal(r.Output[0].Queries, []string{"octopus hearts"}) {
		t.Errorf("the call that ran: %s", r.Output[0].RawJSON())
	}
	if r.MaxToolCalls != 1 {
		t.Errorf("max_tool_calls = %d", r.MaxToolCalls)
	}
	// The model read one tool result, and was not offered file_search
	// after the cap.
	if text := outputText(r); !strings.HasPrefix(text, "Tool results: ") || strings.Count(text, "; ") != 0 {
		t.Errorf("answer = %q, want one tool result", text)
	}
	if n := len(up.Requests()) - before; n != 2 {
		t.Fatalf("%d upstream requests, want 2", n)
	}
	if got := offered(before); !slices.Equal(got, []string{"file_search"}) {
		t.Errorf("first request offered %v", got)
	}
	if got := offered(before + 1); len(got) != 0 {
		t.Errorf("after the cap the model was offered %v", got)
	}
	// The continuation reads the same history: one call, its output.
	next, err := s.Client.Responses.New(ctx, responses.ResponseNewParams{Model: "fake-model", PreviousResponseID: openai.String(r.ID),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("thanks")}})
	if err != nil {
		t.Fatal(err)
	}
	if next.Status != responses.ResponseStatusCompleted {
		t.Errorf("continuation: %s", next.RawJSON())
	}

	// Streamed: the ignored call leaves no trace in the events.
	p.Input = responses.ResponseNewParamsInputUnion{OfString: openai.String("Streamed capped " + ask)}
	evs := readStream(t, s.Client.Responses.NewStreaming(ctx, p))
	types := checkEvents(t, evs)
	added := 0
	for _, ev := range evs {
		if ev.Type == "response.output_item.added" && ev.Item.Type == "file_search_call" {
			added++
		}
	}
	if added != 1 || types[len(types)-1] != "response.completed" {
		t.Errorf("%d file_search_call items announced; events %v", added, types)
	}
	final := evs[len(evs)-1].Response
	if got := kinds(&final); !slices.Equal(got, []string{"file_search_call", "message"}) {
		t.Errorf("streamed output = %v", got)
	}

	// Function calls do not count against the cap.
	fp := textParams(`[[call get_weather {"city":"Oslo"}]] [[call get_weather {"city":"Rome"}]]`)
	fp.Tools = []responses.ToolUnionParam{{OfFunction: &responses.FunctionToolParam{Name: "get_weather",
		Parameters: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}}
	fp.MaxToolCalls = openai.Int(0)
	fr, err := s.Client.Responses.New(ctx, fp)
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(fr); !slices.Equal(got, []string{"function_call", "function_call"}) {
		t.Errorf("function calls under max_tool_calls 0: %v", got)
	}

	// A negative cap is refused, naming the param.
	bad := s.doJSON(t, "POST", "/v1/responses", `{"model":"fake-model","input":"hi","max_tool_calls":-1}`)
	if bad.Status != http.StatusBadRequest || !strings.Contains(string(bad.Body), `"param": "max_tool_calls"`) &&
		!strings.Contains(string(bad.Body), `"param":"max_tool_calls"`) {
		t.Errorf("max_tool_calls -1: %d %s", bad.Status, bad.Body)
	}
}

// Reasoning: an upstream that streams reasoning_content (vLLM, DeepSeek)
// gives a reasoning output item before the answer, streamed with the
// reasoning_text events; its reasoning tokens are in usage; include[]
// reasoning.encrypted_content adds the item's encrypted_content. The
// Assistants API shows none of it.
func TestResponseReasoning(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	ctx := streamContext(t)

	r, err := s.Client.Responses.New(ctx, textParams("[[reasoning 5]] think first"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Output) != 2 || r.Output[0].Type != "reasoning" || r.Output[1].Type != "message" {
		t.Fatalf("output = %s", r.RawJSON())
	}
	rs := r.Output[0]
	if !strings.HasPrefix(rs.ID, "rs_") || len(rs.Content) != 1 || rs.Content[0].Text != "r0 r1 r2 r3 r4" || len(rs.Summary) != 0 ||
		rs.EncryptedContent != "" {
		t.Errorf("reasoning item = %s", rs.RawJSON())
	}
	if outputText(r) != "You said: think first" {
		t.Errorf("answer = %q", outputText(r))
	}
	if got := r.Usage.OutputTokensDetails.ReasoningTokens; got != 5 {
		t.Errorf("reasoning_tokens = %d: %s", got, r.Usage.RawJSON())
	}
	got, err := s.Client.Responses.Get(ctx, r.ID, responses.ResponseGetParams{
		Include: []responses.ResponseIncludable{responses.ResponseIncludableReasoningEncryptedContent}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Output[0].EncryptedContent == "" || got.Output[0].ID != rs.ID {
		t.Errorf("with include[]: %s", got.Output[0].RawJSON())
	}
	// The chain continues with the reasoning item in its history.
	next, err := s.Client.Responses.New(ctx, responses.ResponseNewParams{Model: "fake-model", PreviousResponseID: openai.String(r.ID),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("[[recall]] again")}})
	if err != nil {
		t.Fatal(err)
	}
	if outputText(next) != "Earlier you said: [[reasoning 5]] think first" {
		t.Errorf("continuation = %q", outputText(next))
	}

	// Streamed, every event checked against the spec.
	p := textParams("[[reasoning 4]] [[call get_weather {\"city\":\"Oslo\"}]] weather?")
	p.Tools = []responses.ToolUnionParam{{OfFunction: &responses.FunctionToolParam{Name: "get_weather",
		Parameters: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}}
	p.Include = []responses.ResponseIncludable{responses.ResponseIncludableReasoningEncryptedContent}
	evs := readStream(t, s.Client.Responses.NewStreaming(ctx, p))
	types := checkEvents(t, evs)
	var deltas []string
	var itemID, doneText string
	for _, ev := range evs {
		switch ev.Type {
		case "response.output_item.added":
			if ev.Item.Type == "reasoning" && ev.OutputIndex != 0 {
				t.Errorf("reasoning item at output_index %d", ev.OutputIndex)
			}
			if ev.Item.Type == "function_call" && ev.OutputIndex != 1 {
				t.Errorf("function_call at output_index %d", ev.OutputIndex)
			}
		case "response.reasoning_text.delta":
			deltas = append(deltas, ev.Delta)
			itemID = ev.ItemID
		case "response.reasoning_text.done":
			doneText = ev.Text
		case "response.output_item.done":
			if ev.Item.Type == "reasoning" && ev.Item.EncryptedContent == "" {
				t.Errorf("reasoning item done without encrypted_content: %s", ev.Item.RawJSON())
			}
		}
	}
	if strings.Join(deltas, "") != "r0 r1 r2 r3" || doneText != "r0 r1 r2 r3" || !strings.HasPrefix(itemID, "rs_") {
		t.Errorf("reasoning deltas %q, done %q, item %q; events %v", deltas, doneText, itemID, types)
	}
	final := evs[len(evs)-1]
	if final.Type != "response.completed" || len(final.Response.Output) != 2 || final.Response.Output[0].ID != itemID ||
		final.Response.Output[1].Type != "function_call" || final.Response.Usage.OutputTokensDetails.ReasoningTokens != 4 {
		t.Errorf("final = %s", final.RawJSON())
	}

	// An Assistants run on the same upstream: no reasoning anywhere, its
	// stream only OpenAI's events.
	body := s.doJSON(t, "POST", "/v1/assistants", `{"model":"fake-model"}`)
	var asst struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body.Body, &asst); err != nil || asst.ID == "" {
		t.Fatalf("assistant: %s", body.Body)
	}
	stream := s.Client.Beta.Threads.NewAndRunStreaming(ctx, openai.BetaThreadNewAndRunParams{AssistantID: asst.ID,
		Thread: openai.BetaThreadNewAndRunParamsThread{Messages: []openai.BetaThreadNewAndRunParamsThreadMessage{{
			Role: "user", Content: openai.BetaThreadNewAndRunParamsThreadMessageContentUnion{OfString: openai.String("[[reasoning 3]] hi")}}}}})
	var names []string
	for stream.Next() {
		names = append(names, stream.Current().Event)
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "assistantd.") || strings.Contains(n, "reasoning") {
			t.Errorf("the Assistants stream carried %q", n)
		}
	}
	if !slices.Contains(names, "thread.run.completed") {
		t.Errorf("run events %v", names)
	}
}
