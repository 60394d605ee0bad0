package apitest

import (
	"context"
	"encoding/json"
	"testing"
)

// TestDeleteThreadStopsItsRun deletes a thread while its run streams: the
// run's upstream request stops, and the stream ends with the wrapped error
// event (spec §7.6) and done instead of the rest of the answer.
func TestDeleteThreadStopsItsRun(t *testing.T) {
	t.Parallel()
	s, _ := startRunServer(t)
	asst := newAssistant(t, s)
	thread := threadWith(t, s, "delete me mid-answer [[slow 100ms]] [[chunks 200]]")
	st := streamRun(t, s, thread, asst)
	defer st.close()
	deltas := 0
	for deltas == 0 {
		ev, ok := st.next()
		if !ok {
			t.Fatal("stream ended before the first delta")
		}
		if ev.Name == "thread.message.delta" {
			deltas++
		}
	}
	if _, err := s.Client.Beta.Threads.Delete(context.Background(), thread); err != nil {
		t.Fatalf("delete thread: %v", err)
	}
	var names []string
	for {
		ev, ok := st.next()
		if !ok {
			break
		}
		names = append(names, ev.Name)
		switch ev.Name {
		case "thread.message.delta":
			deltas++
		case "error":
			var body struct {
				Error struct{ Message, Type string } `json:"error"`
			}
			if err := json.Unmarshal([]byte(ev.Data), &body); err != nil || body.Error.Type != "server_error" || body.Error.Message == "" {
				t.Errorf("error event %s (%v)", ev.Data, err)
			}
		}
	}
	if len(names) < 2 || names[len(names)-2] != "error" || names[len(names)-1] != "done" {
		t.Fatalf("stream after deleting the thread ended with %v, want … error, done", names)
	}
	if deltas >= 200 {
		t.Errorf("the whole answer (%d deltas) was streamed after the thread was deleted", deltas)
	}
}
