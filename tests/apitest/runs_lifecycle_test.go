package apitest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"

	"github.com/assistantd/assistantd/tests/upstream"
)

// words is the answer of [[chunks n]].
func words(n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("w%d", i)
	}
	return strings.Join(w, " ")
}

func streamRun(t testing.TB, s *server, thread, asst string) *sseStream {
	t.Helper()
	return s.openStream(t, "/v1/threads/"+thread+"/runs", `{"assistant_id":"`+asst+`","stream":true}`)
}

func runOf(t testing.TB, evs []sseEvent) openai.Run {
	t.Helper()
	var run openai.Run
	eventData(t, evs, "thread.run.created", &run)
	return run
}

func getMessage(t testing.TB, s *server, thread, id string) *openai.Message {
	t.Helper()
	m, err := s.Client.Beta.Threads.Messages.Get(context.Background(), thread, id)
	if err != nil {
		t.Fatalf("get message %s: %v", id, err)
	}
	return m
}

func TestRunCancel(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := context.Background()
	asst := newAssistant(t, s)

	t.Run("mid-stream", func(t *testing.T) {
		t.Parallel()
		thread := threadWith(t, s, "cancel me [[slow 100ms]] [[chunks 100]]")
		st := streamRun(t, s, thread, asst)
		head := st.until("thread.message.delta")
		run := runOf(t, head)
		cancelling, err := s.Client.Beta.Threads.Runs.Cancel(ctx, thread, run.ID)
		if err != nil {
			t.Fatalf("cancel: %v", err)
		}
		if cancelling.Status != openai.RunStatusCancelling {
			t.Errorf("cancel answered status %s, want cancelling", cancelling.Status)
		}
		rest := st.all()
		var names []string
		lastDelta, incompleteAt := -1, -1
		for i, ev := range rest {
			switch ev.Name {
			case "thread.message.delta":
				lastDelta = i
			case "thread.message.incomplete":
				incompleteAt = i
				names = append(names, ev.Name)
			default:
				names = append(names, ev.Name)
			}
		}
		want := []string{"thread.run.cancelling", "thread.message.incomplete", "thread.run.step.cancelled", "thread.run.cancelled", "done"}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("events after cancel, deltas left out (-want +got):\n%s", diff)
		}
		if lastDelta > incompleteAt {
			t.Errorf("message delta after thread.message.incomplete")
		}
		streamed := deltaText(t, append(head, rest...))

		got := waitRun(t, s, thread, run.ID)
		if got.Status != openai.RunStatusCancelled || got.CancelledAt == 0 || got.ExpiresAt != 0 || !got.JSON.Usage.Valid() {
			t.Errorf("run: status %s cancelled_at %d expires_at %d usage %s", got.Status, got.CancelledAt, got.ExpiresAt, got.Usage.RawJSON())
		}
		steps := runSteps(t, s, thread, run.ID)
		if len(steps) != 1 || steps[0].Status != "cancelled" || steps[0].CancelledAt == 0 {
			t.Fatalf("steps: %+v", steps)
		}
		m := getMessage(t, s, thread, steps[0].StepDetails.MessageCreation.MessageID)
		text := messageText(*m)
		if m.Status != "incomplete" || m.IncompleteDetails.Reason != "run_cancelled" || m.IncompleteAt == 0 {
			t.Errorf("message: status %s incomplete_details %s incomplete_at %d", m.Status, m.IncompleteDetails.RawJSON(), m.IncompleteAt)
		}
		full := words(100)
		if text == "" || text != streamed || !strings.HasPrefix(full, text) || text == full {
			t.Errorf("kept text %q; streamed %q; want the same non-empty proper prefix of the full answer", text, streamed)
		}
		// The thread is free again.
		if _, err := s.Client.Beta.Threads.Messages.New(ctx, thread, textMessage("after cancel")); err != nil {
			t.Errorf("message after cancel: %v", err)
		}
	})

	t.Run("while waiting for outputs", func(t *testing.T) {
		t.Parallel()
		thread := threadWith(t, s, `cancel waiting [[call get_time {"tz":"UTC"}]]`)
		run := waitRun(t, s, thread, startRun(t, s, thread, asst).ID, openai.RunStatusRequiresAction)
		if _, err := s.Client.Beta.Threads.Runs.Cancel(ctx, thread, run.ID); err != nil {
			t.Fatalf("cancel: %v", err)
		}
		got := waitRun(t, s, thread, run.ID)
		if got.Status != openai.RunStatusCancelled || got.RequiredAction.Type != "" {
			t.Errorf("run: %s required_action %s", got.Status, got.RequiredAction.RawJSON())
		}
		steps := runSteps(t, s, thread, run.ID)
		if len(steps) != 1 || steps[0].Status != "cancelled" || steps[0].CancelledAt == 0 {
			t.Errorf("steps: %+v", steps)
		}
		_, err := s.Client.Beta.Threads.Runs.Cancel(ctx, thread, run.ID)
		if ae := apiError(t, err); ae.StatusCode != 400 || ae.Message != "Cannot cancel run with status 'cancelled'." {
			t.Errorf("second cancel: %d %q", ae.StatusCode, ae.Message)
		}
		// The next run's history leaves out the call that was never
		// answered (the Chat API refuses a tool call without its result).
		addMessage(t, s, thread, "next question")
		if r := waitRun(t, s, thread, startRun(t, s, thread, asst).ID); r.Status != openai.RunStatusCompleted {
			t.Fatalf("next run %s %s", r.Status, r.LastError.RawJSON())
		}
		reqs := requestsWith(up, "next question")
		if len(reqs) != 1 {
			t.Fatalf("%d requests for the next run", len(reqs))
		}
		want := []string{"system: Be brief.", `user: cancel waiting [[call get_time {"tz":"UTC"}]]`, "user: next question"}
		if diff := cmp.Diff(want, chatTurns(reqs[0])); diff != "" {
			t.Errorf("next run's history (-want +got):\n%s", diff)
		}
	})

	t.Run("dropped stream", func(t *testing.T) {
		t.Parallel()
		thread := threadWith(t, s, "drop me [[slow 30ms]] [[chunks 30]]")
		st := streamRun(t, s, thread, asst)
		run := runOf(t, st.until("thread.message.delta"))
		st.close() // the client goes away after the first delta
		got := waitRun(t, s, thread, run.ID)
		if got.Status != openai.RunStatusCompleted {
			t.Fatalf("run %s %+v", got.Status, got.LastError)
		}
		if text := lastAssistantText(t, s, thread); text != words(30) {
			t.Errorf("answer %q, want the full %q", text, words(30))
		}
	})
}

