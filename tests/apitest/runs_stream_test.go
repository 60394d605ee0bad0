package apitest

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/respjson"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"github.com/assistantd/assistantd/tests/upstream"
)

var update = flag.Bool("update", false, "rewrite the golden SSE transcripts in testdata/")

// The canonical event orders of the spec (§7.3, §7.4), deltas folded.
var (
	textRunEvents = []string{"thread.run.created", "thread.run.queued", "thread.run.in_progress",
		"thread.run.step.created", "thread.run.step.in_progress", "thread.message.created", "thread.message.in_progress",
		"thread.message.delta+", "thread.message.completed", "thread.run.step.completed", "thread.run.completed"}
	toolStreamA = []string{"thread.run.created", "thread.run.queued", "thread.run.in_progress",
		"thread.run.step.created", "thread.run.step.in_progress", "thread.run.step.delta+", "thread.run.requires_action"}
	toolStreamB = []string{"thread.run.step.completed", "thread.run.queued", "thread.run.in_progress",
		"thread.run.step.created", "thread.run.step.in_progress", "thread.message.created", "thread.message.in_progress",
		"thread.message.delta+", "thread.message.completed", "thread.run.step.completed", "thread.run.completed"}
)

func withDone(names []string) []string { return append(append([]string{}, names...), "done") }

// sdkStream decodes every event of an openai-go stream through AsAny into
// its typed variant, checks what each carries, and returns the event names
// (deltas folded), the streamed text, the tool calls assembled from step
// deltas ("id name(args)") and the last run object seen.
type sdkStream struct {
	names    []string
	text     string
	calls    []string
	run      openai.Run
	threadID string
	messages []openai.Message // completed or incomplete messages
	steps    []openai.RunStep // completed steps
}

