package agent

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/assistantd/assistantd/db"
)

// usageStore is a Projects store that keeps the usage written to it and,
// while stalled, blocks every usage write until released.
type usageStore struct {
	entered chan struct{} // receives once per RecordUsages call, if set
	release chan struct{} // closed: writes go through

	mu                      sync.Mutex
	requests, input, output int64
	tokens                  int64
	writes, models          int
	byModel                 map[string]int64
}

func (s *usageStore) ProjectSettings(context.Context, string) (db.ProjectSettings, error) {
	return db.ProjectSettings{}, nil
}

func (s *usageStore) AdmitRequest(context.Context, string, string, time.Duration) (db.RateState, error) {
	return db.RateState{}, nil
}

func (s *usageStore) CountTokens(_ context.Context, _, _ string, tokens int64, _ time.Duration) error {
	s.mu.Lock()
	s.tokens += tokens
	s.mu.Unlock()
	return nil
}

func (s *usageStore) RecordUsages(ctx context.Context, recs []db.UsageRecord) error {
	if s.entered != nil {
		select {
		case s.entered <- struct{}{}:
		default:
		}
	}
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	for _, r := range recs {
		s.requests += r.Requests
		s.input += r.InputTokens
		s.output += r.OutputTokens
		s.byModel[r.Model] += r.Requests
	}
	return nil
}

func (s *usageStore) totals() (requests, input, output, tokens int64, writes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, s.input, s.output, s.tokens, s.writes
}

// usageEngine is an engine recording usage into store, its writer running
// until the test ends.
func usageEngine(t *testing.T, store *usageStore) *Engine {
	t.Helper()
	st, err := db.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := New(st, nil, NewHub(time.Minute), slog.New(slog.NewTextHandler(io.Discard, nil)), Config{})
	e.EnableProjects(store, time.Minute, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.projects.writeUsage(ctx, e.log) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// recordBurst records n upstream requests' usage from 8 goroutines, each
// 10 prompt and 2 completion tokens, of models m0…m3, and returns a
// channel closed when every call has returned.
func recordBurst(e *Engine, n int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := g; i < n; i += 8 {
					run := db.Run{ID: "run_x", ProjectID: db.DefaultProjectID}
					e.recordUsage(run, []string{"m0", "m1", "m2", "m3"}[i%4], &db.Usage{PromptTokens: 10, CompletionTokens: 2, TotalTokens: 12})
				}
			})
		}
		wg.Wait()
	}()
	return done
}

// waitUsage polls until the store has taken want requests.
func waitUsage(t *testing.T, store *usageStore, want int64) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if got, _, _, _, _ := store.totals(); got == want {
			return
		} else if got > want || time.Now().After(deadline) {
			t.Fatalf("the store has %d requests' usage, want %d", got, want)
		}
	}
}

// TestUsageStalledStoreDoesNotBlockTurns: while the store blocks the
// usage writer, a burst of 10,000 requests' usage is recorded without
// waiting for it, and once the store goes on every request is counted,
// in a few batched writes.
func TestUsageStalledStoreDoesNotBlockTurns(t *testing.T) {
	store := &usageStore{entered: make(chan struct{}, 1), release: make(chan struct{}), byModel: map[string]int64{}}
	e := usageEngine(t, store)
	e.recordUsage(db.Run{ID: "run_first"}, "m0", &db.Usage{PromptTokens: 10, CompletionTokens: 2, TotalTokens: 12})
	select {
	case <-store.entered: // the writer is now blocked in the store
	case <-time.After(20 * time.Second):
		t.Fatal("the usage writer never wrote")
	}
	const n = 10000
	select {
	case <-recordBurst(e, n):
	case <-time.After(20 * time.Second):
		t.Fatal("recording usage waited on a stalled store")
	}
	close(store.release)
	waitUsage(t, store, n+1)
	requests, input, output, _, writes := store.totals()
	if input != 10*(n+1) || output != 2*(n+1) {
		t.Errorf("tokens %d in, %d out; want %d, %d", input, output, 10*(n+1), 2*(n+1))
	}
	if writes > 3 {
		t.Errorf("%d requests in %d writes: the stalled burst was not batched", requests, writes)
	}
	if d := e.projects.usage.dropped.Load(); d != 0 {
		t.Errorf("%d requests' usage dropped", d)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	for m, got := range store.byModel {
		if want := int64(n / 4); m != "m0" && got != want {
			t.Errorf("model %s: %d requests, want %d", m, got, want)
		}
	}
}

// TestUsageCountsEveryRecord: with the store keeping up, every request's
// usage and tokens are counted, exactly once.
func TestUsageCountsEveryRecord(t *testing.T) {
	store := &usageStore{release: make(chan struct{}), byModel: map[string]int64{}}
	close(store.release)
	e := usageEngine(t, store)
	const n = 10000
	<-recordBurst(e, n)
	waitUsage(t, store, n)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		requests, input, output, tokens, _ := store.totals()
		if input == 10*n && output == 2*n && tokens == 12*n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests: tokens %d in, %d out, %d counted; want %d, %d, %d", requests, input, output, tokens, 10*n, 2*n, 12*n)
		}
	}
	if d := e.projects.usage.dropped.Load(); d != 0 {
		t.Errorf("%d requests' usage dropped", d)
	}
}