func TestRunExpiry(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t, "--run-timeout", "5s")
	ctx := context.Background()
	asst := newAssistant(t, s)

	t.Run("waiting for outputs", func(t *testing.T) {
		t.Parallel()
		thread := threadWith(t, s, `expire [[call get_time {"tz":"UTC"}]]`)
		run := waitRun(t, s, thread, startRun(t, s, thread, asst).ID, openai.RunStatusRequiresAction)
		if d := run.ExpiresAt - run.CreatedAt; d < 5 || d > 6 {
			t.Errorf("expires_at - created_at = %d, want 5s", d)
		}
		_, ids := requiredCalls(t, run)
		got := waitRun(t, s, thread, run.ID, openai.RunStatusExpired)
		if got.ExpiresAt != 0 || got.RequiredAction.Type != "" || !got.JSON.Usage.Valid() {
			t.Errorf("expired run: expires_at %d required_action %s usage %s", got.ExpiresAt, got.RequiredAction.RawJSON(), got.Usage.RawJSON())
		}
		steps := runSteps(t, s, thread, run.ID)
		if len(steps) != 1 || steps[0].Type != "tool_calls" || steps[0].Status != "expired" || steps[0].ExpiredAt == 0 {
			t.Errorf("steps: %+v", steps)
		}
		_, err := s.Client.Beta.Threads.Runs.SubmitToolOutputs(ctx, thread, run.ID, outputs(ids, "late"))
		if ae := apiError(t, err); ae.StatusCode != 400 {
			t.Errorf("submit after expiry: %d %q", ae.StatusCode, ae.Message)
		}
	})

	t.Run("while streaming", func(t *testing.T) {
		t.Parallel()
		thread := threadWith(t, s, "expire slowly [[slow 200ms]] [[chunks 100]]")
		st := streamRun(t, s, thread, asst)
		evs := st.all()
		names := slices.DeleteFunc(eventNames(evs), func(n string) bool { return n == "thread.message.delta+" })
		want := []string{"thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.step.created",
			"thread.run.step.in_progress", "thread.message.created", "thread.message.in_progress", "thread.message.incomplete",
			"thread.run.step.expired", "thread.run.expired", "done"}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("events, deltas left out (-want +got):\n%s", diff)
		}
		var m openai.Message
		eventData(t, evs, "thread.message.incomplete", &m)
		if m.IncompleteDetails.Reason != "run_expired" || messageText(m) == "" || messageText(m) != deltaText(t, evs) {
			t.Errorf("message: %s, text %q, streamed %q", m.IncompleteDetails.RawJSON(), messageText(m), deltaText(t, evs))
		}
		if got := waitRun(t, s, thread, runOf(t, evs).ID); got.Status != openai.RunStatusExpired {
			t.Errorf("run %s", got.Status)
		}
	})
}

