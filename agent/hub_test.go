package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// readAll reads events until one ends the segment.
func readAll(t testing.TB, sub *Subscription) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []Event
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("read after %d events: %v", len(out), err)
		}
		out = append(out, ev)
		if ev.EndsSegment() {
			return out
		}
	}
}

func TestHubReadersSeeEveryEventOnceInOrder(t *testing.T) {
	hub := NewHub(time.Minute)
	const n = 500
	// Readers that join before, during and after publishing all see the
	// full log in order: a late reader gets the snapshot, then live events.
	var wg sync.WaitGroup
	results := make([][]Event, 6)
	start := func(i int) {
		sub := hub.Subscribe("run_1", 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = readAll(t, sub)
		}()
	}
	start(0)
	start(1)
	for i := 0; i < n; i++ {
		if i == n/2 {
			start(2)
			start(3)
		}
		hub.Publish("run_1", "thread.message.delta", json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)))
	}
	hub.Publish("run_1", "thread.run.completed", json.RawMessage(`{}`))
	start(4)
	start(5)
	wg.Wait()
	for r, evs := range results {
		if len(evs) != n+1 {
			t.Fatalf("reader %d got %d events, want %d", r, len(evs), n+1)
		}
		for i, ev := range evs[:n] {
			if want := fmt.Sprintf(`{"i":%d}`, i); ev.ID != int64(i+1) || string(ev.Data) != want {
				t.Fatalf("reader %d event %d = (%d, %s), want (%d, %s)", r, i, ev.ID, ev.Data, i+1, want)
			}
		}
	}
}

func TestHubSubscribeAfterPosition(t *testing.T) {
	hub := NewHub(time.Minute)
	hub.Publish("run_1", "thread.run.created", json.RawMessage(`{}`))
	hub.Publish("run_1", "thread.run.requires_action", json.RawMessage(`{}`))
	pos := hub.Position("run_1")
	sub := hub.Subscribe("run_1", pos)
	hub.Publish("run_1", "thread.run.step.completed", json.RawMessage(`{}`))
	hub.Publish("run_1", "thread.run.completed", json.RawMessage(`{}`))
	var names []string
	for _, ev := range readAll(t, sub) {
		names = append(names, ev.Name)
	}
	if diff := cmp.Diff([]string{"thread.run.step.completed", "thread.run.completed"}, names); diff != "" {
		t.Errorf("events after position (-want +got):\n%s", diff)
	}
}

func TestHubNextHonoursContext(t *testing.T) {
	hub := NewHub(time.Minute)
	sub := hub.Subscribe("run_idle", 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sub.Next(ctx); err != context.Canceled {
		t.Fatalf("Next on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestHubDropsFinishedLogs(t *testing.T) {
	hub := NewHub(time.Millisecond)
	hub.Publish("run_1", "thread.run.completed", json.RawMessage(`{}`))
	deadline := time.Now().Add(5 * time.Second)
	for {
		hub.mu.Lock()
		_, ok := hub.logs["run_1"]
		hub.mu.Unlock()
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a finished run's log was never dropped")
		}
		time.Sleep(time.Millisecond) // polling a condition with a deadline
	}
}

// BenchmarkHubFanOut publishes events read by 8 concurrent readers.
func BenchmarkHubFanOut(b *testing.B) {
	hub := NewHub(time.Minute)
	data := json.RawMessage(`{"id":"msg_1","object":"thread.message.delta","delta":{"content":[{"index":0,"type":"text","text":{"value":"word "}}]}}`)
	var wg sync.WaitGroup
	for r := 0; r < 8; r++ {
		sub := hub.Subscribe("run_b", 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i <= b.N; i++ {
				if _, err := sub.Next(context.Background()); err != nil {
					return
				}
			}
		}()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		hub.Publish("run_b", "thread.message.delta", data)
	}
	hub.Publish("run_b", "thread.run.completed", json.RawMessage(`{}`))
	wg.Wait()
}