// onEvent, if given, sees each event after it was checked.
func readSDKStream(t testing.TB, stream *ssestream.Stream[openai.AssistantStreamEventUnion], onEvent ...func(openai.AssistantStreamEventUnion)) sdkStream {
	t.Helper()
	defer stream.Close()
	var out sdkStream
	var text strings.Builder
	type callAcc struct{ id, name, args string }
	var calls []*callAcc
	var evs []sseEvent
	openMsg, openStep := "", ""
	checkRun := func(name string, r openai.Run, status openai.RunStatus) {
		t.Helper()
		if r.Status != status || !strings.HasPrefix(r.ID, "run_") || (out.run.ID != "" && r.ID != out.run.ID) {
			t.Errorf("%s: run %s status %s, want %s", name, r.ID, r.Status, status)
		}
		terminal := status != openai.RunStatusQueued && status != openai.RunStatusInProgress &&
			status != openai.RunStatusRequiresAction && status != openai.RunStatusCancelling
		if terminal != (r.ExpiresAt == 0) {
			t.Errorf("%s: expires_at %d", name, r.ExpiresAt)
		}
		if terminal != r.JSON.Usage.Valid() || (terminal && r.Usage.TotalTokens != r.Usage.PromptTokens+r.Usage.CompletionTokens) {
			t.Errorf("%s: usage %s; want it exactly when terminal", name, r.Usage.RawJSON())
		}
		if (status == openai.RunStatusRequiresAction) != (r.RequiredAction.Type == "submit_tool_outputs") {
			t.Errorf("%s: required_action %s", name, r.RequiredAction.RawJSON())
		}
		if status != openai.RunStatusQueued && r.StartedAt == 0 && out.run.StartedAt == 0 {
			t.Errorf("%s: started_at not set", name)
		}
		out.run = r
	}
	checkStep := func(name string, st openai.RunStep, status openai.RunStepStatus) {
		t.Helper()
		if st.Status != status || !strings.HasPrefix(st.ID, "step_") || (out.run.ID != "" && st.RunID != out.run.ID) {
			t.Errorf("%s: step %s status %s run %s, want %s of %s", name, st.ID, st.Status, st.RunID, status, out.run.ID)
		}
		if (status != openai.RunStepStatusInProgress) != st.JSON.Usage.Valid() {
			t.Errorf("%s: step usage %s", name, st.Usage.RawJSON())
		}
		if st.Type == "message_creation" && !strings.HasPrefix(st.StepDetails.MessageCreation.MessageID, "msg_") {
			t.Errorf("%s: message_creation without message_id: %s", name, st.RawJSON())
		}
	}
	checkMsg := func(name string, m openai.Message, status openai.MessageStatus) {
		t.Helper()
		if m.Status != status || m.Role != "assistant" || m.ID != openMsg || m.RunID != out.run.ID {
			t.Errorf("%s: message %s status %s role %s run %s; want %s assistant of %s", name, m.ID, m.Status, m.Role, m.RunID,
				status, out.run.ID)
		}
	}
	for stream.Next() {
		ev := stream.Current()
		evs = append(evs, sseEvent{Name: ev.Event})
		switch v := ev.AsAny().(type) {
		case openai.AssistantStreamEventThreadCreated:
			if !strings.HasPrefix(v.Data.ID, "thread_") || v.Data.Object != "thread" {
				t.Errorf("thread.created: %s", v.Data.RawJSON())
			}
			out.threadID = v.Data.ID
		case openai.AssistantStreamEventThreadRunCreated:
			checkRun(ev.Event, v.Data, openai.RunStatusQueued)
			if out.threadID != "" && v.Data.ThreadID != out.threadID {
				t.Errorf("run of thread %s, created thread %s", v.Data.ThreadID, out.threadID)
			}
		case openai.AssistantStreamEventThreadRunQueued:
			checkRun(ev.Event, v.Data, openai.RunStatusQueued)
		case openai.AssistantStreamEventThreadRunInProgress:
			checkRun(ev.Event, v.Data, openai.RunStatusInProgress)
		case openai.AssistantStreamEventThreadRunRequiresAction:
			checkRun(ev.Event, v.Data, openai.RunStatusRequiresAction)
		case openai.AssistantStreamEventThreadRunCompleted:
			checkRun(ev.Event, v.Data, openai.RunStatusCompleted)
		case openai.AssistantStreamEventThreadRunIncomplete:
			checkRun(ev.Event, v.Data, openai.RunStatusIncomplete)
		case openai.AssistantStreamEventThreadRunFailed:
			checkRun(ev.Event, v.Data, openai.RunStatusFailed)
		case openai.AssistantStreamEventThreadRunCancelling:
			checkRun(ev.Event, v.Data, openai.RunStatusCancelling)
		case openai.AssistantStreamEventThreadRunCancelled:
			checkRun(ev.Event, v.Data, openai.RunStatusCancelled)
		case openai.AssistantStreamEventThreadRunExpired:
			checkRun(ev.Event, v.Data, openai.RunStatusExpired)
		case openai.AssistantStreamEventThreadRunStepCreated:
			if openStep != "" {
				t.Errorf("step %s created while %s is open", v.Data.ID, openStep)
			}
			openStep = v.Data.ID
			checkStep(ev.Event, v.Data, openai.RunStepStatusInProgress)
			if v.Data.Type == "tool_calls" && (!v.Data.StepDetails.JSON.ToolCalls.Valid() || len(v.Data.StepDetails.ToolCalls) != 0) {
				t.Errorf("tool step created with tool_calls %s, want []", v.Data.StepDetails.RawJSON())
			}
		case openai.AssistantStreamEventThreadRunStepInProgress:
			checkStep(ev.Event, v.Data, openai.RunStepStatusInProgress)
		case openai.AssistantStreamEventThreadRunStepDelta:
			if v.Data.ID != openStep {
				t.Errorf("delta for step %s, open step %q", v.Data.ID, openStep)
			}
			for _, tc := range v.Data.Delta.StepDetails.ToolCalls {
				fn := tc.AsFunction()
				switch {
				case int(tc.Index) == len(calls):
					if fn.ID == "" || fn.Function.Name == "" || fn.Function.JSON.Output.Raw() != respjson.Null {
						t.Errorf("first delta of call %d lacks id, name or output:null: %s", tc.Index, tc.RawJSON())
					}
					calls = append(calls, &callAcc{id: fn.ID, name: fn.Function.Name, args: fn.Function.Arguments})
				case int(tc.Index) < len(calls):
					if fn.ID != "" || fn.Function.Name != "" {
						t.Errorf("later delta of call %d repeats id or name: %s", tc.Index, tc.RawJSON())
					}
					calls[tc.Index].args += fn.Function.Arguments
				default:
					t.Errorf("tool call delta index %d skips ahead of %d calls", tc.Index, len(calls))
				}
			}
		case openai.AssistantStreamEventThreadRunStepCompleted:
			if openStep == "" {
				openStep = v.Data.ID // stream B completes the step stream A opened
			}
			if v.Data.ID != openStep {
				t.Errorf("step %s completed while %s is open", v.Data.ID, openStep)
			}
			openStep = ""
			checkStep(ev.Event, v.Data, openai.RunStepStatusCompleted)
			out.steps = append(out.steps, v.Data)
		case openai.AssistantStreamEventThreadRunStepFailed:
			checkStep(ev.Event, v.Data, openai.RunStepStatusFailed)
			openStep = ""
		case openai.AssistantStreamEventThreadRunStepCancelled:
			checkStep(ev.Event, v.Data, openai.RunStepStatusCancelled)
			openStep = ""
		case openai.AssistantStreamEventThreadRunStepExpired:
			checkStep(ev.Event, v.Data, openai.RunStepStatusExpired)
			openStep = ""
		case openai.AssistantStreamEventThreadMessageCreated:
			if openMsg != "" {
				t.Errorf("message %s created while %s is open", v.Data.ID, openMsg)
			}
			openMsg = v.Data.ID
			checkMsg(ev.Event, v.Data, openai.MessageStatusInProgress)
			if len(v.Data.Content) != 0 {
				t.Errorf("message created with content %v", v.Data.Content)
			}
		case openai.AssistantStreamEventThreadMessageInProgress:
			checkMsg(ev.Event, v.Data, openai.MessageStatusInProgress)
		case openai.AssistantStreamEventThreadMessageDelta:
			if v.Data.ID != openMsg {
				t.Errorf("delta for message %s, open message %q", v.Data.ID, openMsg)
			}
			for _, c := range v.Data.Delta.Content {
				if c.Index != 0 || c.Type != "text" {
					t.Errorf("message delta content %s", c.RawJSON())
				}
				text.WriteString(c.AsText().Text.Value)
			}
		case openai.AssistantStreamEventThreadMessageCompleted:
			checkMsg(ev.Event, v.Data, openai.MessageStatusCompleted)
			if v.Data.CompletedAt == 0 || messageText(v.Data) != text.String() {
				t.Errorf("message completed with text %q completed_at %d; deltas gave %q", messageText(v.Data), v.Data.CompletedAt, text.String())
			}
			out.messages = append(out.messages, v.Data)
			openMsg = ""
		case openai.AssistantStreamEventThreadMessageIncomplete:
			checkMsg(ev.Event, v.Data, openai.MessageStatusIncomplete)
			out.messages = append(out.messages, v.Data)
			openMsg = ""
		case openai.AssistantStreamEventErrorEvent:
			t.Errorf("error event: %s", v.Data.RawJSON())
		default:
			t.Errorf("event %q decodes to no variant: %s", ev.Event, ev.RawJSON())
		}
		for _, f := range onEvent {
			f(ev)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	out.names, out.text = eventNames(evs), text.String()
	for _, c := range calls {
		out.calls = append(out.calls, c.id+" "+c.name+"("+c.args+")")
	}
	return out
}

func TestRunStreamSDK(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t, "--upstream-retries", "0")
	asst := newAssistant(t, s)
	runs := s.Client.Beta.Threads.Runs

	t.Run("text", func(t *testing.T) {
		t.Parallel()
		ctx := streamContext(t)
		thread := threadWith(t, s, "stream text [[chunks 12]]")
		got := readSDKStream(t, runs.NewStreaming(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst}))
		if diff := cmp.Diff(textRunEvents, got.names); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		want := "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11"
		if got.text != want {
			t.Errorf("streamed text %q, want %q", got.text, want)
		}
		if text := lastAssistantText(t, s, thread); text != want {
			t.Errorf("stored text %q, want %q", text, want)
		}
		stored, err := runs.Get(ctx, thread, got.run.ID)
		if err != nil || stored.Status != openai.RunStatusCompleted || stored.Usage.TotalTokens != got.run.Usage.TotalTokens {
			t.Errorf("stored run %v %+v; streamed %+v", err, stored, got.run)
		}
	})

	for _, quirk := range []string{"", "[[quirk ollama]]", "[[quirk noindex]]"} {
		t.Run("function round trip "+quirk, func(t *testing.T) {
			t.Parallel()
			functionRoundTrip(t, s, up, asst, quirk)
		})
	}

	t.Run("create thread and run", func(t *testing.T) {
		t.Parallel()
		ctx := streamContext(t)
		stream := s.Client.Beta.Threads.NewAndRunStreaming(ctx, openai.BetaThreadNewAndRunParams{AssistantID: asst,
			Thread: openai.BetaThreadNewAndRunParamsThread{Messages: []openai.BetaThreadNewAndRunParamsThreadMessage{{Role: "user",
				Content: openai.BetaThreadNewAndRunParamsThreadMessageContentUnion{OfString: openai.String("stream new thread")}}}}})
		got := readSDKStream(t, stream)
		if diff := cmp.Diff(append([]string{"thread.created"}, textRunEvents...), got.names); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if got.text != "You said: stream new thread" || got.run.ThreadID != got.threadID {
			t.Errorf("text %q, run thread %s, created thread %s", got.text, got.run.ThreadID, got.threadID)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		ctx := streamContext(t)
		thread := threadWith(t, s, "stream cancel [[slow 100ms]] [[chunks 100]]")
		var runID string
		cancelled := false
		got := readSDKStream(t, runs.NewStreaming(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst}),
			func(ev openai.AssistantStreamEventUnion) {
				if ev.Event == "thread.run.created" {
					runID = ev.AsThreadRunCreated().Data.ID
				}
				if ev.Event == "thread.message.delta" && !cancelled {
					cancelled = true
					if _, err := runs.Cancel(ctx, thread, runID); err != nil {
						t.Errorf("cancel: %v", err)
					}
				}
			})
		names := slices.DeleteFunc(got.names, func(n string) bool { return n == "thread.message.delta+" })
		want := []string{"thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.step.created",
			"thread.run.step.in_progress", "thread.message.created", "thread.message.in_progress", "thread.run.cancelling",
			"thread.message.incomplete", "thread.run.step.cancelled", "thread.run.cancelled"}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("events, deltas left out (-want +got):\n%s", diff)
		}
		if len(got.messages) != 1 || got.messages[0].IncompleteDetails.Reason != "run_cancelled" || messageText(got.messages[0]) != got.text {
			t.Errorf("incomplete message %+v, streamed %q", got.messages, got.text)
		}
	})

	t.Run("incomplete", func(t *testing.T) {
		t.Parallel()
		ctx := streamContext(t)
		thread := threadWith(t, s, "[[length]] stream a long answer")
		got := readSDKStream(t, runs.NewStreaming(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst}))
		want := []string{"thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.step.created",
			"thread.run.step.in_progress", "thread.message.created", "thread.message.in_progress", "thread.message.delta+",
			"thread.message.incomplete", "thread.run.step.completed", "thread.run.incomplete"}
		if diff := cmp.Diff(want, got.names); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if got.run.IncompleteDetails.Reason != "max_completion_tokens" || len(got.messages) != 1 ||
			got.messages[0].IncompleteDetails.Reason != "max_tokens" || messageText(got.messages[0]) != "You said: stream a long answer" {
			t.Errorf("run %s, messages %+v", got.run.IncompleteDetails.RawJSON(), got.messages)
		}
	})

	t.Run("failed", func(t *testing.T) {
		t.Parallel()
		ctx := streamContext(t)
		thread := threadWith(t, s, "[[status 503]] stream into a wall")
		got := readSDKStream(t, runs.NewStreaming(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst}))
		want := []string{"thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.failed"}
		if diff := cmp.Diff(want, got.names); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if got.run.LastError.Code != "server_error" || !strings.Contains(got.run.LastError.Message, "503") || got.run.FailedAt == 0 {
			t.Errorf("failed run: last_error %s failed_at %d", got.run.LastError.RawJSON(), got.run.FailedAt)
		}
	})

	t.Run("pre-stream errors are JSON", func(t *testing.T) {
		t.Parallel()
		ctx := streamContext(t)
		stream := runs.NewStreaming(ctx, "thread_doesnotexist", openai.BetaThreadRunNewParams{AssistantID: asst})
		if stream.Next() {
			t.Errorf("stream for an unknown thread delivered %s", stream.Current().Event)
		}
		if ae := apiError(t, stream.Err()); ae.StatusCode != 404 {
			t.Errorf("status %d, want 404", ae.StatusCode)
		}
		thread := threadWith(t, s, `busy [[call get_time {}]]`)
		run := startRun(t, s, thread, asst)
		waitRun(t, s, thread, run.ID, openai.RunStatusRequiresAction)
		stream = runs.NewStreaming(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst})
		if stream.Next() {
			t.Errorf("second stream on a busy thread delivered %s", stream.Current().Event)
		}
		if ae := apiError(t, stream.Err()); ae.StatusCode != 400 || !strings.Contains(ae.Message, "already has an active run") {
			t.Errorf("busy thread: %d %q", ae.StatusCode, ae.Message)
		}
		stream = runs.SubmitToolOutputsStreaming(ctx, thread, run.ID, openai.BetaThreadRunSubmitToolOutputsParams{
			ToolOutputs: []openai.BetaThreadRunSubmitToolOutputsParamsToolOutput{}})
		if stream.Next() {
			t.Errorf("invalid submit delivered %s", stream.Current().Event)
		}
		if ae := apiError(t, stream.Err()); ae.StatusCode != 400 {
			t.Errorf("invalid submit: %d %q", ae.StatusCode, ae.Message)
		}
	})
}