func TestRunTokenLimits(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := context.Background()
	asst := newAssistant(t, s)

	t.Run("length", func(t *testing.T) {
		t.Parallel()
		thread := threadWith(t, s, "[[length]] cut short")
		run := waitRun(t, s, thread, startRun(t, s, thread, asst).ID)
		if run.Status != openai.RunStatusIncomplete || run.IncompleteDetails.Reason != "max_completion_tokens" || run.CompletedAt == 0 {
			t.Errorf("run: %s incomplete_details %s", run.Status, run.IncompleteDetails.RawJSON())
		}
		msgs := runMessages(t, s, thread)
		m := msgs[len(msgs)-1]
		if m.Role != "assistant" || m.Status != "incomplete" || m.IncompleteDetails.Reason != "max_tokens" || messageText(m) != "You said: cut short" {
			t.Errorf("message: %s %s %s %q", m.Role, m.Status, m.IncompleteDetails.RawJSON(), messageText(m))
		}
	})

	t.Run("max_prompt_tokens", func(t *testing.T) {
		t.Parallel()
		thread := threadWith(t, s, "huge marker "+strings.Repeat("lorem ipsum dolor ", 700))
		run, err := s.Client.Beta.Threads.Runs.New(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst, MaxPromptTokens: openai.Int(256)})
		if err != nil {
			t.Fatal(err)
		}
		run = waitRun(t, s, thread, run.ID)
		if run.Status != openai.RunStatusIncomplete || run.IncompleteDetails.Reason != "max_prompt_tokens" {
			t.Errorf("run: %s incomplete_details %s last_error %s", run.Status, run.IncompleteDetails.RawJSON(), run.LastError.RawJSON())
		}
		if n := len(requestsWith(up, "huge marker")); n != 0 {
			t.Errorf("the upstream got %d requests over the prompt budget", n)
		}
	})

	t.Run("max_prompt_tokens reached by a tool output", func(t *testing.T) {
		t.Parallel()
		thread := threadWith(t, s, `big output [[call get_time {"tz":"UTC"}]]`)
		run, err := s.Client.Beta.Threads.Runs.New(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst, MaxPromptTokens: openai.Int(256)})
		if err != nil {
			t.Fatal(err)
		}
		run = waitRun(t, s, thread, run.ID, openai.RunStatusRequiresAction)
		_, ids := requiredCalls(t, run)
		body := string(mustJSON(t, map[string]any{"stream": true, "tool_outputs": []map[string]string{
			{"tool_call_id": ids[0], "output": strings.Repeat("lorem ipsum dolor ", 300)}}}))
		evs := s.openStream(t, "/v1/threads/"+thread+"/runs/"+run.ID+"/submit_tool_outputs", body).all()
		want := []string{"thread.run.step.completed", "thread.run.queued", "thread.run.in_progress", "thread.run.incomplete", "done"}
		if diff := cmp.Diff(want, eventNames(evs)); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		run = waitRun(t, s, thread, run.ID)
		if run.Status != openai.RunStatusIncomplete || run.IncompleteDetails.Reason != "max_prompt_tokens" || !run.JSON.Usage.Valid() {
			t.Errorf("run %s incomplete_details %s usage %s", run.Status, run.IncompleteDetails.RawJSON(), run.Usage.RawJSON())
		}
		if n := len(requestsWith(up, "big output")); n != 1 {
			t.Errorf("upstream got %d requests, want only the first", n)
		}
		if steps := runSteps(t, s, thread, run.ID); len(steps) != 1 || steps[0].Status != "completed" {
			t.Errorf("steps %+v", steps)
		}
	})

	t.Run("max_prompt_tokens drops the oldest messages", func(t *testing.T) {
		t.Parallel()
		long := strings.Repeat("filler text here ", 40)
		thread := threadWith(t, s, "old one "+long, "old two "+long, "old three "+long, "fit marker")
		run, err := s.Client.Beta.Threads.Runs.New(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst, MaxPromptTokens: openai.Int(256)})
		if err != nil {
			t.Fatal(err)
		}
		if run = waitRun(t, s, thread, run.ID); run.Status != openai.RunStatusCompleted {
			t.Fatalf("run %s %s", run.Status, run.IncompleteDetails.RawJSON())
		}
		reqs := requestsWith(up, "fit marker")
		if len(reqs) != 1 {
			t.Fatalf("%d requests", len(reqs))
		}
		turns := chatTurns(reqs[0])
		if turns[len(turns)-1] != "user: fit marker" || slices.ContainsFunc(turns, func(s string) bool { return strings.HasPrefix(s, "user: old one") }) {
			t.Errorf("upstream messages %q: want the newest kept and the oldest dropped", turns)
		}
	})

	t.Run("max_completion_tokens spans the run's turns", func(t *testing.T) {
		t.Parallel()
		thread := threadWith(t, s, `budget [[call get_time {"tz":"UTC"}]]`)
		run, err := s.Client.Beta.Threads.Runs.New(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst, MaxCompletionTokens: openai.Int(300)})
		if err != nil {
			t.Fatal(err)
		}
		run = waitRun(t, s, thread, run.ID, openai.RunStatusRequiresAction)
		_, ids := requiredCalls(t, run)
		if _, err := s.Client.Beta.Threads.Runs.SubmitToolOutputs(ctx, thread, run.ID, outputs(ids, "noon")); err != nil {
			t.Fatal(err)
		}
		if run = waitRun(t, s, thread, run.ID); run.Status != openai.RunStatusCompleted {
			t.Fatalf("run %s", run.Status)
		}
		reqs := requestsWith(up, "budget [[call")
		if len(reqs) != 2 || reqs[0].MaxCompletionTokens == nil || reqs[1].MaxCompletionTokens == nil {
			t.Fatalf("requests: %+v", reqs)
		}
		// The first turn's call cost 8 completion tokens (the upstream's count).
		if a, b := *reqs[0].MaxCompletionTokens, *reqs[1].MaxCompletionTokens; a != 300 || b != 292 {
			t.Errorf("max_completion_tokens sent: %d then %d, want 300 then 292", a, b)
		}
	})

	t.Run("truncation keeps the run's own tool round", func(t *testing.T) {
		t.Parallel()
		thread := threadWith(t, s, "older context", `trunc tools [[call get_time {"tz":"UTC"}]]`)
		run, err := s.Client.Beta.Threads.Runs.New(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst,
			TruncationStrategy: openai.BetaThreadRunNewParamsTruncationStrategy{Type: "last_messages", LastMessages: openai.Int(1)}})
		if err != nil {
			t.Fatal(err)
		}
		run = waitRun(t, s, thread, run.ID, openai.RunStatusRequiresAction)
		_, ids := requiredCalls(t, run)
		if _, err := s.Client.Beta.Threads.Runs.SubmitToolOutputs(ctx, thread, run.ID, outputs(ids, "noon")); err != nil {
			t.Fatal(err)
		}
		if run = waitRun(t, s, thread, run.ID); run.Status != openai.RunStatusCompleted {
			t.Fatalf("run %s", run.Status)
		}
		reqs := requestsWith(up, "trunc tools")
		if len(reqs) != 2 {
			t.Fatalf("%d requests", len(reqs))
		}
		q := `user: trunc tools [[call get_time {"tz":"UTC"}]]`
		want := [][]string{{"system: Be brief.", q},
			{"system: Be brief.", q, `assistant: get_time({"tz":"UTC"})#` + ids[0], "tool[" + ids[0] + "]: noon"}}
		if diff := cmp.Diff(want, [][]string{chatTurns(reqs[0]), chatTurns(reqs[1])}); diff != "" {
			t.Errorf("upstream messages (-want +got):\n%s", diff)
		}
	})

	t.Run("truncation last_messages", func(t *testing.T) {
		t.Parallel()
		thread := threadWith(t, s, "trunc one", "trunc two", "trunc three", "trunc four")
		run, err := s.Client.Beta.Threads.Runs.New(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst,
			TruncationStrategy: openai.BetaThreadRunNewParamsTruncationStrategy{Type: "last_messages", LastMessages: openai.Int(2)}})
		if err != nil {
			t.Fatal(err)
		}
		if run = waitRun(t, s, thread, run.ID); run.Status != openai.RunStatusCompleted {
			t.Fatalf("run %s", run.Status)
		}
		reqs := requestsWith(up, "trunc four")
		if len(reqs) != 1 {
			t.Fatalf("%d requests", len(reqs))
		}
		if diff := cmp.Diff([]string{"system: Be brief.", "user: trunc three", "user: trunc four"}, chatTurns(reqs[0])); diff != "" {
			t.Errorf("upstream messages (-want +got):\n%s", diff)
		}
	})
}

