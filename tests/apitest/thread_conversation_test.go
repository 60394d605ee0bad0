package apitest

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/conversations"
	"github.com/openai/openai-go/v3/responses"
)

// builtinCallID matches the ids of code_interpreter and file_search calls
// in chat turns: call_X in a run, ci_X or fs_X replayed from items.
var builtinCallID = regexp.MustCompile(`(#|tool\[)(?:call|ci|fs)_`)

// TestThreadToConversation: a thread with a function call answered by the
// client, code run by code_interpreter and a file search becomes a
// conversation whose items are that history in order (thread id in its
// metadata, the thread unchanged); continued with responses.create({conversation}),
// the model reads the same history, in the same order, as a run on the
// thread reads it.
func TestThreadToConversation(t *testing.T) {
	t.Parallel()
	s, up := startCodeServer(t)
	ctx := streamContext(t)
	doc := uploadText(t, s, "octopus.txt", "Octopuses have three hearts and blue blood.")
	vs, err := s.Client.VectorStores.New(ctx, openai.VectorStoreNewParams{Name: openai.String("sea"), FileIDs: []string{doc}})
	if err != nil {
		t.Fatal(err)
	}
	asst := newAssistant(t, s, openai.BetaAssistantNewParams{Model: "fake-model", Instructions: openai.String("Be brief."),
		Tools: []openai.AssistantToolUnionParam{weatherTool, {OfCodeInterpreter: &openai.CodeInterpreterToolParam{}},
			{OfFileSearch: &openai.FileSearchToolParam{}}},
		ToolResources: openai.BetaAssistantNewParamsToolResources{
			FileSearch: openai.BetaAssistantNewParamsToolResourcesFileSearch{VectorStoreIDs: []string{vs.ID}}}})

	// 1: a function call answered by the client.
	thread := threadWith(t, s, `tc1 weather? [[call get_weather {"city":"Oslo"}]]`)
	run := startRun(t, s, thread, asst)
	run = waitRun(t, s, thread, run.ID, openai.RunStatusRequiresAction)
	callID := run.RequiredAction.SubmitToolOutputs.ToolCalls[0].ID
	if _, err := s.Client.Beta.Threads.Runs.SubmitToolOutputs(ctx, thread, run.ID, outputs([]string{callID}, "12°C")); err != nil {
		t.Fatal(err)
	}
	waitRun(t, s, thread, run.ID, openai.RunStatusCompleted)
	// 2: code; 3: a file search.
	for _, text := range []string{"tc2 sum " + callDirective("print(sum([4, 5]))"),
		`tc3 hearts? [[call file_search {"query":"octopus hearts"}]]`} {
		addMessage(t, s, thread, text)
		run := startRun(t, s, thread, asst)
		waitRun(t, s, thread, run.ID, openai.RunStatusCompleted)
	}
	before := runMessages(t, s, thread)

	res := s.doJSON(t, "POST", "/v1/threads/"+thread+"/conversation", "")
	if res.Status != http.StatusOK {
		t.Fatalf("convert: %d %s", res.Status, res.Body)
	}
	var conv conversations.Conversation
	if err := json.Unmarshal(res.Body, &conv); err != nil {
		t.Fatal(err)
	}
	if meta, _ := conv.Metadata.(map[string]any); meta["thread_id"] != thread || !strings.HasPrefix(conv.ID, "conv_") {
		t.Errorf("conversation = %s", res.Body)
	}
	items, err := s.Client.Conversations.Items.List(ctx, conv.ID, conversations.ItemListParams{Order: conversations.ItemListParamsOrderAsc, Limit: openai.Int(100)})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, it := range items.Data {
		k := it.Type
		if it.Type == "message" {
			k += "/" + it.Role
		}
		kinds = append(kinds, k)
	}
	want := []string{"message/user", "function_call", "function_call_output", "message/assistant",
		"message/user", "code_interpreter_call", "message/assistant",
		"message/user", "file_search_call", "message/assistant"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("items %v, want %v", kinds, want)
	}
	fc, fco, ci, fs := items.Data[1], items.Data[2], items.Data[5], items.Data[8]
	if fc.CallID != callID || fc.Name != "get_weather" || fc.Arguments.OfString != `{"city":"Oslo"}` || fco.CallID != callID ||
		fco.Output.OfString != "12°C" {
		t.Errorf("function round: %s / %s", fc.RawJSON(), fco.RawJSON())
	}
	if ci.Code != "print(sum([4, 5]))" || len(ci.Outputs) == 0 || !strings.Contains(ci.Outputs[0].Logs, "9") {
		t.Errorf("code_interpreter_call = %s", ci.RawJSON())
	}
	if len(fs.Queries) != 1 || fs.Queries[0] != "octopus hearts" || len(fs.Results) == 0 || fs.Results[0].FileID != doc {
		t.Errorf("file_search_call = %s", fs.RawJSON())
	}
	if c := items.Data[9].Content.OfMessageContentArray; len(c) == 0 || len(c[0].Annotations) == 0 || c[0].Annotations[0].FileID != doc {
		t.Errorf("the answer lost its citation: %s", items.Data[9].RawJSON())
	}
	if after := runMessages(t, s, thread); len(after) != len(before) {
		t.Errorf("the thread changed: %d messages, had %d", len(after), len(before))
	}

	// The same next turn through a run on the thread and through a
	// response on the conversation: the model reads the same history.
	addMessage(t, s, thread, "tc4 next via run")
	r4 := startRun(t, s, thread, asst)
	waitRun(t, s, thread, r4.ID, openai.RunStatusCompleted)
	resp, err := s.Client.Responses.New(ctx, responses.ResponseNewParams{
		Prompt:       responses.ResponsePromptParam{ID: asst},
		Conversation: responses.ResponseNewParamsConversationUnion{OfString: openai.String(conv.ID)},
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("tc4 next via response")}})
	if err != nil {
		t.Fatal(err)
	}
	if outputText(resp) != "You said: tc4 next via response" {
		t.Errorf("response = %s", resp.RawJSON())
	}
	viaRun := chatTurns(requestsWith(up, "tc4 next via run")[0])
	viaResp := chatTurns(requestsWith(up, "tc4 next via response")[0])
	norm := func(turns []string) []string {
		out := slices.Clone(turns[:len(turns)-1]) // all but the new message
		for i := range out {
			out[i] = builtinCallID.ReplaceAllString(out[i], "${1}X_")
		}
		return out
	}
	if !slices.Equal(norm(viaRun), norm(viaResp)) {
		t.Errorf("the model read, continuing the conversation:\n%s\nwhere the run read:\n%s",
			strings.Join(viaResp, "\n"), strings.Join(viaRun, "\n"))
	}
	if len(viaResp) != 14 || viaResp[0] != "system: Be brief." || !strings.HasPrefix(viaResp[2], "assistant: get_weather(") ||
		!strings.HasPrefix(viaResp[6], "assistant: code_interpreter(") || !strings.HasPrefix(viaResp[10], "assistant: file_search(") {
		t.Errorf("history read continuing the conversation:\n%s", strings.Join(viaResp, "\n"))
	}

	// A thread whose run waits for a function's output: the call comes
	// along unanswered, and the first response on the conversation answers
	// it. A run still in progress is refused.
	waiting := threadWith(t, s, `tc5 weather? [[call get_weather {"city":"Bergen"}]]`)
	wr := startRun(t, s, waiting, asst)
	wr = waitRun(t, s, waiting, wr.ID, openai.RunStatusRequiresAction)
	wcall := wr.RequiredAction.SubmitToolOutputs.ToolCalls[0].ID
	res = s.doJSON(t, "POST", "/v1/threads/"+waiting+"/conversation", "")
	if err := json.Unmarshal(res.Body, &conv); err != nil || res.Status != http.StatusOK {
		t.Fatalf("convert a waiting thread: %d %s", res.Status, res.Body)
	}
	answer := responses.ResponseInputItemParamOfFunctionCallOutput("7°C")
	answer.OfFunctionCallOutput.CallID = openai.String(wcall)
	resp, err = s.Client.Responses.New(ctx, responses.ResponseNewParams{
		Prompt:       responses.ResponsePromptParam{ID: asst},
		Conversation: responses.ResponseNewParamsConversationUnion{OfString: openai.String(conv.ID)},
		Input:        responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{answer}}})
	if err != nil {
		t.Fatal(err)
	}
	if outputText(resp) != "Tool results: 7°C" {
		t.Errorf("answering the waiting call: %s", resp.RawJSON())
	}
	slow := threadWith(t, s, "tc6 busy [[slow 5s]]") // in progress well past the request below; then cancelled
	sr := startRun(t, s, slow, asst)
	if res := s.doJSON(t, "POST", "/v1/threads/"+slow+"/conversation", ""); res.Status != http.StatusBadRequest ||
		!strings.Contains(string(res.Body), sr.ID) {
		t.Errorf("a thread with a run in progress: %d %s", res.Status, res.Body)
	}
	if _, err := s.Client.Beta.Threads.Runs.Cancel(ctx, slow, sr.ID); err != nil {
		t.Fatal(err)
	}
	waitRun(t, s, slow, sr.ID, openai.RunStatusCancelled)

	// Errors: an unknown thread, a malformed id.
	if res := s.doJSON(t, "POST", "/v1/threads/thread_nope/conversation", ""); res.Status != http.StatusNotFound {
		t.Errorf("unknown thread: %d %s", res.Status, res.Body)
	}
	if res := s.doJSON(t, "POST", "/v1/threads/nope/conversation", ""); res.Status != http.StatusBadRequest {
		t.Errorf("malformed id: %d %s", res.Status, res.Body)
	}
}
