package db

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestExchanges: the upstream inspector's records on both stores: an
// exchange is recorded when it starts (ids increase), finished with its
// response (streamed as a flag), listed per run and thread without bodies,
// read whole only through its thread, and swept by age.
func TestExchanges(t *testing.T) { eachStore(t, testExchanges) }

func testExchanges(t *testing.T) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	s := openTest(t)
	th, run := threadRun(t, s, ctx)
	now := time.Now().UnixMilli()
	first, err := s.StartExchange(ctx, Exchange{RunID: run.ID, StartedAt: now - 5000, Method: "POST", URL: "http://up/v1/chat",
		RequestHeaders: map[string]string{"Authorization": "Bearer [redacted]"}, RequestBody: `{"zeta":1,"a":2}`})
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.StartExchange(ctx, Exchange{RunID: run.ID, StartedAt: now, Method: "POST", URL: "http://up/v1/chat"})
	if err != nil || second <= first {
		t.Fatalf("second exchange id %d after %d: %v", second, first, err)
	}
	d := int64(42)
	done := Exchange{ID: first, DurationMS: &d, Status: 200, ResponseHeaders: map[string]string{"Content-Type": "text/event-stream"},
		ResponseBody: "data: [DONE]", Streamed: true, Chunks: 3}
	if err := s.FinishExchange(ctx, done); err != nil {
		t.Fatal(err)
	}
	list, err := s.RunExchanges(ctx, run.ID)
	if err != nil || len(list) != 2 || list[0].ID != first || !list[0].Streamed || list[1].Streamed || list[0].RequestBody != "" {
		t.Fatalf("run exchanges %+v, %v", list, err)
	}
	if tl, err := s.ThreadExchanges(ctx, th.ID); err != nil || len(tl) != 2 {
		t.Fatalf("thread exchanges %+v, %v", tl, err)
	}
	got, err := s.GetExchange(ctx, th.ID, first)
	if err != nil {
		t.Fatal(err)
	}
	want := Exchange{ID: first, RunID: run.ID, StartedAt: now - 5000, DurationMS: &d, Method: "POST", URL: "http://up/v1/chat",
		RequestHeaders: map[string]string{"Authorization": "Bearer [redacted]"}, RequestBody: `{"zeta":1,"a":2}`, Status: 200,
		ResponseHeaders: map[string]string{"Content-Type": "text/event-stream"}, ResponseBody: "data: [DONE]", Streamed: true, Chunks: 3}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("exchange (-want +got):\n%s", diff)
	}
	if _, err := s.GetExchange(ctx, "thread_other", first); !errors.Is(err, ErrNotFound) {
		t.Errorf("another thread's exchange: %v", err)
	}
	if n, err := s.DeleteExchangesBefore(ctx, now-1000); err != nil || n != 1 {
		t.Fatalf("swept %d, %v; want 1", n, err)
	}
}
