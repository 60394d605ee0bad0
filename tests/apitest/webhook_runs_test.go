package apitest

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

// stockTool is a third function, left to the client in the mixed tests.
var stockTool = openai.AssistantToolParamOfFunction(shared.FunctionDefinitionParam{
	Name:       "get_stock",
	Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"sym": map[string]any{"type": "string"}}},
})

// hookRequest is one delivery a receiver saw.
type hookRequest struct {
	ID      string // webhook-id
	Payload struct {
		Type       string `json:"type"`
		ToolCallID string `json:"tool_call_id"`
		Function   struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
		RunID       string `json:"run_id"`
		ThreadID    string `json:"thread_id"`
		AssistantID string `json:"assistant_id"`
		CreatedAt   int64  `json:"created_at"`
	}
}

// hookReceiver is a webhook endpoint started by a test: it checks every
// delivery's signature with its secret and answers with answer(n, w, r),
// n counting requests from 1.
type hookReceiver struct {
	t       testing.TB
	srv     *httptest.Server
	secret  string
	answer  func(n int, w http.ResponseWriter, r *http.Request)
	mu      sync.Mutex
	reqs    []hookRequest
	arrived chan hookRequest
}

func newHookReceiver(t testing.TB, answer func(n int, w http.ResponseWriter, r *http.Request)) *hookReceiver {
	t.Helper()
	h := &hookReceiver{t: t, answer: answer, arrived: make(chan hookRequest, 64)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		secret := h.secret
		h.mu.Unlock()
		if !verifySignature(secret, r.Header, body) {
			t.Errorf("delivery %s with a bad signature", r.Header.Get("webhook-id"))
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		ts, err := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
		if err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute {
			t.Errorf("webhook-timestamp %q", r.Header.Get("webhook-timestamp"))
		}
		req := hookRequest{ID: r.Header.Get("webhook-id")}
		if err := json.Unmarshal(body, &req.Payload); err != nil {
			t.Errorf("payload: %v", err)
		}
		h.mu.Lock()
		h.reqs = append(h.reqs, req)
		n := len(h.reqs)
		h.mu.Unlock()
		h.arrived <- req
		h.answer(n, w, r)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.reqs)
}

// configure points the assistant's function at the receiver, with the
// extra settings given as JSON members, and keeps the secret it was given.
func (h *hookReceiver) configure(t testing.TB, s *server, assistantID, function, extra string) {
	t.Helper()
	body := `{"url":"` + h.srv.URL + `/hook"`
	if extra != "" {
		body += "," + extra
	}
	obj := mustPutWebhook(t, s, assistantID, function, body+"}")
	if obj.Secret == "" {
		t.Fatal("no secret generated")
	}
	h.mu.Lock()
	h.secret = obj.Secret
	h.mu.Unlock()
}

// waitArrival waits for the receiver's next request.
func (h *hookReceiver) waitArrival(t testing.TB) hookRequest {
	t.Helper()
	select {
	case r := <-h.arrived:
		return r
	case <-time.After(runDeadline):
		t.Fatal("no delivery arrived")
		return hookRequest{}
	}
}

func answerOutput(out string) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"output": out})
	}
}

