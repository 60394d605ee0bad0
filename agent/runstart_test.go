package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/tests/upstream"
)

// BenchmarkFirstDelta measures a run's way to its first token inside the
// engine: from CreateRun to its first thread.message.delta on the hub,
// the scripted upstream answering at once. The store is SQLite; each run
// is on a thread of its own, made with the timer stopped, and ends before
// the next starts. Compare builds with
//
//	go test ./agent/ -run '^$' -bench FirstDelta -benchtime 300x -count 5
func BenchmarkFirstDelta(b *testing.B) {
	srv := httptest.NewServer(upstream.New())
	b.Cleanup(srv.Close)
	_, eng, newRun := bareEngine(b, srv.URL+"/v1")
	ctx := startEngine(b, eng)
	b.ResetTimer()
	for range b.N {
		run := newRun("[[chunks 2]]")
		sub := eng.Events(run.ID, 0)
		wctx, cancel := context.WithTimeout(ctx, waitFor)
		first := true
		for {
			ev, err := sub.Next(wctx)
			if err != nil {
				b.Fatalf("run %s: %v", run.ID, err)
			}
			if first && ev.Name == "thread.message.delta" {
				b.StopTimer() // the rest of the run is not timed
				first = false
			}
			if ev.EndsSegment() {
				break
			}
		}
		cancel()
		if first {
			b.Fatalf("run %s ended without a delta", run.ID)
		}
		b.StartTimer()
	}
}

// startEngine starts eng until the test ends and returns the context it
// runs in.
func startEngine(t testing.TB, eng *agent.Engine) context.Context {
	t.Helper()
	ctx, stop := context.WithCancel(testCtx())
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(); eng.Wait() })
	return ctx
}

// bareEngine is an engine on a store of its own and the upstream at
// upURL, not started, and a function creating a run on a new thread whose
// message is text (the thread is created with the timer stopped, in a
// benchmark).
func bareEngine(t testing.TB, upURL string) (*db.Store, *agent.Engine, func(text string) db.Run) {
	t.Helper()
	return bareEngineWith(t, upURL, 0)
}

