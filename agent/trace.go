package agent

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/telemetry"
)

// Traces follow OpenTelemetry's GenAI conventions: an invoke_agent span
// per execution of a run (gen_ai.agent.id is the assistant,
// gen_ai.conversation.id the thread), a "chat {model}" client span per
// upstream request, an "execute_tool {name}" span per server-side tool
// call. Spans carry ids, models, token counts and outcomes, never message
// contents, tool arguments or outputs.
//
// A run keeps the traceparent of the request that created it (or of its
// first execution), written in its first claim's transaction: every later
// execution — after tool outputs, or resumed after a restart — is a child
// of it, in the same trace.

// EnableTracing makes the engine trace its runs with tp. Call it before
// Start.
func (e *Engine) EnableTracing(tp trace.TracerProvider) {
	e.tracer = tp.Tracer("github.com/assistantd/assistantd/agent")
	e.tracing = true
}

func (e *Engine) tr() trace.Tracer {
	if e.tracer == nil {
		return noop.NewTracerProvider().Tracer("")
	}
	return e.tracer
}

// runTrace returns the traceparent the run keeps, keeping the job's (the
// creating request's) if it has none yet. tx is the claim's transaction;
// without tracing it does nothing.
func (e *Engine) runTrace(ctx context.Context, tx *db.Tx, j job) (string, error) {
	if !e.tracing {
		return "", nil
	}
	tp, err := tx.RunTrace(ctx, j.runID)
	if err != nil || tp != "" || j.traceparent == "" {
		return tp, err
	}
	return j.traceparent, tx.SetRunTrace(ctx, j.runID, j.traceparent)
}

// startExecution starts the invoke_agent span of one execution of run,
// a child of the run's traceparent. A run without one (enqueued by the
// sweeper, not by a request) starts a trace, which it then keeps.
func (e *Engine) startExecution(ctx context.Context, run *db.Run, traceparent string, resumed bool) (context.Context, trace.Span) {
	if !e.tracing {
		return ctx, trace.SpanFromContext(ctx)
	}
	ctx, span := e.tr().Start(telemetry.WithTraceparent(ctx, traceparent), "invoke_agent", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("gen_ai.operation.name", "invoke_agent"), attribute.String("gen_ai.agent.id", run.AssistantID),
			attribute.String("gen_ai.conversation.id", run.ThreadID), attribute.String("gen_ai.request.model", run.Model),
			attribute.String("assistantd.run.id", run.ID), attribute.Bool("assistantd.run.resumed", resumed)))
	if traceparent == "" {
		if err := e.store.Batch(context.WithoutCancel(ctx), func(ctx context.Context, tx *db.Tx) error {
			return tx.SetRunTrace(ctx, run.ID, telemetry.Traceparent(ctx))
		}); err != nil {
			e.log.Warn("keep run trace", "run_id", run.ID, "error", err)
		}
	}
	return ctx, span
}

// startChat starts the client span of one upstream request.
func (e *Engine) startChat(ctx context.Context, provider, model string, stream bool) (context.Context, trace.Span) {
	if !e.tracing {
		return ctx, trace.SpanFromContext(ctx)
	}
	return e.tr().Start(ctx, "chat "+model, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.provider.name", provider),
			attribute.String("gen_ai.request.model", model), attribute.Bool("gen_ai.request.stream", stream)))
}

// endChat ends an upstream request's span with its outcome and usage.
func endChat(span trace.Span, outcome, finish string, usage *db.Usage, err error) {
	if !span.IsRecording() {
		return
	}
	if finish != "" {
		span.SetAttributes(attribute.StringSlice("gen_ai.response.finish_reasons", []string{finish}))
	}
	if usage != nil {
		span.SetAttributes(attribute.Int64("gen_ai.usage.input_tokens", usage.PromptTokens),
			attribute.Int64("gen_ai.usage.output_tokens", usage.CompletionTokens))
	}
	if err != nil {
		span.SetAttributes(attribute.String("error.type", outcome))
		span.SetStatus(codes.Error, outcome)
	}
	span.End()
}

// startTool starts the span of one server-side tool call.
func (e *Engine) startTool(ctx context.Context, call ToolCall) (context.Context, trace.Span) {
	if !e.tracing {
		return ctx, trace.SpanFromContext(ctx)
	}
	return e.tr().Start(ctx, "execute_tool "+call.Name, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("gen_ai.operation.name", "execute_tool"), attribute.String("gen_ai.tool.name", call.Name),
			attribute.String("gen_ai.tool.call.id", call.ID)))
}

// endSpan ends a span, marking it failed with err's kind (not its text,
// which may quote contents) when err is set.
func endSpan(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.SetAttributes(attribute.String("error.type", fmt.Sprintf("%T", err)))
		span.SetStatus(codes.Error, "")
	}
	span.End()
}
