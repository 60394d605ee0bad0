package agent_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
)

// traced returns a tracer provider recording to an in-memory exporter.
func traced(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(testCtx()) })
	return tp, exp
}

// createTraced creates a run the way a traced request does: inside a
// server span, which the run keeps as its trace.
func createTraced(t *testing.T, e *env, tp trace.TracerProvider, text string) (db.Run, trace.SpanContext) {
	t.Helper()
	ctx, span := tp.Tracer("test").Start(testCtx(), "POST /v1/threads/:thread_id/runs", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	th, _, err := e.store.CreateThread(ctx, db.Thread{}, []db.Message{{Role: "user", Status: "completed",
		Content: []db.ContentPart{{Type: "text", Text: &db.Text{Value: text, Annotations: []db.Annotation{}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := e.engine.CreateRun(ctx, db.Run{ThreadID: th.ID, AssistantID: e.assist.ID, Model: "fake-model",
		Tools: e.assist.Tools, ToolChoice: json.RawMessage(`"auto"`), ResponseFormat: json.RawMessage(`"auto"`),
		ParallelToolCalls: true, TruncationStrategy: &db.TruncationStrategy{Type: "auto"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return run, span.SpanContext()
}

// spansUntil polls the exporter until it holds n spans named name.
func spansUntil(t *testing.T, exp *tracetest.InMemoryExporter, name string, n int) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		all := exp.GetSpans()
		var got int
		for _, s := range all {
			if s.Name == name {
				got++
			}
		}
		if got >= n {
			return all
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %q spans, want %d; have %v", got, name, n, spanNames(all))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func spanNames(ss tracetest.SpanStubs) []string {
	var n []string
	for _, s := range ss {
		n = append(n, s.Name)
	}
	return n
}

func attrs(s tracetest.SpanStub) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

func named(ss tracetest.SpanStubs, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range ss {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// One run with a tool call: invoke_agent under the creating request's
// span, two chat spans and one execute_tool span under it, with the GenAI
// attributes, and no message contents anywhere.
func TestRunTrace(t *testing.T) {
	tp, exp := traced(t)
	code := &echoCode{}
	e := newEnv(t, agent.Config{Builtins: []agent.Builtin{code}}, func(en *agent.Engine) { en.EnableTracing(tp) })
	run, parent := createTraced(t, e, tp, `secret-prompt [[call code_interpreter {"code":"secret_code()"}]]`)
	if evs := e.events(t, run.ID); evs[len(evs)-1].Name != "thread.run.completed" {
		t.Fatalf("run ended %s", names(evs))
	}
	all := spansUntil(t, exp, "invoke_agent", 1)

	inv := named(all, "invoke_agent")
	if len(inv) != 1 {
		t.Fatalf("%d invoke_agent spans", len(inv))
	}
	agentSpan := inv[0]
	if agentSpan.SpanContext.TraceID() != parent.TraceID() || agentSpan.Parent.SpanID() != parent.SpanID() {
		t.Errorf("invoke_agent is not a child of the request's span")
	}
	a := attrs(agentSpan)
	if a["gen_ai.operation.name"] != "invoke_agent" || a["gen_ai.agent.id"] != e.assist.ID || a["gen_ai.conversation.id"] != run.ThreadID ||
		a["assistantd.run.id"] != run.ID {
		t.Errorf("invoke_agent attributes %v", a)
	}
	chats := named(all, "chat fake-model")
	tools := named(all, "execute_tool code_interpreter")
	if len(chats) != 2 || len(tools) != 1 {
		t.Fatalf("spans %v, want two chat and one execute_tool", spanNames(all))
	}
	for _, s := range append(chats, tools...) {
		if s.Parent.SpanID() != agentSpan.SpanContext.SpanID() || s.SpanContext.TraceID() != parent.TraceID() {
			t.Errorf("%s is not a child of invoke_agent", s.Name)
		}
	}
	c := attrs(chats[0])
	if c["gen_ai.operation.name"] != "chat" || c["gen_ai.provider.name"] != "fake" || c["gen_ai.request.model"] != "fake-model" ||
		c["gen_ai.usage.input_tokens"] == "" || chats[0].SpanKind != trace.SpanKindClient {
		t.Errorf("chat attributes %v (kind %v)", c, chats[0].SpanKind)
	}
	if ta := attrs(tools[0]); ta["gen_ai.tool.name"] != "code_interpreter" || ta["gen_ai.tool.call.id"] == "" {
		t.Errorf("execute_tool attributes %v", ta)
	}
	for _, s := range all {
		for k, v := range attrs(s) {
			if strings.Contains(v, "secret") {
				t.Errorf("span %s attribute %s carries message or tool contents: %q", s.Name, k, v)
			}
		}
		for _, ev := range s.Events {
			for _, kv := range ev.Attributes {
				if strings.Contains(kv.Value.Emit(), "secret") {
					t.Errorf("span %s event %s carries contents", s.Name, ev.Name)
				}
			}
		}
	}
}

// A run stopped mid-tool by a shutdown and resumed by the next engine
// continues its trace: the resumed execution's span is in the same trace,
// under the same request span.
func TestResumedRunJoinsItsTrace(t *testing.T) {
	tp, exp := traced(t)
	var calls atomic.Int32
	started := make(chan string, 4)
	code := &echoCode{started: started, block: func(ctx context.Context, _ string) error {
		if calls.Add(1) == 1 {
			<-ctx.Done() // the first attempt runs until the server stops
			return ctx.Err()
		}
		return nil
	}}
	e := newEnv(t, agent.Config{Builtins: []agent.Builtin{code}}, func(en *agent.Engine) { en.EnableTracing(tp) })
	run, parent := createTraced(t, e, tp, `[[call code_interpreter {"code":"x"}]]`)
	select {
	case <-started:
	case <-time.After(waitFor):
		t.Fatal("the tool never started")
	}
	e.restart(t)
	e.waitStatus(t, run, db.RunCompleted)
	all := spansUntil(t, exp, "invoke_agent", 2)
	inv := named(all, "invoke_agent")
	if len(inv) != 2 {
		t.Fatalf("%d invoke_agent spans, want 2", len(inv))
	}
	for i, s := range inv {
		if s.SpanContext.TraceID() != parent.TraceID() || s.Parent.SpanID() != parent.SpanID() {
			t.Errorf("execution %d: trace %s parent %s, want trace %s parent %s", i, s.SpanContext.TraceID(), s.Parent.SpanID(),
				parent.TraceID(), parent.SpanID())
		}
	}
	if attrs(inv[0])["assistantd.run.resumed"] != "false" || attrs(inv[1])["assistantd.run.resumed"] != "true" {
		t.Errorf("resumed flags %v, %v", attrs(inv[0]), attrs(inv[1]))
	}
}
