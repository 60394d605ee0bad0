package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/assistantd/assistantd/agent/webhook"
	"github.com/assistantd/assistantd/db"
)

// webhookFixture is a store with an assistant whose get_weather function
// has a webhook, a run of it, and a receiver that checks signatures.
type webhookFixture struct {
	store  *db.Store
	run    db.Run
	secret string
	srv    *httptest.Server
	mu     sync.Mutex
	got    []webhook.Payload
	ids    []string
	answer func(w http.ResponseWriter, r *http.Request)
}

func newWebhookFixture(t *testing.T, onFailure string) *webhookFixture {
	t.Helper()
	ctx := testCtx()
	store, err := db.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := &webhookFixture{store: store, secret: webhook.NewSecret()}
	key, _ := webhook.Key(f.secret)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get("webhook-id")
		ts, _ := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
		if !webhook.Verify(key, id, ts, body, r.Header.Get("webhook-signature")) {
			t.Errorf("bad signature on %s", id)
		}
		var p webhook.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("payload: %v", err)
		}
		f.mu.Lock()
		f.got, f.ids = append(f.got, p), append(f.ids, id)
		answer := f.answer
		f.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(f.srv.Close)
	a, err := store.CreateAssistant(ctx, db.Assistant{Model: "m", Tools: []db.Tool{
		{Type: "function", Function: &db.FunctionDef{Name: "get_weather"}},
		{Type: "function", Function: &db.FunctionDef{Name: "get_time"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutWebhook(ctx, db.Webhook{AssistantID: a.ID, FunctionName: "get_weather", URL: f.srv.URL,
		Secret: f.secret, TimeoutMS: 2000, MaxRetries: 2, OnFailure: onFailure}); err != nil {
		t.Fatal(err)
	}
	th, _, err := store.CreateThread(ctx, db.Thread{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.run, err = store.CreateRun(ctx, db.Run{ThreadID: th.ID, AssistantID: a.ID, Model: "m",
		TruncationStrategy: &db.TruncationStrategy{Type: "auto"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *webhookFixture) router(allow string) *Webhooks {
	nets, _ := webhook.ParseNetworks(allow)
	return NewWebhooks(f.store, webhook.NewClient(webhook.NewGuard(nets, nil), webhook.WithBackoff(time.Millisecond)),
		slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func (f *webhookFixture) runner(t *testing.T, allow string) Runner {
	t.Helper()
	r, ok, err := f.router(allow).Function(testCtx(), f.run, "get_weather")
	if err != nil || !ok {
		t.Fatalf("Function(get_weather) = %v, %v; want its webhook", ok, err)
	}
	return r
}

func (f *webhookFixture) call() ToolCall {
	return ToolCall{ID: "call_w1", Name: "get_weather", Arguments: `{"city":"Paris"}`, Run: f.run}
}

func TestWebhookRouter(t *testing.T) {
	f := newWebhookFixture(t, db.OnFailureErrorOutput)
	if _, ok, err := f.router("").Function(testCtx(), f.run, "get_time"); ok || err != nil {
		t.Fatalf("Function(get_time) = %v, %v; a function without a webhook goes to the client", ok, err)
	}
	other := f.run
	other.AssistantID = "asst_other"
	if _, ok, err := f.router("").Function(testCtx(), other, "get_weather"); ok || err != nil {
		t.Fatalf("another assistant's get_weather = %v, %v; want no webhook", ok, err)
	}
}

func TestWebhookRunner(t *testing.T) {
	ctx := testCtx()
	t.Run("delivered", func(t *testing.T) {
		f := newWebhookFixture(t, db.OnFailureErrorOutput)
		f.answer = func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"output":"22C, sunny"}`) }
		res, err := f.runner(t, "127.0.0.0/8").Run(ctx, f.call())
		if err != nil {
			t.Fatal(err)
		}
		if res.Output != "22C, sunny" {
			t.Fatalf("Output = %q", res.Output)
		}
		fn := res.Details.Function
		if fn == nil || fn.Name != "get_weather" || fn.Arguments != `{"city":"Paris"}` || fn.Output == nil || *fn.Output != "22C, sunny" {
			t.Fatalf("Details = %+v", res.Details)
		}
		if d, ok := res.Delta.(map[string]any); !ok || d["output"] != "22C, sunny" {
			t.Fatalf("Delta = %#v, want the output", res.Delta)
		}
		p := f.got[0]
		if p.Type != "function_call" || p.ToolCallID != "call_w1" || p.Function.Name != "get_weather" ||
			p.Function.Arguments != `{"city":"Paris"}` || p.RunID != f.run.ID || p.ThreadID != f.run.ThreadID ||
			p.AssistantID != f.run.AssistantID || p.CreatedAt == 0 {
			t.Fatalf("payload = %+v", p)
		}
		ds, err := f.store.ListDeliveries(ctx, f.run.ID)
		if err != nil || len(ds) != 1 || ds[0].StatusCode == nil || *ds[0].StatusCode != 200 || ds[0].Error != nil ||
			ds[0].WebhookID != f.ids[0] || ds[0].ToolCallID != "call_w1" || ds[0].Attempt != 1 {
			t.Fatalf("deliveries = %+v, %v", ds, err)
		}
	})
	t.Run("failing receiver, error_output", func(t *testing.T) {
		f := newWebhookFixture(t, db.OnFailureErrorOutput)
		f.answer = func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "db down", http.StatusInternalServerError) }
		res, err := f.runner(t, "127.0.0.0/8").Run(ctx, f.call())
		if err != nil {
			t.Fatal(err)
		}
		var out struct{ Error string }
		if err := json.Unmarshal([]byte(res.Output), &out); err != nil || !strings.Contains(out.Error, "after 3 attempts: HTTP 500: db down") {
			t.Fatalf("Output = %s, want {\"error\": ...after 3 attempts: HTTP 500...}", res.Output)
		}
		if *res.Details.Function.Output != res.Output {
			t.Fatal("the step's output differs from the model's")
		}
		ds, _ := f.store.ListDeliveries(ctx, f.run.ID)
		if len(ds) != 3 || len(f.ids) != 3 {
			t.Fatalf("%d deliveries recorded, %d received; want 3", len(ds), len(f.ids))
		}
		for i, d := range ds {
			if d.Attempt != i+1 || d.WebhookID != f.ids[0] || f.ids[i] != f.ids[0] || *d.StatusCode != 500 || d.Error == nil {
				t.Fatalf("delivery %d = %+v (ids %v)", i, d, f.ids)
			}
		}
	})
	t.Run("failing receiver, requires_action", func(t *testing.T) {
		f := newWebhookFixture(t, db.OnFailureRequiresAction)
		f.answer = func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }
		if _, err := f.runner(t, "127.0.0.0/8").Run(ctx, f.call()); !errors.Is(err, ErrToClient) {
			t.Fatalf("Run error = %v, want ErrToClient", err)
		}
		if ds, _ := f.store.ListDeliveries(ctx, f.run.ID); len(ds) != 3 {
			t.Fatalf("%d deliveries recorded, want 3", len(ds))
		}
	})
	t.Run("refused address", func(t *testing.T) {
		f := newWebhookFixture(t, db.OnFailureErrorOutput)
		f.answer = func(w http.ResponseWriter, _ *http.Request) {}
		res, err := f.runner(t, "").Run(ctx, f.call())
		if err != nil || !strings.Contains(res.Output, "refused network") || len(f.ids) != 0 {
			t.Fatalf("Run = %q, %v (received %d); want an error output, nothing sent", res.Output, err, len(f.ids))
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		f := newWebhookFixture(t, db.OnFailureErrorOutput)
		arrived := make(chan struct{}, 1)
		f.answer = func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			<-r.Context().Done()
		}
		cctx, cancel := context.WithCancel(ctx)
		go func() { <-arrived; cancel() }()
		if _, err := f.runner(t, "127.0.0.0/8").Run(cctx, f.call()); !errors.Is(err, context.Canceled) {
			t.Fatalf("Run error = %v, want context.Canceled", err)
		}
		// The interrupted attempt is still on record.
		if ds, _ := f.store.ListDeliveries(ctx, f.run.ID); len(ds) != 1 || ds[0].Error == nil {
			t.Fatalf("deliveries = %+v, want the cancelled attempt", ds)
		}
	})
}

var _ FunctionRouter = (*Webhooks)(nil)
