package agent_test

import (
	"context"
	"net/http/httptest"
	"testing"

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
	ctx, stop := context.WithCancel(testCtx())
	if err := eng.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stop(); eng.Wait() })
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