// blockUntilGone holds a request until the client gives up on it.
func blockUntilGone(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// stepCalls returns the run's tool calls as "name(args) -> output" (or
// "-> null"), in order.
func stepCalls(t testing.TB, s *server, threadID, runID string) ([]string, []string) {
	t.Helper()
	var calls, ids []string
	for _, st := range runSteps(t, s, threadID, runID) {
		for _, c := range st.StepDetails.ToolCalls {
			out := "null"
			if c.Function.JSON.Output.Valid() {
				out = c.Function.Output
			}
			calls = append(calls, c.Function.Name+"("+c.Function.Arguments+") -> "+out)
			ids = append(ids, c.ID)
		}
	}
	return calls, ids
}

func newWebhookAssistant(t testing.TB, s *server) string {
	return newAssistant(t, s, openai.BetaAssistantNewParams{Model: "fake-model",
		Tools: []openai.AssistantToolUnionParam{weatherTool, timeTool, stockTool}})
}

func TestWebhookRuns(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t, "--webhook-allow-networks", "127.0.0.0/8")
	ctx := context.Background()

	t.Run("a webhook completes the run", func(t *testing.T) {
		t.Parallel()
		asst := newWebhookAssistant(t, s)
		h := newHookReceiver(t, answerOutput("18C and cloudy"))
		h.configure(t, s, asst, "get_weather", "")
		thread := threadWith(t, s, `hooked weather [[call get_weather {"city":"Paris"}]]`)
		run := startRun(t, s, thread, asst)
		done := waitRun(t, s, thread, run.ID)
		if done.Status != openai.RunStatusCompleted || done.RequiredAction.Type != "" {
			t.Fatalf("run %s (required_action %s), want completed", done.Status, done.RequiredAction.RawJSON())
		}
		calls, ids := stepCalls(t, s, thread, run.ID)
		if diff := cmp.Diff([]string{`get_weather({"city":"Paris"}) -> 18C and cloudy`}, calls); diff != "" {
			t.Fatalf("step calls (-want +got):\n%s", diff)
		}
		// The output reached the model (the fake upstream echoes tool results).
		if got := lastAssistantText(t, s, thread); got != "Tool results: 18C and cloudy" {
			t.Fatalf("answer %q", got)
		}
		var toolMsg bool
		for _, r := range requestsWith(up, "hooked weather") {
			for _, m := range r.Messages {
				toolMsg = toolMsg || (m.Role == "tool" && m.ToolCallID == ids[0] && m.Text() == "18C and cloudy")
			}
		}
		if !toolMsg {
			t.Fatal("no upstream request carried the webhook's output as the tool message")
		}
		reqs := h.requests()
		if len(reqs) != 1 {
			t.Fatalf("%d deliveries, want 1", len(reqs))
		}
		p := reqs[0].Payload
		if p.Type != "function_call" || p.ToolCallID != ids[0] || p.Function.Name != "get_weather" ||
			p.Function.Arguments != `{"city":"Paris"}` || p.RunID != run.ID || p.ThreadID != thread || p.AssistantID != asst ||
			p.CreatedAt == 0 || reqs[0].ID == "" {
			t.Fatalf("delivery %+v", reqs[0])
		}
	})

	t.Run("streamed", func(t *testing.T) {
		t.Parallel()
		asst := newWebhookAssistant(t, s)
		h := newHookReceiver(t, answerOutput("noon"))
		h.configure(t, s, asst, "get_time", "")
		thread := threadWith(t, s, `hooked stream [[call get_time {"tz":"CET"}]]`)
		var streamedOutput string
		got := readSDKStream(t, s.Client.Beta.Threads.Runs.NewStreaming(streamContext(t), thread,
			openai.BetaThreadRunNewParams{AssistantID: asst}), func(ev openai.AssistantStreamEventUnion) {
			if ev.Event == "thread.run.step.delta" {
				for _, tc := range ev.AsThreadRunStepDelta().Data.Delta.StepDetails.ToolCalls {
					streamedOutput += tc.AsFunction().Function.Output
				}
			}
		})
		if slices.Contains(got.names, "thread.run.requires_action") || got.names[len(got.names)-1] != "thread.run.completed" {
			t.Fatalf("events %v: want no requires_action, ending thread.run.completed", got.names)
		}
		if got.text != "Tool results: noon" || streamedOutput != "noon" {
			t.Fatalf("streamed text %q, streamed output %q", got.text, streamedOutput)
		}
		var stepOut string
		for _, st := range got.steps {
			for _, c := range st.StepDetails.ToolCalls {
				stepOut = c.Function.Output
			}
		}
		if stepOut != "noon" {
			t.Fatalf("completed tool step output %q", stepOut)
		}
	})

	t.Run("parallel calls: only the one without a webhook goes to the client", func(t *testing.T) {
		t.Parallel()
		asst := newWebhookAssistant(t, s)
		weather := newHookReceiver(t, answerOutput("sunny"))
		weather.configure(t, s, asst, "get_weather", "")
		clock := newHookReceiver(t, answerOutput("09:00"))
		clock.configure(t, s, asst, "get_time", "")
		thread := threadWith(t, s, `hooked mixed [[call get_weather {"city":"Oslo"}]] [[call get_time {"tz":"CET"}]] [[call get_stock {"sym":"ACME"}]]`)
		run := startRun(t, s, thread, asst)
		run = waitRun(t, s, thread, run.ID, openai.RunStatusRequiresAction)
		required, ids := requiredCalls(t, run)
		if diff := cmp.Diff([]string{`get_stock({"sym":"ACME"})`}, required); diff != "" {
			t.Fatalf("required calls (-want +got):\n%s", diff)
		}
		calls, _ := stepCalls(t, s, thread, run.ID)
		want := []string{`get_weather({"city":"Oslo"}) -> sunny`, `get_time({"tz":"CET"}) -> 09:00`, `get_stock({"sym":"ACME"}) -> null`}
		if diff := cmp.Diff(want, calls); diff != "" {
			t.Fatalf("step calls while waiting (-want +got):\n%s", diff)
		}
		if _, err := s.Client.Beta.Threads.Runs.SubmitToolOutputs(ctx, thread, run.ID, outputs(ids, "42.0")); err != nil {
			t.Fatal(err)
		}
		if done := waitRun(t, s, thread, run.ID); done.Status != openai.RunStatusCompleted {
			t.Fatalf("run %s %+v", done.Status, done.LastError)
		}
		if got := lastAssistantText(t, s, thread); got != "Tool results: sunny; 09:00; 42.0" {
			t.Fatalf("answer %q", got)
		}
		if len(weather.requests()) != 1 || len(clock.requests()) != 1 {
			t.Fatalf("deliveries: weather %d, time %d; want one each", len(weather.requests()), len(clock.requests()))
		}
	})

	t.Run("receiver failing: retries with one webhook-id, then an error output", func(t *testing.T) {
		t.Parallel()
		asst := newWebhookAssistant(t, s)
		h := newHookReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
		})
		h.configure(t, s, asst, "get_weather", `"max_retries":2`)
		thread := threadWith(t, s, `hooked failing [[call get_weather {"city":"Rome"}]]`)
		run := startRun(t, s, thread, asst)
		if done := waitRun(t, s, thread, run.ID); done.Status != openai.RunStatusCompleted {
			t.Fatalf("run %s %+v", done.Status, done.LastError)
		}
		reqs := h.requests()
		if len(reqs) != 3 || reqs[0].ID != reqs[1].ID || reqs[1].ID != reqs[2].ID {
			t.Fatalf("deliveries %+v: want 3 with one webhook-id", reqs)
		}
		calls, _ := stepCalls(t, s, thread, run.ID)
		out := strings.TrimPrefix(calls[0], `get_weather({"city":"Rome"}) -> `)
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(out), &e); err != nil || !strings.Contains(e.Error, "after 3 attempts: HTTP 503") {
			t.Fatalf("output %q: want {\"error\": …after 3 attempts: HTTP 503…}", out)
		}
		if got := lastAssistantText(t, s, thread); got != "Tool results: "+out {
			t.Fatalf("answer %q: the error output did not reach the model", got)
		}
	})

	t.Run("receiver down: connection refused, then an error output", func(t *testing.T) {
		t.Parallel()
		asst := newWebhookAssistant(t, s)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		down := "http://" + ln.Addr().String() + "/hook"
		ln.Close()
		mustPutWebhook(t, s, asst, "get_weather", `{"url":"`+down+`","max_retries":1}`)
		thread := threadWith(t, s, `hooked down [[call get_weather {"city":"Lima"}]]`)
		run := startRun(t, s, thread, asst)
		if done := waitRun(t, s, thread, run.ID); done.Status != openai.RunStatusCompleted {
			t.Fatalf("run %s %+v", done.Status, done.LastError)
		}
		calls, _ := stepCalls(t, s, thread, run.ID)
		if !strings.Contains(calls[0], `{"error":"webhook delivery failed after 2 attempts:`) || !strings.Contains(calls[0], "refused") {
			t.Fatalf("call %s: want an error output after 2 attempts, connection refused", calls[0])
		}
	})

	t.Run("receiver failing with on_failure requires_action", func(t *testing.T) {
		t.Parallel()
		asst := newWebhookAssistant(t, s)
		h := newHookReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
		h.configure(t, s, asst, "get_weather", `"max_retries":1,"on_failure":"requires_action"`)
		thread := threadWith(t, s, `hooked to client [[call get_weather {"city":"Bern"}]]`)
		run := startRun(t, s, thread, asst)
		run = waitRun(t, s, thread, run.ID, openai.RunStatusRequiresAction)
		required, ids := requiredCalls(t, run)
		if diff := cmp.Diff([]string{`get_weather({"city":"Bern"})`}, required); diff != "" {
			t.Fatalf("required calls (-want +got):\n%s", diff)
		}
		if reqs := h.requests(); len(reqs) != 2 || reqs[0].ID != reqs[1].ID || reqs[0].Payload.ToolCallID != ids[0] {
			t.Fatalf("deliveries %+v: want 2 of call %s with one webhook-id", reqs, ids[0])
		}
		if _, err := s.Client.Beta.Threads.Runs.SubmitToolOutputs(ctx, thread, run.ID, outputs(ids, "by hand")); err != nil {
			t.Fatal(err)
		}
		if done := waitRun(t, s, thread, run.ID); done.Status != openai.RunStatusCompleted {
			t.Fatalf("run %s", done.Status)
		}
		if got := lastAssistantText(t, s, thread); got != "Tool results: by hand" {
			t.Fatalf("answer %q", got)
		}
	})

	t.Run("timeouts", func(t *testing.T) {
		t.Parallel()
		asst := newWebhookAssistant(t, s)
		h := newHookReceiver(t, blockUntilGone)
		h.configure(t, s, asst, "get_weather", `"timeout_ms":300,"max_retries":1`)
		thread := threadWith(t, s, `hooked slow [[call get_weather {"city":"Kyiv"}]]`)
		run := startRun(t, s, thread, asst)
		if done := waitRun(t, s, thread, run.ID); done.Status != openai.RunStatusCompleted {
			t.Fatalf("run %s %+v", done.Status, done.LastError)
		}
		calls, _ := stepCalls(t, s, thread, run.ID)
		if !strings.Contains(calls[0], "after 2 attempts: no response within 300ms") {
			t.Fatalf("call %s: want a timeout error output", calls[0])
		}
		if n := len(h.requests()); n != 2 {
			t.Fatalf("%d deliveries, want 2", n)
		}
	})

	t.Run("cancel during a slow delivery", func(t *testing.T) {
		t.Parallel()
		asst := newWebhookAssistant(t, s)
		gone := make(chan struct{})
		h := newHookReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
			close(gone)
		})
		h.configure(t, s, asst, "get_weather", `"timeout_ms":60000,"max_retries":0`)
		thread := threadWith(t, s, `hooked cancel [[call get_weather {"city":"Nice"}]]`)
		run := startRun(t, s, thread, asst)
		h.waitArrival(t)
		if _, err := s.Client.Beta.Threads.Runs.Cancel(ctx, thread, run.ID); err != nil {
			t.Fatal(err)
		}
		if done := waitRun(t, s, thread, run.ID); done.Status != openai.RunStatusCancelled {
			t.Fatalf("run %s, want cancelled", done.Status)
		}
		select {
		case <-gone: // the delivery's connection was closed
		case <-time.After(runDeadline):
			t.Fatal("the delivery went on after the run was cancelled")
		}
	})
}