func TestRunUpstreamFailures(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t, "--upstream-retries", "1")
	asst := newAssistant(t, s)
	tests := []struct {
		name, text string
		status     openai.RunStatus
		code       string
		message    string
	}{
		{"500", "[[status 500]] always broken", openai.RunStatusFailed, "server_error", "500"},
		{"429", "[[status 429]] too busy", openai.RunStatusFailed, "rate_limit_exceeded", "429"},
		{"500 once", "[[status 500 1]] flaky once", openai.RunStatusCompleted, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			thread := threadWith(t, s, tc.text)
			evs := streamRun(t, s, thread, asst).all()
			run := waitRun(t, s, thread, runOf(t, evs).ID)
			if run.Status != tc.status || run.LastError.Code != tc.code || !strings.Contains(run.LastError.Message, tc.message) {
				t.Errorf("run %s last_error %s; want %s with %s naming %q", run.Status, run.LastError.RawJSON(), tc.status, tc.code, tc.message)
			}
			if n := len(requestsWith(up, tc.text)); n != 2 {
				t.Errorf("upstream got %d requests, want 2 (one retry)", n)
			}
			if tc.status == openai.RunStatusFailed {
				if run.FailedAt == 0 || run.LastError.Message == "" {
					t.Errorf("failed run: failed_at %d", run.FailedAt)
				}
				want := []string{"thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.failed", "done"}
				if diff := cmp.Diff(want, eventNames(evs)); diff != "" {
					t.Errorf("events (-want +got):\n%s", diff)
				}
			} else if text := lastAssistantText(t, s, thread); text != "You said: flaky once" {
				t.Errorf("answer %q", text)
			}
		})
	}
}

