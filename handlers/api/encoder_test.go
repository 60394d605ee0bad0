package api

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
)

// runEvents is what the engine publishes for a background response that
// answers "Hi there" in two fragments.
func runEvents(t *testing.T) []agent.Event {
	t.Helper()
	ev := func(name string, v any) agent.Event {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return agent.Event{Name: name, Data: b}
	}
	run := db.Run{ID: "run_1", ThreadID: "thread_1", Status: db.RunQueued}
	msg := db.Message{ID: "msg_1", ThreadID: "thread_1", Role: "assistant", Status: "in_progress"}
	done := msg
	done.Status = "completed"
	done.Content = []db.ContentPart{{Type: "text", Text: &db.Text{Value: "Hi there", Annotations: []db.Annotation{}}}}
	delta := func(s string) map[string]any {
		return map[string]any{"id": "msg_1", "delta": map[string]any{"content": []any{map[string]any{"index": 0, "type": "text", "text": map[string]any{"value": s}}}}}
	}
	return []agent.Event{
		ev("thread.created", db.Thread{ID: "thread_1"}),
		ev("thread.run.created", run), ev("thread.run.queued", run), ev("thread.run.in_progress", run),
		ev("thread.run.step.created", db.RunStep{ID: "step_1"}), ev("thread.message.created", msg),
		ev("thread.message.delta", delta("Hi ")), ev("thread.message.delta", delta("there")),
		ev("thread.message.completed", done), ev("thread.run.step.completed", db.RunStep{ID: "step_1", Type: db.StepMessageCreation}),
		ev("thread.run.completed", run),
	}
}

func encodeAll(t *testing.T, evs []agent.Event) ([]string, []string) {
	t.Helper()
	rec := db.ResponseRecord{ID: "resp_1", Background: true, Store: true}
	final := func() (responseObject, error) { return shell(rec, "m", "completed"), nil }
	en := newEncoder(rec, "m", nil, final)
	var types, datas []string
	for _, ev := range evs {
		frames, done, err := en.encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			b, _ := json.Marshal(f.data)
			types, datas = append(types, f.typ), append(datas, string(b))
		}
		if done {
			break
		}
	}
	return types, datas
}

// TestEncoder: the Responses events of a run's log, in the order the SDKs
// expect; encoding the same log again (a replay) gives the same events
// with the same sequence numbers; a log that starts late (a run resumed
// after a restart) still starts with response.created.
func TestEncoder(t *testing.T) {
	evs := runEvents(t)
	types, first := encodeAll(t, evs)
	want := []string{"response.created", "response.queued", "response.in_progress", "response.output_item.added",
		"response.content_part.added", "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
		"response.content_part.done", "response.output_item.done", "response.completed"}
	if diff := cmp.Diff(want, types); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	_, again := encodeAll(t, evs)
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("a replay differs (-first +again):\n%s", diff)
	}
	late, _ := encodeAll(t, evs[3:]) // from thread.run.in_progress
	if !slices.Equal(late[:3], want[:3]) || late[len(late)-1] != "response.completed" {
		t.Errorf("late log: %v", late)
	}
}
