package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
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
func inspectFixture(t testing.TB) (*Engine, *Provider, *db.Store, db.Run) {
	t.Helper()
	ctx := testCtx()
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
	ins := NewInspector(store, time.Hour, nil)
	t.Cleanup(ins.Close)
	e.EnableInspector(ins)
	// A run has a log on the hub before it calls upstream (its status
	// events); the inspector announces exchanges only on existing logs.
	e.hub.Publish(run.ID, "thread.run.in_progress", json.RawMessage(`{}`))
	return e, p, store, run
}

func userParams(text string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Model: "gpt-test",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}}
}

// flushed waits until the engine's inspector has written what it queued.
func flushed(t *testing.T, e *Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(testCtx(), 10*time.Second)
	defer cancel()
	if err := e.inspector.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func exchangesOf(t *testing.T, store *db.Store, run db.Run) []db.Exchange {
	t.Helper()
	list, err := store.RunExchanges(testCtx(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []db.Exchange
	for _, x := range list {
		full, err := store.GetExchange(testCtx(), run.ThreadID, x.ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, full)
	}
	return out
}

func TestInspectorRecordsStreamedExchangeRedacted(t *testing.T) {
	e, p, store, run := inspectFixture(t)
	ctx := e.inspectContext(testCtx(), run.ID)
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

	flushed(t, e)
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
	ctx := e.inspectContext(testCtx(), run.ID)
	params := userParams("[[status 500 1]] hello")
	_, err := p.Client.Chat.Completions.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 500 {
		t.Fatalf("first attempt: %v, want a 500", err)
	}
	if _, err := p.Client.Chat.Completions.New(ctx, params); err != nil {
		t.Fatalf("retry: %v", err)
	}
	flushed(t, e)
	xs := exchangesOf(t, store, run)
	if len(xs) != 2 || xs[0].Status != 500 || xs[1].Status != 200 || xs[1].Streamed {
		t.Fatalf("exchanges = %+v", xs)
	}
	if !strings.Contains(xs[1].ResponseBody, "You said") {
		t.Errorf("plain response body = %s", xs[1].ResponseBody)
	}
	sub := e.hub.Subscribe(run.ID, 1) // after the fixture's status event
	rctx, cancel := context.WithTimeout(testCtx(), 5*time.Second)
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
	if _, err := p.Client.Chat.Completions.New(e.inspectContext(testCtx(), run.ID), userParams("hi")); err == nil {
		t.Fatal("a request to a closed port succeeded")
	}
	flushed(t, e)
	xs := exchangesOf(t, store, run)
	if len(xs) != 1 || xs[0].Status != 0 || xs[0].Error == "" {
		t.Fatalf("exchanges = %+v", xs)
	}
}

// Requests without a run in their context are not recorded, and the
// sweeper deletes exchanges past the retention.
func TestInspectorOnlyRunsAndSweeps(t *testing.T) {
	e, p, store, run := inspectFixture(t)
	if _, err := p.Client.Chat.Completions.New(testCtx(), userParams("hi")); err != nil {
		t.Fatal(err)
	}
	flushed(t, e)
	if xs := exchangesOf(t, store, run); len(xs) != 0 {
		t.Fatalf("a request outside a run was recorded: %+v", xs)
	}
	if _, err := p.Client.Chat.Completions.New(e.inspectContext(testCtx(), run.ID), userParams("hi")); err != nil {
		t.Fatal(err)
	}
	flushed(t, e)
	n, err := store.DeleteExchangesBefore(testCtx(), time.Now().Add(time.Minute).UnixMilli())
	if err != nil || n != 1 {
		t.Fatalf("swept %d (%v), want 1", n, err)
	}
	if n, err := NewInspector(store, 0, nil).Sweep(testCtx()); n != 0 || err != nil {
		t.Fatalf("a sweep with retention off swept %d (%v)", n, err)
	}
}

// stalledStore is an exchange store whose writes wait until released, as
// a store stuck behind a long write transaction would.
type stalledStore struct {
	release  chan struct{}
	entered  chan struct{} // closed by the first write
	once     sync.Once
	mu       sync.Mutex
	starts   int
	finishes map[int64]bool
}

func (s *stalledStore) wait() {
	s.once.Do(func() { close(s.entered) })
	<-s.release
}

func (s *stalledStore) StartExchange(ctx context.Context, x db.Exchange) (int64, error) {
	s.wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starts++
	return int64(s.starts), nil
}

func (s *stalledStore) FinishExchange(ctx context.Context, x db.Exchange) error {
	s.wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finishes[x.ID] = true
	return nil
}

func (s *stalledStore) DeleteExchangesBefore(ctx context.Context, cutoff int64) (int64, error) {
	return 0, nil
}

// streamAll runs n streaming requests at once through the provider client
// in ctx and returns when all have been read to the end.
func streamAll(ctx context.Context, p *Provider, n int) error {
	errs := make(chan error, n)
	for i := range n {
		go func() {
			s := p.Client.Chat.Completions.NewStreaming(ctx, userParams(fmt.Sprintf("[[chunks 5]] stream %d", i)))
			for s.Next() {
			}
			s.Close()
			errs <- s.Err()
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// With its store stalled, the inspector lets every stream run to its end,
// holds no more than its bounds, and counts what it drops; released, it
// finishes every exchange it started.
func TestInspectorNeverBlocksOnStalledStore(t *testing.T) {
	e, p, _, run := inspectFixture(t)
	st := &stalledStore{release: make(chan struct{}), entered: make(chan struct{}), finishes: map[int64]bool{}}
	ins := NewInspector(st, time.Hour, slog.New(slog.DiscardHandler))
	ins.MaxQueue = 8
	released := false
	release := func() {
		if !released {
			released = true
			close(st.release)
		}
	}
	t.Cleanup(func() { release(); ins.Close() })
	e.EnableInspector(ins)

	const streams = 40
	done := make(chan error, 1)
	go func() { done <- streamAll(e.inspectContext(testCtx(), run.ID), p, streams) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("streams did not finish while the inspector's store was stalled")
	}
	select {
	case <-st.entered:
	default:
		t.Fatal("the inspector never tried to write")
	}
	if n, _ := ins.Queued(); n > ins.MaxQueue {
		t.Errorf("%d entries queued, bound %d", n, ins.MaxQueue)
	}
	if ins.Dropped() == 0 {
		t.Error("no drops counted although the queue was full")
	}

	release()
	ctx, cancel := context.WithTimeout(testCtx(), 10*time.Second)
	defer cancel()
	if err := ins.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.starts == 0 || st.starts >= streams {
		t.Errorf("%d exchanges started with %d streams and a queue of %d", st.starts, streams, ins.MaxQueue)
	}
	for id := int64(1); id <= int64(st.starts); id++ {
		if !st.finishes[id] {
			t.Errorf("exchange %d was started but never finished", id)
		}
	}
}

// When the writer keeps up, every attempt of many concurrent streams
// (failed ones included) is recorded in full and nothing is dropped.
func TestInspectorRecordsEveryAttempt(t *testing.T) {
	e, p, store, run := inspectFixture(t)
	ctx := e.inspectContext(testCtx(), run.ID)
	const streams = 30
	if err := streamAll(ctx, p, streams); err != nil {
		t.Fatal(err)
	}
	var apiErr *openai.Error
	if _, err := p.Client.Chat.Completions.New(ctx, userParams("[[status 503 1]] hi")); !errors.As(err, &apiErr) {
		t.Fatalf("want a 503, got %v", err)
	}
	flushed(t, e)
	xs := exchangesOf(t, store, run)
	if len(xs) != streams+1 {
		t.Fatalf("recorded %d exchanges, want %d", len(xs), streams+1)
	}
	statuses := map[int]int{}
	for _, x := range xs {
		statuses[x.Status]++
		if x.DurationMS == nil {
			t.Errorf("exchange %d left in flight", x.ID)
		}
		if x.Status == 200 && (!x.Streamed || x.Chunks < 5 || !strings.Contains(x.ResponseBody, "chat.completion")) {
			t.Errorf("exchange %d: streamed %v, %d chunks, body %.80q", x.ID, x.Streamed, x.Chunks, x.ResponseBody)
		}
	}
	if statuses[200] != streams || statuses[503] != 1 {
		t.Errorf("statuses %v", statuses)
	}
	if d := e.inspector.Dropped(); d != 0 {
		t.Errorf("%d dropped", d)
	}
}

// BenchmarkInspectedStream is one streamed upstream request read to its
// end, without the inspector and with it recording into a real store: the
// difference is what recording costs a run's goroutine (the writes
// themselves happen on the inspector's writer).
func BenchmarkInspectedStream(b *testing.B) {
	for _, inspected := range []bool{false, true} {
		name := "off"
		if inspected {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			e, p, _, run := inspectFixture(b)
			ctx := testCtx()
			if inspected {
				ctx = e.inspectContext(ctx, run.ID)
			}
			params := userParams("[[chunks 20]] bench")
			b.ResetTimer()
			for b.Loop() {
				s := p.Client.Chat.Completions.NewStreaming(ctx, params)
				for s.Next() {
				}
				if err := s.Err(); err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
			b.StopTimer()
			if d := e.inspector.Dropped(); d != 0 {
				b.Logf("%d dropped", d)
			}
		})
	}
}