func TestRunSurvivesRestarts(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := context.Background()
	asst := newAssistant(t, s)

	// A run waiting for tool outputs.
	waiting := threadWith(t, s, `wait across restarts [[call get_weather {"city":"Oslo"}]]`)
	wrun := waitRun(t, s, waiting, startRun(t, s, waiting, asst).ID, openai.RunStatusRequiresAction)
	_, ids := requiredCalls(t, wrun)

	// A run killed while streaming a function call.
	calling := threadWith(t, s, `crash while calling [[slow 500ms]] [[call get_weather {"city":"Trondheim"}]]`)
	cst := streamRun(t, s, calling, asst)
	crun := runOf(t, cst.until("thread.run.step.delta"))

	// A run killed while streaming its answer.
	busy := threadWith(t, s, "survive a crash [[slow 50ms]] [[chunks 40]]")
	st := streamRun(t, s, busy, asst)
	brun := runOf(t, st.until("thread.message.delta"))
	s.kill(t)
	st.close()
	cst.close()
	s.restart(t)

	// The interrupted call is made again, in one tool step.
	crun2 := waitRun(t, s, calling, crun.ID, openai.RunStatusRequiresAction)
	if calls, _ := requiredCalls(t, crun2); !slices.Equal(calls, []string{`get_weather({"city":"Trondheim"})`}) {
		t.Errorf("calls after the crash: %q", calls)
	}
	if steps := runSteps(t, s, calling, crun.ID); len(steps) != 1 || steps[0].Status != "in_progress" || len(steps[0].StepDetails.ToolCalls) != 1 {
		t.Errorf("steps of the run killed while calling: %+v", steps)
	}

	got := waitRun(t, s, busy, brun.ID)
	if got.Status != openai.RunStatusCompleted {
		t.Fatalf("killed run after restart: %s %s", got.Status, got.LastError.RawJSON())
	}
	msgs := runMessages(t, s, busy)
	var assistant []string
	for _, m := range msgs {
		if m.Role == "assistant" {
			assistant = append(assistant, string(m.Status)+": "+messageText(m))
		}
	}
	if diff := cmp.Diff([]string{"completed: " + words(40)}, assistant); diff != "" {
		t.Errorf("assistant messages of the killed run (-want +got):\n%s", diff)
	}
	steps := runSteps(t, s, busy, brun.ID)
	for _, st := range steps {
		if st.Status != "completed" {
			t.Errorf("step %s left %s", st.ID, st.Status)
		}
	}
	if len(steps) != 1 || steps[0].StepDetails.MessageCreation.MessageID != msgs[len(msgs)-1].ID {
		t.Errorf("steps of the killed run: %+v", steps)
	}
	if n := len(requestsWith(up, "survive a crash")); n != 2 {
		t.Errorf("upstream got %d requests, want 2 (the interrupted one and the resumed one)", n)
	}

	// The waiting run still waits, through a graceful restart too.
	s.restart(t)
	again, err := s.Client.Beta.Threads.Runs.Get(ctx, waiting, wrun.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ids2 := requiredCalls(t, again); !slices.Equal(ids, ids2) {
		t.Errorf("required calls after restarts %v, want %v", ids2, ids)
	}
	// Streaming the submission works on the restarted server's fresh hub.
	body := `{"stream":true,"tool_outputs":[{"tool_call_id":"` + ids[0] + `","output":"cold"}]}`
	evs := s.openStream(t, "/v1/threads/"+waiting+"/runs/"+wrun.ID+"/submit_tool_outputs", body).all()
	if diff := cmp.Diff(withDone(toolStreamB), eventNames(evs)); diff != "" {
		t.Errorf("stream B after restarts (-want +got):\n%s", diff)
	}
	if got := waitRun(t, s, waiting, wrun.ID); got.Status != openai.RunStatusCompleted {
		t.Fatalf("run %s", got.Status)
	}
	if text := lastAssistantText(t, s, waiting); text != "Tool results: cold" {
		t.Errorf("answer %q", text)
	}
}

func TestRunOneActivePerThread(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	ctx := context.Background()
	asst := newAssistant(t, s)
	// The winning run lasts long enough (10s) to stay active through the race.
	thread := threadWith(t, s, "race [[slow 100ms]] [[chunks 100]]")
	const n = 20
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		ok    []string
		other []string
	)
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			run, err := s.Client.Beta.Threads.Runs.New(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok = append(ok, run.ID)
				return
			}
			var ae *openai.Error
			if errors.As(err, &ae) && ae.StatusCode == 400 && strings.Contains(ae.Message, "already has an active run") {
				return
			}
			other = append(other, err.Error())
		}()
	}
	close(start)
	wg.Wait()
	if len(ok) != 1 || len(other) != 0 {
		t.Fatalf("%d runs created (want 1); unexpected errors: %q", len(ok), other)
	}
	page, err := s.Client.Beta.Threads.Runs.List(ctx, thread, openai.BetaThreadRunListParams{})
	if err != nil || len(page.Data) != 1 {
		t.Errorf("runs on the thread: %v %d, want 1", err, len(page.Data))
	}
	if page.Data[0].Status == openai.RunStatusCompleted {
		t.Fatalf("the winning run ended during the race; the test proves nothing")
	}
	if _, err := s.Client.Beta.Threads.Runs.Cancel(ctx, thread, ok[0]); err != nil {
		t.Fatal(err)
	}
	if got := waitRun(t, s, thread, ok[0]); got.Status != openai.RunStatusCancelled {
		t.Errorf("run %s", got.Status)
	}
	// With the run over, the thread takes a new one.
	addMessage(t, s, thread, "again")
	if got := waitRun(t, s, thread, startRun(t, s, thread, asst).ID); got.Status != openai.RunStatusCompleted {
		t.Errorf("next run %s", got.Status)
	}
}

