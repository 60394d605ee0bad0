package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/tests/upstream"
)

// syncBuffer is a bytes.Buffer safe for the engine's workers to log into
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// With --log-level debug every run transition is logged with the run's
// id; at info none is.
func TestDebugLogsRunTransitions(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		ctx, cancel := context.WithCancel(testCtx())
		store, err := db.Open(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(upstream.New())
		ps, err := NewProviders([]ProviderConfig{{Name: "fake", BaseURL: srv.URL + "/v1", APIKey: "k", Models: []string{"*"}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out syncBuffer
		e := New(store, ps, NewHub(time.Minute), slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level})), Config{})
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		_, run, err := e.CreateThreadAndRun(ctx, db.Thread{}, []db.Message{{Role: "user", Status: "completed",
			Content: []db.ContentPart{{Type: "text", Text: &db.Text{Value: "hello", Annotations: []db.Annotation{}}}}}},
			db.Run{AssistantID: "asst_x", Model: "gpt-test", TruncationStrategy: &db.TruncationStrategy{Type: "auto"},
				ToolChoice: json.RawMessage(`"auto"`), ResponseFormat: json.RawMessage(`"auto"`)})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			r, err := store.GetRun(ctx, run.ThreadID, run.ID)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status == "completed" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run status %s", r.Status)
			}
			time.Sleep(10 * time.Millisecond) // polling interval, bounded by the deadline
		}
		cancel()
		e.Wait()
		srv.Close()
		store.Close()
		logs := out.String()
		for _, want := range []string{"msg=\"run created\" run_id=" + run.ID, "msg=\"run in_progress\" run_id=" + run.ID, "msg=\"run completed\" run_id=" + run.ID} {
			if got := strings.Contains(logs, want); got != (level == slog.LevelDebug) {
				t.Errorf("level %v: %q logged %v\n%s", level, want, got, logs)
			}
		}
	}
}
