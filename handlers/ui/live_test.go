package ui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/ui"
)

// newLiveApp is the web app with a run engine whose hub the test
// publishes into directly (the engine is not started: no runs execute).
func newLiveApp(t *testing.T) (*app, *agent.Hub) {
	t.Helper()
	hub := agent.NewHub(time.Minute)
	a := newAppWith(t, func(cfg *ui.Config, store *db.Store) {
		ps, err := agent.NewProviders(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Engine = agent.New(store, ps, hub, cfg.Log, agent.Config{})
	}, nil)
	return a, hub
}

type sseEvent struct {
	id    string
	event string
	run   string
}

// stream opens the thread's event stream (with lastID as Last-Event-ID,
// when set) and returns a function reading its next event.
func stream(t *testing.T, c *client, threadID, lastID string) func() sseEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(testCtx(), 10*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/threads/"+threadID+"/events", nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res := c.do(req)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(res.Body)
	return func() sseEvent {
		t.Helper()
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				var d struct{ Run, Event string }
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d); err != nil {
					t.Fatalf("data %q: %v", line, err)
				}
				ev.event, ev.run = d.Event, d.Run
			case line == "" && ev.id != "":
				return ev
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return ev
	}
}

func publish(hub *agent.Hub, runID, threadID, name string) {
	hub.Publish(runID, name, json.RawMessage(fmt.Sprintf(`{"id":%q,"thread_id":%q}`, runID, threadID)))
}

// A page's stream resumes right after its Last-Event-ID: nothing before
// it again, nothing after it lost; and it follows the thread to its next
// run, started elsewhere.
func TestThreadEventsResumeAndFollowTheThread(t *testing.T) {
	a, hub := newLiveApp(t)
	c := a.user(db.RoleViewer)
	th, _, err := a.store.CreateThread(testCtx(), db.Thread{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	publish(hub, "run_one", th.ID, "thread.run.created")
	publish(hub, "run_one", th.ID, "thread.run.queued")
	publish(hub, "run_one", th.ID, "thread.run.in_progress")
	publish(hub, "run_one", th.ID, "thread.message.delta")

	next := stream(t, c, th.ID, "run_one/2")
	for _, want := range []string{"run_one/3 thread.run.in_progress", "run_one/4 thread.message.delta"} {
		if ev := next(); ev.id+" "+ev.event != want {
			t.Fatalf("got %s %s, want %s", ev.id, ev.event, want)
		}
	}
	publish(hub, "run_one", th.ID, "thread.run.completed")
	if ev := next(); ev.id != "run_one/5" || ev.event != "thread.run.completed" {
		t.Fatalf("got %+v, want run_one/5 completed", ev)
	}
	// A run started elsewhere on the thread shows up on the same stream.
	publish(hub, "run_two", th.ID, "thread.run.created")
	if ev := next(); ev.id != "run_two/1" || ev.run != "run_two" {
		t.Fatalf("got %+v, want run_two/1", ev)
	}

	// Without Last-Event-ID the latest run is replayed from its start.
	fresh := stream(t, c, th.ID, "")
	if ev := fresh(); ev.id != "run_two/1" {
		t.Fatalf("fresh stream starts at %s, want run_two/1", ev.id)
	}
}

// A resume from a run whose log is gone gets the run from the store as
// one snapshot event, then whatever the thread does next.
func TestThreadEventsSnapshotFromStore(t *testing.T) {
	a, hub := newLiveApp(t)
	c := a.user(db.RoleViewer)
	ctx := testCtx()
	th, run, err := a.store.CreateThreadAndRun(ctx, db.Thread{}, nil, db.Run{AssistantID: "asst_x", Model: "m",
		TruncationStrategy: &db.TruncationStrategy{Type: "auto"}, ToolChoice: json.RawMessage(`"auto"`)})
	if err != nil {
		t.Fatal(err)
	}
	next := stream(t, c, th.ID, run.ID+"/7")
	if ev := next(); ev.id != run.ID+"/0" || ev.event != "thread.run.queued" {
		t.Fatalf("got %+v, want the stored run as %s/0 thread.run.queued", ev, run.ID)
	}
	if hub.Logged(run.ID) {
		t.Fatal("serving a reader created a log for the run")
	}
	publish(hub, run.ID, th.ID, "thread.run.in_progress")
	if ev := next(); ev.id != run.ID+"/1" || ev.event != "thread.run.in_progress" {
		t.Fatalf("got %+v, want the run's live events after the snapshot", ev)
	}
}