// upstreamUsage is the usage the scripted upstream reports for a request
// answered with text and calls function calls.
func upstreamUsage(r upstream.Request, text string, calls int) [3]int64 {
	var prompt int64
	for _, m := range r.Messages {
		prompt += int64(len(strings.Fields(m.Text())) + 4)
	}
	completion := int64(len(strings.Fields(text)) + calls*8)
	return [3]int64{prompt, completion, prompt + completion}
}

func TestRunUsage(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := context.Background()
	asst := newAssistant(t, s)

	thread := threadWith(t, s, `usage [[call get_weather {"city":"Oslo"}]]`)
	run := waitRun(t, s, thread, startRun(t, s, thread, asst).ID, openai.RunStatusRequiresAction)
	if run.JSON.Usage.Valid() {
		t.Errorf("usage %s while waiting, want null until terminal", run.Usage.RawJSON())
	}
	_, ids := requiredCalls(t, run)
	if _, err := s.Client.Beta.Threads.Runs.SubmitToolOutputs(ctx, thread, run.ID, outputs(ids, "sunny")); err != nil {
		t.Fatal(err)
	}
	run = waitRun(t, s, thread, run.ID)
	reqs := requestsWith(up, "usage [[call")
	steps := runSteps(t, s, thread, run.ID)
	if len(reqs) != 2 || len(steps) != 2 {
		t.Fatalf("%d requests, %d steps; want 2 each", len(reqs), len(steps))
	}
	want := [][3]int64{upstreamUsage(reqs[0], "", 1), upstreamUsage(reqs[1], "Tool results: sunny", 0)}
	var got [][3]int64
	var sum [3]int64
	for _, st := range steps {
		if !st.JSON.Usage.Valid() {
			t.Errorf("step %s (%s) has no usage", st.ID, st.Type)
		}
		u := [3]int64{st.Usage.PromptTokens, st.Usage.CompletionTokens, st.Usage.TotalTokens}
		got = append(got, u)
		for i := range sum {
			sum[i] += u[i]
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("step usage vs what the upstream reported (-want +got):\n%s", diff)
	}
	if r := [3]int64{run.Usage.PromptTokens, run.Usage.CompletionTokens, run.Usage.TotalTokens}; !run.JSON.Usage.Valid() || r != sum {
		t.Errorf("run usage %v, want the sum of its steps %v", r, sum)
	}

	// Without upstream usage, the counts are estimated, never null or zero.
	thread = threadWith(t, s, "[[nousage]] estimate this answer")
	run = waitRun(t, s, thread, startRun(t, s, thread, asst).ID)
	steps = runSteps(t, s, thread, run.ID)
	if run.Status != openai.RunStatusCompleted || len(steps) != 1 {
		t.Fatalf("run %s, %d steps", run.Status, len(steps))
	}
	u := steps[0].Usage
	if !steps[0].JSON.Usage.Valid() || u.PromptTokens <= 0 || u.CompletionTokens <= 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Errorf("estimated step usage %s", u.RawJSON())
	}
	if run.Usage.TotalTokens != u.TotalTokens || run.Usage.PromptTokens != u.PromptTokens {
		t.Errorf("run usage %s, step usage %s", run.Usage.RawJSON(), u.RawJSON())
	}
}