// functionRoundTrip streams a run that calls two functions (with the
// upstream quirk given), then streams the submission of their outputs.
func functionRoundTrip(t *testing.T, s *server, up *upstream.Server, asst, quirk string) {
	ctx := streamContext(t)
	runs := s.Client.Beta.Threads.Runs
	marker := "stream tools " + strings.Trim(quirk, "[]") + " " + quirk // distinct per quirk
	thread := threadWith(t, s, marker+` [[call get_weather {"city":"Kraków","days":2}]] [[call get_time {"tz":"Europe/Warsaw"}]]`)
	a := readSDKStream(t, runs.NewStreaming(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst}))
	if diff := cmp.Diff(toolStreamA, a.names); diff != "" {
		t.Errorf("stream A events (-want +got):\n%s", diff)
	}
	calls, ids := requiredCalls(t, &a.run)
	if len(ids) != 2 {
		t.Fatalf("required calls %q, want 2", calls)
	}
	var want []string
	for i, c := range calls {
		want = append(want, ids[i]+" "+c)
	}
	if diff := cmp.Diff(want, a.calls); diff != "" {
		t.Errorf("calls from step deltas vs required_action (-required +deltas):\n%s", diff)
	}
	if diff := cmp.Diff([]string{`get_weather({"city":"Kraków","days":2})`, `get_time({"tz":"Europe/Warsaw"})`}, calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	b := readSDKStream(t, runs.SubmitToolOutputsStreaming(ctx, thread, a.run.ID, outputs(ids, "rain", "09:00")))
	if diff := cmp.Diff(toolStreamB, b.names); diff != "" {
		t.Errorf("stream B events (-want +got):\n%s", diff)
	}
	if len(b.steps) != 2 || b.steps[0].Type != "tool_calls" {
		t.Fatalf("stream B steps: %+v", b.steps)
	}
	var outs []string
	for _, c := range b.steps[0].StepDetails.ToolCalls {
		outs = append(outs, c.ID+"="+c.Function.Output)
	}
	if diff := cmp.Diff([]string{ids[0] + "=rain", ids[1] + "=09:00"}, outs); diff != "" {
		t.Errorf("outputs on the completed tool step (-want +got):\n%s", diff)
	}
	if b.text != "Tool results: rain; 09:00" || b.run.Status != openai.RunStatusCompleted || b.run.ID != a.run.ID {
		t.Errorf("stream B: text %q run %s %s", b.text, b.run.ID, b.run.Status)
	}
	if n := len(requestsWith(up, marker)); n != 2 {
		t.Errorf("upstream got %d requests, want 2", n)
	}
}

