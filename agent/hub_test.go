package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/assistantd/assistantd/db"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// readAll reads events until one ends the segment.
func readAll(t testing.TB, sub *Subscription) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(testCtx(), 10*time.Second)
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
	ctx, cancel := context.WithCancel(testCtx())
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
				if _, err := sub.Next(testCtx()); err != nil {
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

// A reconnecting reader resumes after the last event id it saw
// (Last-Event-ID) while the writer keeps publishing: the events it reads
// across any number of reconnects are the run's events, each exactly once.
func TestHubResumeAfterLastEventID(t *testing.T) {
	hub := NewHub(time.Minute)
	const n = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			hub.Publish("run_r", "thread.message.delta", json.RawMessage(fmt.Sprintf(`{"thread_id":"thread_r","i":%d}`, i)))
		}
		hub.Publish("run_r", "thread.run.completed", json.RawMessage(`{"thread_id":"thread_r"}`))
	}()
	ctx, cancel := context.WithTimeout(testCtx(), 10*time.Second)
	defer cancel()
	var got []Event
	last := int64(0)
	for reconnects := 0; ; reconnects++ {
		sub := hub.Subscribe("run_r", last)
		// Each connection reads a few events, then "drops".
		for k := 0; k < 7; k++ {
			ev, err := sub.Next(ctx)
			if err != nil {
				t.Fatalf("after %d events: %v", len(got), err)
			}
			got = append(got, ev)
			last = ev.ID
			if ev.EndsSegment() {
				break
			}
		}
		if got[len(got)-1].EndsSegment() {
			break
		}
	}
	<-done
	if len(got) != n+1 {
		t.Fatalf("read %d events across reconnects, want %d", len(got), n+1)
	}
	for i, ev := range got {
		if ev.ID != int64(i+1) {
			t.Fatalf("event %d has id %d: lost or duplicated", i, ev.ID)
		}
	}
}

// A reader of a run with no log (finished and dropped, or from before a
// restart) gets the store's snapshot first; the hub creates no log for it.
func TestHubFollowFinishedRunFromStore(t *testing.T) {
	hub := NewHub(time.Minute)
	loads := 0
	load := func(context.Context) ([]Event, error) {
		loads++
		return []Event{{Name: "thread.run.step.completed", Data: json.RawMessage(`{"id":"step_1"}`)},
			{Name: "thread.run.completed", Data: json.RawMessage(`{"id":"run_gone","thread_id":"thread_1"}`)}}, nil
	}
	sub := hub.Follow("run_gone", 42, load)
	ctx, cancel := context.WithTimeout(testCtx(), 5*time.Second)
	defer cancel()
	var names []string
	for {
		ev, err := sub.Next(ctx)
		if err == ErrFinished {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, ev.Name)
	}
	if diff := cmp.Diff([]string{"thread.run.step.completed", "thread.run.completed"}, names); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}
	if loads != 1 {
		t.Errorf("loaded the snapshot %d times, want 1", loads)
	}
	if hub.Logged("run_gone") || hub.Position("run_gone") != 0 {
		t.Error("reading an unknown run created a log for it")
	}
	hub.mu.Lock()
	n := len(hub.logs)
	hub.mu.Unlock()
	if n != 0 {
		t.Errorf("hub holds %d logs after reads of unknown runs, want 0", n)
	}
}

// A reader of an unfinished run without a log (say, a queued run after a
// restart) gets the snapshot and then the run's live events from the log
// that its next publish creates.
func TestHubFollowSnapshotThenLive(t *testing.T) {
	hub := NewHub(time.Minute)
	loaded := make(chan struct{})
	load := func(context.Context) ([]Event, error) {
		defer close(loaded)
		return []Event{{Name: "thread.run.queued", Data: json.RawMessage(`{"id":"run_q","thread_id":"thread_q"}`)}}, nil
	}
	sub := hub.Follow("run_q", 0, load)
	ctx, cancel := context.WithTimeout(testCtx(), 5*time.Second)
	defer cancel()
	got := make(chan []string, 1)
	go func() {
		var names []string
		for {
			ev, err := sub.Next(ctx)
			if err != nil {
				t.Error(err)
				got <- names
				return
			}
			names = append(names, ev.Name)
			if ev.EndsSegment() {
				got <- names
				return
			}
		}
	}()
	<-loaded
	hub.Publish("run_q", "thread.run.in_progress", json.RawMessage(`{"id":"run_q","thread_id":"thread_q"}`))
	hub.Publish("run_q", "thread.message.delta", json.RawMessage(`{"id":"msg_1"}`))
	hub.Publish("run_q", "thread.run.completed", json.RawMessage(`{"id":"run_q","thread_id":"thread_q"}`))
	want := []string{"thread.run.queued", "thread.run.in_progress", "thread.message.delta", "thread.run.completed"}
	if diff := cmp.Diff(want, <-got); diff != "" {
		t.Errorf("snapshot then live (-want +got):\n%s", diff)
	}
}

// Subscribe to a run that has not published yet creates no log; the
// reader sees the run's events once it does.
func TestHubSubscribeBeforeFirstEventCreatesNothing(t *testing.T) {
	hub := NewHub(time.Minute)
	sub := hub.Subscribe("run_later", 0)
	if hub.Logged("run_later") {
		t.Fatal("Subscribe created a log")
	}
	hub.Publish("run_later", "thread.run.created", json.RawMessage(`{"thread_id":"thread_1"}`))
	hub.Publish("run_later", "thread.run.completed", json.RawMessage(`{"thread_id":"thread_1"}`))
	if evs := readAll(t, sub); len(evs) != 2 {
		t.Fatalf("read %d events, want 2", len(evs))
	}
}

