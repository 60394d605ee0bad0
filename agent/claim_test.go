package agent_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/tests/upstream"
)

// TestRunClaimedAsCreated: a run created while this replica has a worker
// free is claimed in the transaction that creates it (stored in_progress,
// thread.run.in_progress published with its creation); cancelled before
// a worker takes it up, it is never sent upstream.
func TestRunClaimedAsCreated(t *testing.T) {
	up := upstream.New()
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	ctx := testCtx()
	store, eng, newRun := bareEngine(t, srv.URL+"/v1")
	waitStatus := func(run db.Run, want string) { t.Helper(); waitRun(t, store, run, want) }

	// The engine is not started yet: the run waits in its queue, claimed.
	first := newRun("never sent upstream")
	if first.Status != db.RunQueued {
		t.Errorf("CreateRun answered status %s, want queued", first.Status)
	}
	stored, err := store.GetRun(ctx, first.ThreadID, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Status != db.RunInProgress || stored.StartedAt == nil || stored.Attempts != 1 {
		t.Errorf("stored: status %s, started_at %v, attempts %d; want in_progress, started, 1", stored.Status, stored.StartedAt, stored.Attempts)
	}
	sub := eng.Events(first.ID, 0)
	var got []string
	for len(got) < 3 {
		wctx, cancel := context.WithTimeout(ctx, waitFor)
		ev, err := sub.Next(wctx)
		cancel()
		if err != nil {
			t.Fatalf("events %v: %v", got, err)
		}
		got = append(got, ev.Name)
	}
	if want := "thread.run.created thread.run.queued thread.run.in_progress"; strings.Join(got, " ") != want {
		t.Errorf("events %q, want %q", got, want)
	}

	if _, err := eng.Cancel(ctx, first.ThreadID, first.ID); err != nil {
		t.Fatal(err)
	}
	waitStatus(first, db.RunCancelled)

	runCtx, stop := context.WithCancel(ctx)
	if err := eng.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	// The next run is queued behind the cancelled one's job: once it has
	// completed, a worker has taken that job up too.
	second := newRun("sent upstream")
	waitStatus(second, db.RunCompleted)
	stop()
	eng.Wait()
	for _, r := range up.Requests() {
		for _, m := range r.Messages {
			if strings.Contains(m.Text(), "never sent upstream") {
				t.Fatalf("the cancelled run was sent upstream: %+v", r)
			}
		}
	}
	if n := len(up.Requests()); n != 1 {
		t.Errorf("%d upstream requests, want 1 (the second run's)", n)
	}
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