// bareEngineWith is bareEngine with at most workers runs executing at once
// (0: the default).
func bareEngineWith(t testing.TB, upURL string, workers int) (*db.Store, *agent.Engine, func(text string) db.Run) {
	t.Helper()
	ctx := testCtx()
	store, err := db.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	providers, err := agent.NewProviders([]agent.ProviderConfig{{Name: "fake", BaseURL: upURL, APIKey: "k", Models: []string{"*"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := agent.New(store, providers, agent.NewHub(time.Minute), log, agent.Config{RetryBackoff: time.Millisecond, SweepInterval: 50 * time.Millisecond,
		Workers: workers})
	asst, err := store.CreateAssistant(ctx, db.Assistant{Model: "fake-model"})
	if err != nil {
		t.Fatal(err)
	}
	return store, eng, func(text string) db.Run {
		t.Helper()
		b, bench := t.(*testing.B)
		if bench {
			b.StopTimer()
		}
		th, _, err := store.CreateThread(ctx, db.Thread{}, []db.Message{{Role: "user", Status: "completed",
			Content: []db.ContentPart{{Type: "text", Text: &db.Text{Value: text, Annotations: []db.Annotation{}}}}}})
		if err != nil {
			t.Fatal(err)
		}
		if bench {
			b.StartTimer()
		}
		run, err := eng.CreateRun(ctx, db.Run{ThreadID: th.ID, AssistantID: asst.ID, Model: "fake-model",
			ToolChoice: json.RawMessage(`"auto"`), ResponseFormat: json.RawMessage(`"auto"`),
			TruncationStrategy: &db.TruncationStrategy{Type: "auto"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
}

// waitRun polls the store until the run has status want.
func waitRun(t *testing.T, store *db.Store, run db.Run, want string) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); ; time.Sleep(5 * time.Millisecond) {
		r, err := store.GetRun(testCtx(), run.ThreadID, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s, want %s", run.ID, r.Status, want)
		}
	}
}

// gatedUpstream is the scripted upstream holding every chat request until
// the test opens the gate; asked receives one value per request held.
func gatedUpstream(t *testing.T) (url string, asked <-chan struct{}, open func()) {
	t.Helper()
	url, _, asked, open = gatedServer(t)
	return url, asked, open
}

// gatedServer is gatedUpstream, with the scripted server itself.
func gatedServer(t *testing.T) (url string, up *upstream.Server, asked <-chan struct{}, open func()) {
	t.Helper()
	up = upstream.New()
	gate, ask := make(chan struct{}), make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/chat/completions") {
			ask <- struct{}{}
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		up.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	var once sync.Once
	open = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(open)
	return srv.URL + "/v1", up, ask, open
}

// A run created while a worker is free starts with its creation: it is
// stored claimed and in_progress by the time CreateRun returns (the
// returned run is the created one, queued), its in_progress event comes
// with its first events, and the model is asked. With every worker busy a
// new run waits in the queue, queued, and starts when a worker is free.
func TestRunStartsWithItsCreation(t *testing.T) {
	url, asked, open := gatedUpstream(t)
	store, eng, newRun := bareEngineWith(t, url, 1)
	ctx := startEngine(t, eng)

	run := newRun("[[chunks 2]]")
	if run.Status != db.RunQueued || run.StartedAt != nil {
		t.Errorf("CreateRun returned status %s, started_at %v; want the run as created: queued, not started", run.Status, run.StartedAt)
	}
	stored, err := store.GetRun(ctx, run.ThreadID, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Status != db.RunInProgress || stored.StartedAt == nil || stored.Attempts != 1 {
		t.Fatalf("stored run just created: status %s, started_at %v, attempts %d; want in_progress, started, attempt 1",
			stored.Status, stored.StartedAt, stored.Attempts)
	}
	select {
	case <-asked:
	case <-time.After(waitFor):
		t.Fatal("the model was never asked")
	}
	var names []string
	sub := eng.Events(run.ID, 0)
	for len(names) < 3 {
		wctx, cancel := context.WithTimeout(ctx, waitFor)
		ev, err := sub.Next(wctx)
		cancel()
		if err != nil {
			t.Fatalf("events %v: %v", names, err)
		}
		names = append(names, ev.Name)
		var r struct {
			Status    string `json:"status"`
			StartedAt *int64 `json:"started_at"`
		}
		if err := json.Unmarshal(ev.Data, &r); err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"thread.run.created": "queued", "thread.run.queued": "queued",
			"thread.run.in_progress": "in_progress"}[ev.Name]; r.Status != want || (r.StartedAt != nil) != (want == "in_progress") {
			t.Errorf("%s carries status %s, started_at %v", ev.Name, r.Status, r.StartedAt)
		}
	}
	if want := []string{"thread.run.created", "thread.run.queued", "thread.run.in_progress"}; !slices.Equal(names, want) {
		t.Errorf("first events %v, want %v", names, want)
	}

	// The one worker is busy: the next run is queued, and stays so.
	second := newRun("[[chunks 2]]")
	if got, err := store.GetRun(ctx, second.ThreadID, second.ID); err != nil || got.Status != db.RunQueued || got.Attempts != 0 {
		t.Fatalf("run created with every worker busy: status %s, attempts %d (%v); want queued, unclaimed", got.Status, got.Attempts, err)
	}
	open()
	waitRun(t, store, run, db.RunCompleted)
	waitRun(t, store, second, db.RunCompleted)
}

// A run cancelled as soon as it exists, before its model answers, ends
// cancelled: the cancel reaches the execution that started with it.
func TestRunCancelledAsItStarts(t *testing.T) {
	url, _, _ := gatedUpstream(t)
	store, eng, newRun := bareEngineWith(t, url, 0)
	ctx := startEngine(t, eng)
	run := newRun("[[chunks 2]]")
	if _, err := eng.Cancel(ctx, run.ThreadID, run.ID); err != nil {
		t.Fatal(err)
	}
	waitRun(t, store, run, db.RunCancelled)
}

// The message a run opens is published before its commit (the first
// token does not wait for it), yet whoever reads it on seeing
// thread.message.created finds it, and its step: readers wait for the
// announced write.
func TestMessageReadableOnItsCreatedEvent(t *testing.T) {
	srv := httptest.NewServer(upstream.New())
	t.Cleanup(srv.Close)
	store, eng, newRun := bareEngine(t, srv.URL+"/v1")
	ctx := startEngine(t, eng)
	for i := range 20 {
		run := newRun("[[chunks 3]]")
		sub := eng.Events(run.ID, 0)
		for {
			wctx, cancel := context.WithTimeout(ctx, waitFor)
			ev, err := sub.Next(wctx)
			cancel()
			if err != nil {
				t.Fatalf("run %d: %v", i, err)
			}
			if ev.Name == "thread.message.created" {
				var m struct{ ID string }
				if err := json.Unmarshal(ev.Data, &m); err != nil {
					t.Fatal(err)
				}
				if _, err := store.GetMessage(ctx, run.ThreadID, m.ID); err != nil {
					t.Fatalf("run %d: message %s on its created event: %v", i, m.ID, err)
				}
				steps, err := store.ListSteps(ctx, run.ThreadID, run.ID, db.ListParams{Limit: 10, Order: "asc"})
				if err != nil || len(steps.Data) != 1 || steps.Data[0].StepDetails.MessageCreation == nil ||
					steps.Data[0].StepDetails.MessageCreation.MessageID != m.ID {
					t.Fatalf("run %d: steps on the message's created event: %+v (%v)", i, steps.Data, err)
				}
			}
			if ev.EndsSegment() {
				break
			}
		}
		waitRun(t, store, run, db.RunCompleted)
	}
}

// A run starts executing while its creation commits, on the thread's
// history as stored plus the messages the creation stores: the model gets
// each message once, in order, whether or not its reads saw the creation.
func TestRunStartedBeforeItsCreationCommitsSeesItsHistoryOnce(t *testing.T) {
	up := upstream.New()
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	store, eng, newRun := bareEngine(t, srv.URL+"/v1")
	ctx := startEngine(t, eng)
	first := newRun("first question")
	waitRun(t, store, first, db.RunCompleted)
	text := func(s string) db.Message {
		return db.Message{Role: "user", Status: "completed", Content: []db.ContentPart{{Type: "text", Text: &db.Text{Value: s}}}}
	}
	second, err := eng.CreateRun(ctx, db.Run{ThreadID: first.ThreadID, AssistantID: first.AssistantID, Model: "fake-model"},
		[]db.Message{text("second question"), text("and a third")})
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, store, second, db.RunCompleted)
	_, both, err := eng.CreateThreadAndRun(ctx, db.Thread{}, []db.Message{text("one"), text("two")},
		db.Run{AssistantID: first.AssistantID, Model: "fake-model"})
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, store, both, db.RunCompleted)

	reqs := up.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d upstream requests, want 3", len(reqs))
	}
	msgs, err := store.ListMessages(ctx, first.ThreadID, first.ID, db.ListParams{Limit: 10, Order: "asc"})
	if err != nil || len(msgs.Data) != 1 {
		t.Fatalf("first run's messages: %+v (%v)", msgs.Data, err)
	}
	answer := msgs.Data[0].Content[0].Text.Value
	for i, want := range [][]string{
		{"user: first question"},
		{"user: first question", "assistant: " + answer, "user: second question", "user: and a third"},
		{"user: one", "user: two"},
	} {
		var got []string
		for _, m := range reqs[i].Messages {
			if m.Role != "system" {
				got = append(got, m.Role+": "+m.Text())
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("request %d asked %q, want %q", i, got, want)
		}
	}
}

// A run whose creation fails after its execution began (its thread is
// gone) leaves nothing: no run, and its worker is free again.
func TestRunCreationFailingAfterItsStart(t *testing.T) {
	srv := httptest.NewServer(upstream.New())
	t.Cleanup(srv.Close)
	store, eng, newRun := bareEngineWith(t, srv.URL+"/v1", 1)
	ctx := startEngine(t, eng)
	gone, err := eng.CreateRun(ctx, db.Run{ThreadID: "thread_gone", AssistantID: "asst_x", Model: "fake-model"}, nil)
	if !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("run on a missing thread: %v, want not found", err)
	}
	if _, err := store.GetRun(ctx, "", gone.ID); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("the failed run %s is stored (%v)", gone.ID, err)
	}
	// The one worker is free: the next run completes.
	waitRun(t, store, newRun("[[chunks 2]]"), db.RunCompleted)
}

// A message written after a run's execution read the thread's history but
// before the run's creation committed makes that history stale: the
// request built on it is dropped, unanswered, and the model is asked again
// on the history as the run was created.
func TestRunStartedOnStaleHistoryAsksAgain(t *testing.T) {
	url, up, asked, open := gatedServer(t)
	store, eng, _ := bareEngineWith(t, url, 0)
	ctx := startEngine(t, eng)
	text := func(s string) db.Message {
		return db.Message{Role: "user", Status: "completed", Content: []db.ContentPart{{Type: "text", Text: &db.Text{Value: s}}}}
	}
	th, _, err := store.CreateThread(ctx, db.Thread{}, []db.Message{text("first")})
	if err != nil {
		t.Fatal(err)
	}
	// The writer is held by a write that, once let go, adds a message.
	entered, proceed, written := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		written <- store.Batch(ctx, func(ctx context.Context, tx *db.Tx) error {
			close(entered)
			<-proceed
			m := text("late")
			m.ThreadID = th.ID
			_, err := tx.CreateMessage(ctx, m)
			return err
		})
	}()
	<-entered
	created := make(chan error, 1)
	var run db.Run
	go func() {
		var err error
		run, err = eng.CreateRun(ctx, db.Run{ThreadID: th.ID, AssistantID: "asst_x", Model: "fake-model"}, []db.Message{text("extra")})
		created <- err
	}()
	select {
	case <-asked: // asked on the history without "late"; the creation waits for the writer
	case <-time.After(waitFor):
		t.Fatal("the run was not started before its creation committed")
	}
	close(proceed)
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	open() // the first answer begins: its turn finds its history stale
	waitRun(t, store, run, db.RunCompleted)
	reqs := up.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2 (the stale one, then the one answered)", len(reqs))
	}
	asks := make([][]string, 2)
	for i, r := range reqs {
		for _, m := range r.Messages {
			asks[i] = append(asks[i], m.Role+": "+m.Text())
		}
	}
	if want := []string{"user: first", "user: extra"}; !slices.Equal(asks[0], want) {
		t.Errorf("first asked %q, want %q", asks[0], want)
	}
	if want := []string{"user: first", "user: late", "user: extra"}; !slices.Equal(asks[1], want) {
		t.Errorf("then asked %q, want %q", asks[1], want)
	}
	msgs, err := store.ListMessages(ctx, th.ID, run.ID, db.ListParams{Limit: 10, Order: "asc"})
	if err != nil || len(msgs.Data) != 1 {
		t.Fatalf("the run's messages: %+v (%v)", msgs.Data, err)
	}
	got := []string{msgs.Data[0].Content[0].Text.Value}
	if want := []string{"You said: extra"}; !slices.Equal(got, want) {
		t.Errorf("the run answered %q, want %q", got, want)
	}
}