// TestWebhookRunSurvivesKill kills the server while a delivery is in
// flight: after the restart the call is delivered again with the same
// webhook-id and the run completes once.
func TestWebhookRunSurvivesKill(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t, "--webhook-allow-networks", "127.0.0.0/8")
	asst := newWebhookAssistant(t, s)
	h := newHookReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			<-r.Context().Done() // the server dies while this one is pending
			return
		}
		answerOutput("after restart")(n, w, r)
	})
	h.configure(t, s, asst, "get_weather", `"timeout_ms":60000`)
	thread := threadWith(t, s, `hooked kill [[call get_weather {"city":"Porto"}]]`)
	run := startRun(t, s, thread, asst)
	first := h.waitArrival(t)
	s.kill(t)
	s.start(t)
	done := waitRun(t, s, thread, run.ID)
	if done.Status != openai.RunStatusCompleted {
		t.Fatalf("run %s %+v", done.Status, done.LastError)
	}
	reqs := h.requests()
	if len(reqs) != 2 || reqs[1].ID != first.ID || reqs[1].Payload.ToolCallID != first.Payload.ToolCallID {
		t.Fatalf("deliveries %+v: want the same call delivered again with webhook-id %s", reqs, first.ID)
	}
	calls, ids := stepCalls(t, s, thread, run.ID)
	if diff := cmp.Diff([]string{`get_weather({"city":"Porto"}) -> after restart`}, calls); diff != "" || ids[0] != first.Payload.ToolCallID {
		t.Fatalf("step calls (-want +got):\n%s", diff)
	}
	var answers int
	for _, m := range runMessages(t, s, thread) {
		if m.Role == "assistant" {
			answers++
		}
	}
	if answers != 1 || lastAssistantText(t, s, thread) != "Tool results: after restart" {
		t.Fatalf("%d assistant messages, last %q; want one answer", answers, lastAssistantText(t, s, thread))
	}
}