// A thread's follower learns of every run on the thread as it starts.
func TestHubWaitThread(t *testing.T) {
	hub := NewHub(time.Minute)
	ctx, cancel := context.WithTimeout(testCtx(), 5*time.Second)
	defer cancel()
	result := make(chan []string, 1)
	go func() {
		runs, err := hub.WaitThread(ctx, "thread_w", nil)
		if err != nil {
			t.Error(err)
		}
		result <- runs
	}()
	hub.Publish("run_other", "thread.run.created", json.RawMessage(`{"id":"run_other","thread_id":"thread_x"}`))
	hub.Publish("run_1", "thread.created", json.RawMessage(`{"id":"thread_w","object":"thread"}`))
	hub.Publish("run_1", "thread.run.created", json.RawMessage(`{"id":"run_1","thread_id":"thread_w"}`))
	if diff := cmp.Diff([]string{"run_1"}, <-result); diff != "" {
		t.Errorf("thread runs (-want +got):\n%s", diff)
	}
	hub.Publish("run_2", "thread.run.created", json.RawMessage(`{"id":"run_2","thread_id":"thread_w"}`))
	runs, err := hub.WaitThread(ctx, "thread_w", []string{"run_1"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"run_1", "run_2"}, runs); diff != "" {
		t.Errorf("thread runs (-want +got):\n%s", diff)
	}
}

// testCtx is the context of a test's own calls: scoped to the Default
// project, as a request with a Default-project key is.
func testCtx() context.Context { return db.WithProject(context.Background(), db.DefaultProjectID) }

// TestHubNotifyWakesReaderWithoutGoroutine: a reader driven by Notify and
// TryNext (a detached stream) is woken by the publish that creates the
// run's log and by every later one, reads every event once in order, and
// is not woken after Stop.
func TestHubNotifyWakesReaderWithoutGoroutine(t *testing.T) {
	hub := NewHub(time.Minute)
	sub := hub.Subscribe("run_n", 0)
	if _, ok := sub.TryNext(); ok {
		t.Fatal("TryNext returned an event of a run with no log")
	}
	woken := make(chan struct{}, 8)
	wake := func() { woken <- struct{}{} }
	sub.Notify(wake) // no log yet: waits for it to be born
	if len(woken) != 0 {
		t.Fatal("woken before anything was published")
	}
	hub.Publish("run_n", "thread.run.created", json.RawMessage(`{"thread_id":"thread_1"}`))
	if len(woken) != 1 {
		t.Fatalf("the publish that created the log woke the reader %d times, want 1", len(woken))
	}
	<-woken
	var got []string
	drain := func() {
		for {
			ev, ok := sub.TryNext()
			if !ok {
				return
			}
			got = append(got, ev.Name)
		}
	}
	drain()
	// Events published while nobody is notified are read at the next
	// Notify, which wakes at once since they are there.
	hub.Publish("run_n", "thread.run.queued", json.RawMessage(`{}`))
	sub.Notify(wake)
	if len(woken) != 1 {
		t.Fatalf("Notify with an event ready woke %d times, want 1 (at once)", len(woken))
	}
	<-woken
	drain()
	sub.Notify(wake)
	sub.Notify(wake) // a second Notify replaces the first: one wake
	hub.Publish("run_n", "thread.run.in_progress", json.RawMessage(`{}`))
	hub.Publish("run_n", "thread.message.delta", json.RawMessage(`{}`))
	if len(woken) != 1 {
		t.Fatalf("two publishes after one Notify woke %d times, want 1", len(woken))
	}
	<-woken
	drain()
	sub.Notify(wake)
	sub.Stop()
	hub.Publish("run_n", "thread.run.completed", json.RawMessage(`{}`))
	if len(woken) != 0 {
		t.Fatal("woken after Stop")
	}
	drain()
	want := []string{"thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.message.delta", "thread.run.completed"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events read (-want +got):\n%s", diff)
	}
	if n := len(hub.awaiting); n != 0 {
		t.Errorf("%d runs still have readers awaiting their log", n)
	}
}

// TestHubNotifyUnderConcurrentPublish: a Notify-driven reader racing a
// publisher never misses a wake: it reads all events.
func TestHubNotifyUnderConcurrentPublish(t *testing.T) {
	hub := NewHub(time.Minute)
	const n = 2000
	sub := hub.Subscribe("run_c", 0)
	done := make(chan []int64)
	var read func()
	var ids []int64
	read = func() {
		for {
			ev, ok := sub.TryNext()
			if !ok {
				break
			}
			ids = append(ids, ev.ID)
			if ev.EndsSegment() {
				done <- ids
				return
			}
		}
		sub.Notify(func() { go read() })
	}
	read()
	for i := 0; i < n; i++ {
		hub.Publish("run_c", "thread.message.delta", json.RawMessage(`{}`))
	}
	hub.Publish("run_c", "thread.run.completed", json.RawMessage(`{}`))
	select {
	case ids := <-done:
		if len(ids) != n+1 {
			t.Fatalf("read %d events, want %d", len(ids), n+1)
		}
		for i, id := range ids {
			if id != int64(i+1) {
				t.Fatalf("event %d has id %d", i, id)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the reader stalled after %d events: a wake was missed", len(ids))
	}
}
