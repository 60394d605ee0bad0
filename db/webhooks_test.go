package db

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func newTestStore(t *testing.T) *Store { return openTest(t) }

func functions(names ...string) []Tool {
	var tools []Tool
	for _, n := range names {
		tools = append(tools, Tool{Type: "function", Function: &FunctionDef{Name: n}})
	}
	return tools
}

func TestWebhooks(t *testing.T) { eachStore(t, testWebhooks) }

func testWebhooks(t *testing.T) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	s := newTestStore(t)
	a, err := s.CreateAssistant(ctx, Assistant{Model: "m", Tools: append(functions("get_weather", "get_time"), Tool{Type: "code_interpreter"})})
	if err != nil {
		t.Fatal(err)
	}
	put := func(name, url string) (Webhook, error) {
		return s.PutWebhook(ctx, Webhook{AssistantID: a.ID, FunctionName: name, URL: url, Secret: "whsec_x",
			TimeoutMS: 10000, MaxRetries: 2, OnFailure: OnFailureErrorOutput})
	}
	w1, err := put("get_weather", "https://example.com/1")
	if err != nil || w1.CreatedAt == 0 {
		t.Fatalf("PutWebhook = %+v, %v", w1, err)
	}
	if _, err := put("get_time", "https://example.com/2"); err != nil {
		t.Fatal(err)
	}
	if _, err := put("code_interpreter", "https://example.com/3"); !errors.Is(err, ErrNoFunction) {
		t.Fatalf("a webhook for a non-function tool: %v, want ErrNoFunction", err)
	}
	if _, err := put("nope", "https://example.com/3"); !errors.Is(err, ErrNoFunction) {
		t.Fatalf("a webhook for a missing function: %v, want ErrNoFunction", err)
	}
	if _, err := s.PutWebhook(ctx, Webhook{AssistantID: "asst_missing", FunctionName: "f", URL: "u", Secret: "s",
		TimeoutMS: 1, OnFailure: OnFailureErrorOutput}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown assistant: %v, want ErrNotFound", err)
	}
	// Replacing keeps created_at and changes the rest.
	w1b, err := put("get_weather", "https://example.com/new")
	if err != nil || w1b.CreatedAt != w1.CreatedAt {
		t.Fatalf("replace = %+v, %v", w1b, err)
	}
	got, err := s.GetWebhook(ctx, a.ID, "get_weather")
	if err != nil || got.URL != "https://example.com/new" {
		t.Fatalf("GetWebhook = %+v, %v", got, err)
	}
	list, err := s.ListWebhooks(ctx, a.ID)
	if err != nil || len(list) != 2 || list[0].FunctionName != "get_time" || list[1].FunctionName != "get_weather" {
		t.Fatalf("ListWebhooks = %+v, %v", list, err)
	}

	// Removing a function from the assistant removes its webhook only.
	if _, err := s.UpdateAssistant(ctx, a.ID, func(a *Assistant) error { a.Tools = functions("get_time"); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetWebhook(ctx, a.ID, "get_weather"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("webhook of the removed function: %v, want ErrNotFound", err)
	}
	if _, err := s.GetWebhook(ctx, a.ID, "get_time"); err != nil {
		t.Fatalf("webhook of the kept function: %v", err)
	}
	if err := s.DeleteWebhook(ctx, a.ID, "get_time"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhook(ctx, a.ID, "get_time"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}

	// Deleting the assistant removes its webhooks.
	if _, err := put("get_time", "https://example.com/2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAssistant(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM webhooks`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d webhooks left after the assistant was deleted (%v)", n, err)
	}
}

func TestDeliveries(t *testing.T) { eachStore(t, testDeliveries) }

func testDeliveries(t *testing.T) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	s := newTestStore(t)
	th, _, err := s.CreateThread(ctx, Thread{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	run, err := s.CreateRun(ctx, Run{ThreadID: th.ID, AssistantID: "asst_1", Model: "m",
		TruncationStrategy: &TruncationStrategy{Type: "auto"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	status, msg := 503, "HTTP 503"
	in := []Delivery{
		{RunID: run.ID, ThreadID: th.ID, ToolCallID: "call_1", FunctionName: "f", WebhookID: "msg_call_1", Attempt: 1,
			StatusCode: &status, LatencyMS: 12, Response: "busy", Error: &msg},
		{RunID: run.ID, ThreadID: th.ID, ToolCallID: "call_1", FunctionName: "f", WebhookID: "msg_call_1", Attempt: 2,
			LatencyMS: 1000, Error: &msg},
	}
	for i := range in {
		d, err := s.RecordDelivery(ctx, in[i])
		if err != nil {
			t.Fatal(err)
		}
		in[i] = d
	}
	byRun, err := s.ListDeliveries(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, byRun); diff != "" {
		t.Fatalf("ListDeliveries (-want +got):\n%s", diff)
	}
	byThread, err := s.ListThreadDeliveries(ctx, th.ID)
	if err != nil || len(byThread) != 2 {
		t.Fatalf("ListThreadDeliveries = %v, %v", byThread, err)
	}
	if other, err := s.ListDeliveries(ctx, "run_other"); err != nil || len(other) != 0 {
		t.Fatalf("another run's deliveries = %v, %v", other, err)
	}
	// A deleted thread takes its runs' deliveries with it.
	if err := s.DeleteThread(ctx, th.ID); err != nil {
		t.Fatal(err)
	}
	if left, err := s.ListThreadDeliveries(ctx, th.ID); err != nil || len(left) != 0 {
		t.Fatalf("deliveries after the thread was deleted = %v, %v", left, err)
	}
}