func TestRunCancelQueued(t *testing.T) {
	t.Parallel()
	// One worker: while it executes a slow run, a second run stays queued.
	s, up := startRunServer(t, "--workers", "1")
	ctx := context.Background()
	asst := newAssistant(t, s)
	busy := threadWith(t, s, "occupy the worker [[slow 50ms]] [[chunks 40]]")
	st := streamRun(t, s, busy, asst)
	brun := runOf(t, st.until("thread.message.delta"))

	thread := threadWith(t, s, "never started")
	qst := streamRun(t, s, thread, asst)
	qrun := runOf(t, qst.until("thread.run.queued"))
	got, err := s.Client.Beta.Threads.Runs.Cancel(ctx, thread, qrun.ID)
	if err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if got.Status != openai.RunStatusCancelling && got.Status != openai.RunStatusCancelled {
		t.Errorf("cancel answered %s", got.Status)
	}
	want := []string{"thread.run.cancelling", "thread.run.cancelled", "done"}
	if diff := cmp.Diff(want, eventNames(qst.all())); diff != "" {
		t.Errorf("queued run's events after cancel (-want +got):\n%s", diff)
	}
	if got := waitRun(t, s, thread, qrun.ID); got.Status != openai.RunStatusCancelled || got.StartedAt != 0 || got.CancelledAt == 0 {
		t.Errorf("run %s started_at %d cancelled_at %d", got.Status, got.StartedAt, got.CancelledAt)
	}
	// The busy run finishes; the cancelled one never reaches the upstream.
	if got := waitRun(t, s, busy, brun.ID); got.Status != openai.RunStatusCompleted {
		t.Errorf("busy run %s", got.Status)
	}
	st.all()
	if steps := runSteps(t, s, thread, qrun.ID); len(steps) != 0 {
		t.Errorf("cancelled queued run has %d steps", len(steps))
	}
	if n := len(requestsWith(up, "never started")); n != 0 {
		t.Errorf("upstream got %d requests for the cancelled run", n)
	}
	if n := len(runMessages(t, s, thread)); n != 1 {
		t.Errorf("%d messages on the cancelled run's thread, want 1", n)
	}
}

func TestRunConcurrentSubmits(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	ctx := context.Background()
	asst := newAssistant(t, s)
	thread := threadWith(t, s, `submit race [[call get_time {"tz":"UTC"}]]`)
	run := waitRun(t, s, thread, startRun(t, s, thread, asst).ID, openai.RunStatusRequiresAction)
	_, ids := requiredCalls(t, run)
	const n = 10
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		ok    int
		other []string
	)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Client.Beta.Threads.Runs.SubmitToolOutputs(ctx, thread, run.ID, outputs(ids, fmt.Sprintf("answer %d", i)))
			mu.Lock()
			defer mu.Unlock()
			var ae *openai.Error
			switch {
			case err == nil:
				ok++
			case errors.As(err, &ae) && ae.StatusCode == 400:
			default:
				other = append(other, err.Error())
			}
		}()
	}
	close(start)
	wg.Wait()
	if ok != 1 || len(other) != 0 {
		t.Fatalf("%d submissions accepted (want 1); unexpected errors: %q", ok, other)
	}
	if got := waitRun(t, s, thread, run.ID); got.Status != openai.RunStatusCompleted {
		t.Fatalf("run %s", got.Status)
	}
	if n := len(requestsWith(up, "submit race")); n != 2 {
		t.Errorf("upstream got %d requests, want 2: the run continued once", n)
	}
	var answers []string
	for _, m := range runMessages(t, s, thread) {
		if m.Role == "assistant" {
			answers = append(answers, messageText(m))
		}
	}
	if len(answers) != 1 || !strings.HasPrefix(answers[0], "Tool results: answer ") {
		t.Errorf("assistant answers %q, want one", answers)
	}
}

