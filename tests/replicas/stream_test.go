package replicas

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"
)

// streamed is what a client read from a run's event stream.
type streamed struct {
	names    []string
	text     map[string]*strings.Builder // message id → text of its deltas
	final    map[string]string           // message id → "status: text" of its last message event
	run      string
	thread   string
	messages []string // message ids in the order they were created
}

// readStream reads a run's stream to its end; onEvent, if set, sees each
// event name as it arrives.
func readStream(t *testing.T, stream *ssestream.Stream[openai.AssistantStreamEventUnion], onEvent func(string)) streamed {
	t.Helper()
	s := streamed{text: map[string]*strings.Builder{}, final: map[string]string{}}
	for stream.Next() {
		ev := stream.Current()
		s.names = append(s.names, ev.Event)
		switch v := ev.AsAny().(type) {
		case openai.AssistantStreamEventThreadRunCreated:
			s.run, s.thread = v.Data.ID, v.Data.ThreadID
		case openai.AssistantStreamEventThreadMessageCreated:
			s.messages = append(s.messages, v.Data.ID)
			s.text[v.Data.ID] = &strings.Builder{}
		case openai.AssistantStreamEventThreadMessageDelta:
			b := s.text[v.Data.ID]
			if b == nil {
				t.Errorf("delta of message %s before its thread.message.created", v.Data.ID)
				b = &strings.Builder{}
				s.text[v.Data.ID] = b
			}
			for _, c := range v.Data.Delta.Content {
				b.WriteString(c.AsText().Text.Value)
			}
		case openai.AssistantStreamEventThreadMessageCompleted:
			s.final[v.Data.ID] = string(v.Data.Status) + ": " + msgText(v.Data)
		case openai.AssistantStreamEventThreadMessageIncomplete:
			s.final[v.Data.ID] = string(v.Data.Status) + ": " + msgText(v.Data)
		}
		if onEvent != nil {
			onEvent(ev.Event)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	return s
}

func msgText(m openai.Message) string {
	var parts []string
	for _, c := range m.Content {
		if c.Type == "text" {
			parts = append(parts, c.Text.Value)
		}
	}
	return strings.Join(parts, "")
}

func count(names []string, name string) int {
	n := 0
	for _, x := range names {
		if x == name {
			n++
		}
	}
	return n
}

func streamParams(asst, text string) openai.BetaThreadNewAndRunParams {
	return openai.BetaThreadNewAndRunParams{AssistantID: asst,
		Thread: openai.BetaThreadNewAndRunParamsThread{Messages: []openai.BetaThreadNewAndRunParamsThreadMessage{{Role: "user",
			Content: openai.BetaThreadNewAndRunParamsThreadMessageContentUnion{OfString: openai.String(text)}}}}}
}

func streamContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestStreamAcrossReplicas: a run created (streaming) through an API-only
// replica and executed by a worker streams through the API replica with
// every event once, in order: the whole answer from its deltas.
func TestStreamAcrossReplicas(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", "--role", "api")
	c.start("b", "--role", "worker")
	asst := newAssistant(t, a)
	got := readStream(t, a.Client.Beta.Threads.NewAndRunStreaming(streamContext(t), streamParams(asst, "across [[slow 10ms]] [[chunks 50]]")), nil)
	want := []string{"thread.created", "thread.run.created", "thread.run.queued", "thread.run.in_progress",
		"thread.run.step.created", "thread.run.step.in_progress", "thread.message.created", "thread.message.in_progress"}
	if len(got.names) < len(want) || !slices.Equal(got.names[:len(want)], want) {
		t.Fatalf("stream starts %q, want %q", got.names, want)
	}
	tail := []string{"thread.message.completed", "thread.run.step.completed", "thread.run.completed"}
	if !slices.Equal(got.names[len(got.names)-3:], tail) {
		t.Errorf("stream ends %q, want %q", got.names[len(got.names)-3:], tail)
	}
	for i, name := range got.names[len(want) : len(got.names)-3] {
		if name != "thread.message.delta" {
			t.Errorf("event %d: %s among the deltas", len(want)+i, name)
		}
	}
	if len(got.messages) != 1 {
		t.Fatalf("messages created: %q", got.messages)
	}
	m := got.messages[0]
	if got.text[m].String() != words(50) || got.final[m] != "completed: "+words(50) {
		t.Errorf("deltas gave %q, completed message %q; want %q", got.text[m].String(), got.final[m], words(50))
	}
	if row := c.runRow(got.run); row.Attempts != 1 || c.holder(row.ClaimedBy) != c.replicas[1] {
		t.Errorf("run claims: %+v", row)
	}
}

// TestKillMidStream: the worker executing a run streamed through an API
// replica is killed mid-answer. Another worker takes the run over after
// its lease; the reader sees the interrupted message ended
// (thread.message.incomplete), then the new answer, and one
// thread.run.completed; the upstream finished one answer.
func TestKillMidStream(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", "--role", "api", "--run-lease", "1s")
	c.start("b", "--role", "worker", "--run-lease", "1s")
	c.start("c", "--role", "worker", "--run-lease", "1s")
	asst := newAssistant(t, a)
	deltas := 0
	var killed time.Time
	var holder *replica
	got := readStream(t, a.Client.Beta.Threads.NewAndRunStreaming(streamContext(t), streamParams(asst, "midstream [[slow 20ms]] [[chunks 80]]")),
		func(name string) {
			if name == "thread.message.delta" {
				deltas++
			}
			if deltas == 10 && holder == nil {
				var by string
				_ = c.db.QueryRow(`SELECT claimed_by FROM runs WHERE status = 'in_progress'`).Scan(&by)
				if holder = c.holder(by); holder == nil {
					t.Fatalf("no replica holds the run (claimed_by %q)", by)
				}
				holder.kill()
				killed = time.Now()
			}
		})
	if holder == nil {
		t.Fatalf("the stream ended before the kill: %q", got.names)
	}
	if len(got.messages) != 2 {
		t.Fatalf("messages created in the stream: %q (events %q)", got.messages, got.names)
	}
	orphan, answer := got.messages[0], got.messages[1]
	if !strings.HasPrefix(got.final[orphan], "incomplete") {
		t.Errorf("the interrupted message ended %q, want incomplete", got.final[orphan])
	}
	if got.final[answer] != "completed: "+words(80) || got.text[answer].String() != words(80) {
		t.Errorf("the answer: deltas %q, completed %q", got.text[answer].String(), got.final[answer])
	}
	if n := count(got.names, "thread.run.completed"); n != 1 || got.names[len(got.names)-1] != "thread.run.completed" {
		t.Errorf("thread.run.completed %d times; stream ends %q", n, got.names[len(got.names)-1])
	}
	t.Logf("kill -9 to the run continuing on another replica (lease 1s): the stream ended %v after the kill", time.Since(killed).Round(time.Millisecond))
	finished := 0
	for _, r := range c.watch.requests("midstream") {
		if r.finished {
			finished++
		}
	}
	if finished != 1 {
		t.Errorf("upstream finished %d answers, want 1", finished)
	}
	if msgs := assistantMessages(t, a, got.thread); !slices.Equal(msgs, []string{"completed: " + words(80)}) {
		t.Errorf("stored assistant messages: %q", msgs)
	}
}

// TestRequiresActionStream: a run reaches requires_action on a worker
// while streamed through A; its outputs are submitted (streaming) through
// C, and the rest streams through C from the step's completion on.
func TestRequiresActionStream(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", "--role", "api")
	c.start("b", "--role", "worker")
	cc := c.start("c", "--role", "api")
	asst := newAssistant(t, a)
	first := readStream(t, a.Client.Beta.Threads.NewAndRunStreaming(streamContext(t),
		streamParams(asst, `weather? [[call get_weather {"city":"Oslo"}]]`)), nil)
	if last := first.names[len(first.names)-1]; last != "thread.run.requires_action" {
		t.Fatalf("first segment ends %q", first.names)
	}
	run, err := cc.Client.Beta.Threads.Runs.Get(context.Background(), first.thread, first.run)
	if err != nil {
		t.Fatal(err)
	}
	calls := run.RequiredAction.SubmitToolOutputs.ToolCalls
	second := readStream(t, cc.Client.Beta.Threads.Runs.SubmitToolOutputsStreaming(streamContext(t), first.thread, first.run,
		openai.BetaThreadRunSubmitToolOutputsParams{ToolOutputs: []openai.BetaThreadRunSubmitToolOutputsParamsToolOutput{
			{ToolCallID: openai.String(calls[0].ID), Output: openai.String("sunny")}}}), nil)
	if len(second.names) == 0 || second.names[0] != "thread.run.step.completed" || second.names[1] != "thread.run.queued" ||
		second.names[len(second.names)-1] != "thread.run.completed" {
		t.Fatalf("second segment: %q", second.names)
	}
	if len(second.messages) != 1 || second.final[second.messages[0]] != "completed: Tool results: sunny" {
		t.Errorf("answer after the outputs: %q", second.final)
	}
}
