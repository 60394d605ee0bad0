package agent_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
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
	eng := agent.New(store, providers, agent.NewHub(time.Minute), log, agent.Config{RetryBackoff: time.Millisecond, SweepInterval: 50 * time.Millisecond})
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