func TestRunUpstreamBroken(t *testing.T) {
	t.Parallel()
	up := upstream.New()
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	// A second provider on a port nothing listens on.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	file := filepath.Join(t.TempDir(), "providers.yaml")
	if err := os.WriteFile(file, []byte("providers:\n  - name: gone\n    base_url: "+deadURL+"/v1\n    models: [\"gone-model\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--upstream-url", srv.URL+"/v1", "--upstream-retries", "0", "--providers", file)
	asst := newAssistant(t, s)

	t.Run("connection lost mid-answer", func(t *testing.T) {
		thread := threadWith(t, s, "lose the line [[slow 50ms]] [[chunks 100]]")
		st := streamRun(t, s, thread, asst)
		head := st.until("thread.message.delta")
		srv.CloseClientConnections()
		rest := st.all()
		names := slices.DeleteFunc(eventNames(rest), func(n string) bool { return n == "thread.message.delta+" })
		want := []string{"thread.message.incomplete", "thread.run.step.failed", "thread.run.failed", "done"}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("events after the upstream dropped, deltas left out (-want +got):\n%s", diff)
		}
		run := waitRun(t, s, thread, runOf(t, head).ID)
		if run.Status != openai.RunStatusFailed || run.LastError.Code != "server_error" || run.LastError.Message == "" || run.FailedAt == 0 {
			t.Errorf("run %s last_error %s failed_at %d", run.Status, run.LastError.RawJSON(), run.FailedAt)
		}
		steps := runSteps(t, s, thread, run.ID)
		if len(steps) != 1 || steps[0].Status != "failed" || steps[0].FailedAt == 0 || steps[0].LastError.Code != "server_error" {
			t.Fatalf("steps: %+v", steps)
		}
		m := getMessage(t, s, thread, steps[0].StepDetails.MessageCreation.MessageID)
		text := messageText(*m)
		if m.Status != "incomplete" || m.IncompleteDetails.Reason != "run_failed" || text == "" || text != deltaText(t, append(head, rest...)) ||
			!strings.HasPrefix(words(100), text) {
			t.Errorf("message %s %s, text %q", m.Status, m.IncompleteDetails.RawJSON(), text)
		}
	})

	t.Run("unreachable provider", func(t *testing.T) {
		gone := newAssistant(t, s, openai.BetaAssistantNewParams{Model: "gone-model"})
		thread := threadWith(t, s, "anyone there?")
		run := waitRun(t, s, thread, startRun(t, s, thread, gone).ID)
		if run.Status != openai.RunStatusFailed || run.LastError.Code != "server_error" || !strings.Contains(run.LastError.Message, "gone") {
			t.Errorf("run %s last_error %s", run.Status, run.LastError.RawJSON())
		}
		if steps := runSteps(t, s, thread, run.ID); len(steps) != 0 {
			t.Errorf("%d steps, want none", len(steps))
		}
	})
}

func TestRunExpiresWhileDown(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t, "--run-timeout", "5s")
	asst := newAssistant(t, s)
	thread := threadWith(t, s, `expire while down [[call get_time {"tz":"UTC"}]]`)
	run := waitRun(t, s, thread, startRun(t, s, thread, asst).ID, openai.RunStatusRequiresAction)
	s.kill(t)
	for time.Now().Unix() <= run.ExpiresAt { // the condition: the deadline passes while nothing runs
		time.Sleep(50 * time.Millisecond)
	}
	s.restart(t)
	got := waitRun(t, s, thread, run.ID, openai.RunStatusExpired)
	if steps := runSteps(t, s, thread, run.ID); len(steps) != 1 || steps[0].Status != "expired" {
		t.Errorf("steps %+v", steps)
	}
	if got.ExpiresAt != 0 || got.RequiredAction.Type != "" {
		t.Errorf("expired run: expires_at %d required_action %s", got.ExpiresAt, got.RequiredAction.RawJSON())
	}
}

// TestRunCancelSubmitRace cancels runs while their tool outputs are being
// submitted: whichever wins, every run ends terminal with no open step.
func TestRunCancelSubmitRace(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	ctx := context.Background()
	asst := newAssistant(t, s)
	const n = 8
	var wg sync.WaitGroup
	var raced [][2]string
	for i := range n {
		thread := threadWith(t, s, fmt.Sprintf(`race %d [[call get_time {"tz":"UTC"}]]`, i))
		run := waitRun(t, s, thread, startRun(t, s, thread, asst).ID, openai.RunStatusRequiresAction)
		_, ids := requiredCalls(t, run)
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := make(chan struct{})
			var inner sync.WaitGroup
			var submitErr, cancelErr error
			inner.Add(2)
			go func() {
				defer inner.Done()
				<-start
				_, submitErr = s.Client.Beta.Threads.Runs.SubmitToolOutputs(ctx, thread, run.ID, outputs(ids, "noon"))
			}()
			go func() {
				defer inner.Done()
				<-start
				_, cancelErr = s.Client.Beta.Threads.Runs.Cancel(ctx, thread, run.ID)
			}()
			close(start)
			inner.Wait()
			if submitErr != nil && cancelErr != nil {
				t.Errorf("run %d: both refused: %v / %v", i, submitErr, cancelErr)
			}
		}()
		raced = append(raced, [2]string{thread, run.ID})
	}
	wg.Wait()
	for i, r := range raced {
		thread, runID := r[0], r[1]
		got := waitRun(t, s, thread, runID)
		if got.Status != openai.RunStatusCancelled && got.Status != openai.RunStatusCompleted {
			t.Errorf("run %d ended %s", i, got.Status)
		}
		for _, st := range runSteps(t, s, thread, runID) {
			if st.Status == "in_progress" {
				t.Errorf("run %d (%s) left step %s in progress", i, got.Status, st.ID)
			}
		}
	}
}