func golden(t testing.TB, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(got, "\n")); diff != "" {
		t.Errorf("%s differs (-want +got; -update rewrites it):\n%s", path, diff)
	}
}

func TestRunStreamGolden(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	asst := newAssistant(t, s)

	t.Run("text", func(t *testing.T) {
		t.Parallel()
		thread := threadWith(t, s, "Hello there, assistant.")
		evs := s.openStream(t, "/v1/threads/"+thread+"/runs", `{"assistant_id":"`+asst+`","stream":true}`).all()
		if diff := cmp.Diff(withDone(textRunEvents), eventNames(evs)); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		var n normalizer
		golden(t, "run_text.golden", n.transcript(evs))
	})

	t.Run("function", func(t *testing.T) {
		t.Parallel()
		thread := threadWith(t, s, `What is the weather in Paris? [[call get_weather {"city":"Paris"}]]`)
		a := s.openStream(t, "/v1/threads/"+thread+"/runs", `{"assistant_id":"`+asst+`","stream":true}`).all()
		if diff := cmp.Diff(withDone(toolStreamA), eventNames(a)); diff != "" {
			t.Errorf("stream A events (-want +got):\n%s", diff)
		}
		var run openai.Run
		eventData(t, a, "thread.run.requires_action", &run)
		_, ids := requiredCalls(t, &run)
		if len(ids) != 1 {
			t.Fatalf("required calls %q, want 1", ids)
		}
		body, _ := json.Marshal(map[string]any{"stream": true, "tool_outputs": []map[string]string{{"tool_call_id": ids[0], "output": "22C and sunny"}}})
		b := s.openStream(t, "/v1/threads/"+thread+"/runs/"+run.ID+"/submit_tool_outputs", string(body)).all()
		if diff := cmp.Diff(withDone(toolStreamB), eventNames(b)); diff != "" {
			t.Errorf("stream B events (-want +got):\n%s", diff)
		}
		var n normalizer
		golden(t, "run_function.golden", "# stream A: POST /v1/threads/thread_1/runs\n\n"+n.transcript(a)+
			"# stream B: POST /v1/threads/thread_1/runs/run_1/submit_tool_outputs\n\n"+n.transcript(b))
	})

	t.Run("create thread and run", func(t *testing.T) {
		t.Parallel()
		evs := s.openStream(t, "/v1/threads/runs", `{"assistant_id":"`+asst+`","stream":true,
			"thread":{"messages":[{"role":"user","content":"raw thread\nand\u2028run: ✓ \"quoted\" </script>"}]}}`).all()
		if diff := cmp.Diff(withDone(append([]string{"thread.created"}, textRunEvents...)), eventNames(evs)); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		// Newlines, quotes and line separators stay inside one data line.
		if got := deltaText(t, evs); got != "You said: raw thread\nand\u2028run: ✓ \"quoted\" </script>" {
			t.Errorf("text %q", got)
		}
	})
}

