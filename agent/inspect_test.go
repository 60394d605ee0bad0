package agent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/tests/upstream"
)

const inspectKeySecret = "sk-upstream-secret-0123456789"

// inspectFixture is a real store, the scripted upstream over real HTTP,
// a provider client as the engine builds it, and an engine with an
// inspector: the lead's turn loop wraps its requests in inspectContext,
// and these tests call the provider client the same way.
func inspectFixture(t *testing.T) (*Engine, *Provider, *db.Store, db.Run) {
	t.Helper()
	ctx := context.Background()
	store, err := db.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv := httptest.NewServer(upstream.New())
	t.Cleanup(srv.Close)
	ps, err := NewProviders([]ProviderConfig{{Name: "fake", BaseURL: srv.URL + "/v1", APIKey: inspectKeySecret, Models: []string{"*"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ps.For("gpt-test")
	_, run, err := store.CreateThreadAndRun(ctx, db.Thread{}, nil, db.Run{AssistantID: "asst_x", Model: "gpt-test",
		TruncationStrategy: &db.TruncationStrategy{Type: "auto"}, ToolChoice: json.RawMessage(`"auto"`)})
	if err != nil {
		t.Fatal(err)
	}
	e := New(store, ps, NewHub(time.Minute), slog.New(slog.DiscardHandler), Config{})
	e.EnableInspector(NewInspector(store, time.Hour, nil))
	return e, p, store, run
}

func userParams(text string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Model: "gpt-test",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}}
}

func exchangesOf(t *testing.T, store *db.Store, run db.Run) []db.Exchange {
	t.Helper()
	list, err := store.RunExchanges(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []db.Exchange
	for _, x := range list {
		full, err := store.GetExchange(context.Background(), run.ThreadID, x.ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, full)
	}
	return out
}

func TestInspectorRecordsStreamedExchangeRedacted(t *testing.T) {
	e, p, store, run := inspectFixture(t)
	ctx := e.inspectContext(context.Background(), run.ID)
	params := userParams("[[call get_weather {\"city\":\"Oslo\"}]] [[call get_time {}]]")
	params.Tools = []openai.ChatCompletionToolUnionParam{
		openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_weather"}),
		openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_time"}),
	}
	s := p.Client.Chat.Completions.NewStreaming(ctx, params)
	for s.Next() {
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	s.Close()

	xs := exchangesOf(t, store, run)
	if len(xs) != 1 {
		t.Fatalf("recorded %d exchanges, want 1", len(xs))
	}
	x := xs[0]
	if x.Status != 200 || !x.Streamed || x.Chunks < 2 || x.DurationMS == nil || x.Error != "" {
		t.Errorf("exchange = status %d streamed %v chunks %d duration %v error %q", x.Status, x.Streamed, x.Chunks, x.DurationMS, x.Error)
	}
	if x.Method != "POST" || !strings.HasSuffix(x.URL, "/v1/chat/completions") {
		t.Errorf("request line = %s %s", x.Method, x.URL)
	}
	if got := x.RequestHeaders["Authorization"]; got != "[redacted]" {
		t.Errorf("Authorization header stored as %q, want [redacted]", got)
	}
	raw, _ := json.Marshal(x)
	if strings.Contains(string(raw), inspectKeySecret) {
		t.Fatal("the upstream key reached the store")
	}
	var req struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct {
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal([]byte(x.RequestBody), &req); err != nil || req.Model != "gpt-test" || !req.Stream || len(req.Messages) != 1 {
		t.Errorf("request body = %s (%v)", x.RequestBody, err)
	}
	var resp struct {
		Choices []struct {
			Message struct {
				ToolCalls []struct {
					ID       string `json:"id"`
					Function struct {
						Name      string `json:"name"`
						Arguments string `json:"arguments"`
					} `json:"function"`
				} `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(x.ResponseBody), &resp); err != nil {
		t.Fatalf("assembled response is not JSON: %v\n%s", err, x.ResponseBody)
	}
	if len(resp.Choices) != 1 || len(resp.Choices[0].Message.ToolCalls) != 2 || resp.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("assembled response = %s", x.ResponseBody)
	}
	if tc := resp.Choices[0].Message.ToolCalls[0]; tc.Function.Name != "get_weather" || tc.Function.Arguments != `{"city":"Oslo"}` || tc.ID == "" {
		t.Errorf("first call assembled as %+v", tc)
	}
}

// A failed attempt and its retry are two exchanges, each with its outcome;
// the run's event log announces both as they start and end.
func TestInspectorRecordsRetriesSeparately(t *testing.T) {
	e, p, store, run := inspectFixture(t)
	ctx := e.inspectContext(context.Background(), run.ID)
	params := userParams("[[status 500 1]] hello")
	_, err := p.Client.Chat.Completions.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 500 {
		t.Fatalf("first attempt: %v, want a 500", err)
	}
	if _, err := p.Client.Chat.Completions.New(ctx, params); err != nil {
		t.Fatalf("retry: %v", err)
	}
	xs := exchangesOf(t, store, run)
	if len(xs) != 2 || xs[0].Status != 500 || xs[1].Status != 200 || xs[1].Streamed {
		t.Fatalf("exchanges = %+v", xs)
	}
	if !strings.Contains(xs[1].ResponseBody, "You said") {
		t.Errorf("plain response body = %s", xs[1].ResponseBody)
	}
	sub := e.hub.Subscribe(run.ID, 0)
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var states []string
	for range 4 {
		ev, err := sub.Next(rctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Name != UpstreamEventName || !ev.Internal() {
			t.Fatalf("event %q", ev.Name)
		}
		var u UpstreamEvent
		_ = json.Unmarshal(ev.Data, &u)
		states = append(states, u.State+" "+itoa64(int64(u.Status)))
	}
	if got := strings.Join(states, ","); got != "in_flight 0,done 500,in_flight 0,done 200" {
		t.Errorf("announced %s", got)
	}
}

// An unreachable upstream is an exchange with the error and no status.
func TestInspectorRecordsTransportErrors(t *testing.T) {
	e, _, store, run := inspectFixture(t)
	ps, err := NewProviders([]ProviderConfig{{Name: "down", BaseURL: "http://127.0.0.1:1/v1", APIKey: inspectKeySecret, Models: []string{"*"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ps.For("m")
	if _, err := p.Client.Chat.Completions.New(e.inspectContext(context.Background(), run.ID), userParams("hi")); err == nil {
		t.Fatal("a request to a closed port succeeded")
	}
	xs := exchangesOf(t, store, run)
	if len(xs) != 1 || xs[0].Status != 0 || xs[0].Error == "" {
		t.Fatalf("exchanges = %+v", xs)
	}
}

// Requests without a run in their context are not recorded, and the
// sweeper deletes exchanges past the retention.
func TestInspectorOnlyRunsAndSweeps(t *testing.T) {
	e, p, store, run := inspectFixture(t)
	if _, err := p.Client.Chat.Completions.New(context.Background(), userParams("hi")); err != nil {
		t.Fatal(err)
	}
	if xs := exchangesOf(t, store, run); len(xs) != 0 {
		t.Fatalf("a request outside a run was recorded: %+v", xs)
	}
	if _, err := p.Client.Chat.Completions.New(e.inspectContext(context.Background(), run.ID), userParams("hi")); err != nil {
		t.Fatal(err)
	}
	n, err := store.DeleteExchangesBefore(context.Background(), time.Now().Add(time.Minute).UnixMilli())
	if err != nil || n != 1 {
		t.Fatalf("swept %d (%v), want 1", n, err)
	}
	if n, err := NewInspector(store, 0, nil).Sweep(context.Background()); n != 0 || err != nil {
		t.Fatalf("a sweep with retention off swept %d (%v)", n, err)
	}
}