func TestRunManyConcurrentStreams(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	asst := newAssistant(t, s)
	const n = 30
	threads := make([]string, n)
	for i := range threads {
		threads[i] = threadWith(t, s, fmt.Sprintf("crowd %d [[slow 10ms]] [[chunks 25]]", i))
	}
	var wg sync.WaitGroup
	results := make([][]sseEvent, n)
	for i, thread := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A fatal read error ends only this goroutine (Done still
			// runs) and fails the test; the checks come below.
			results[i] = s.openStream(t, "/v1/threads/"+thread+"/runs", `{"assistant_id":"`+asst+`","stream":true}`).all()
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, evs := range results {
		if diff := cmp.Diff(withDone(textRunEvents), eventNames(evs)); diff != "" {
			t.Errorf("stream %d events (-want +got):\n%s", i, diff)
			continue
		}
		run := runOf(t, evs)
		if seen[run.ID] || run.ThreadID != threads[i] {
			t.Errorf("stream %d: run %s of thread %s", i, run.ID, run.ThreadID)
		}
		seen[run.ID] = true
		var m openai.Message
		eventData(t, evs, "thread.message.completed", &m)
		if got := deltaText(t, evs); got != words(25) || messageText(m) != got {
			t.Errorf("stream %d: deltas %q, message %q", i, got, messageText(m))
		}
	}
}
