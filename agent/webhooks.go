package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/assistantd/assistantd/agent/webhook"
	"github.com/assistantd/assistantd/db"
)

// WebhookStore is what the webhook runner needs from the store: the
// webhook configured for a function, and a place to record every attempt.
type WebhookStore interface {
	GetWebhook(ctx context.Context, assistantID, functionName string) (db.Webhook, error)
	RecordDelivery(ctx context.Context, d db.Delivery) (db.Delivery, error)
}

// Webhooks routes function calls to the webhooks configured for them (a
// FunctionRouter): a function of the run's assistant with a webhook is
// delivered to it; any other goes to the client.
type Webhooks struct {
	store  WebhookStore
	client *webhook.Client
	log    *slog.Logger
	now    func() time.Time
}

// NewWebhooks returns the webhook router; client carries the address guard
// every delivery goes through.
func NewWebhooks(store WebhookStore, client *webhook.Client, log *slog.Logger) *Webhooks {
	return &Webhooks{store: store, client: client, log: log, now: time.Now}
}

// Function returns the runner of the webhook configured for the run's
// assistant's function name, if there is one.
func (w *Webhooks) Function(ctx context.Context, run db.Run, name string) (Runner, bool, error) {
	hook, err := w.store.GetWebhook(ctx, run.AssistantID, name)
	if errors.Is(err, db.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("webhook for %s: %w", name, err)
	}
	return &webhookRunner{w: w, hook: hook}, true, nil
}

// webhookRunner delivers calls to one webhook.
type webhookRunner struct {
	w    *Webhooks
	hook db.Webhook
}

// Run delivers the call, records each attempt, and returns the webhook's
// output. When every attempt failed, the model reads {"error": "..."}, or,
// with on_failure "requires_action", the call goes to the client.
func (r *webhookRunner) Run(ctx context.Context, call ToolCall) (ToolResult, error) {
	body, err := json.Marshal(webhook.Payload{
		Type:        "function_call",
		ToolCallID:  call.ID,
		Function:    webhook.PayloadFunction{Name: call.Name, Arguments: call.Arguments},
		RunID:       call.Run.ID,
		ThreadID:    call.Run.ThreadID,
		AssistantID: call.Run.AssistantID,
		CreatedAt:   r.w.now().Unix(),
	})
	if err != nil {
		return ToolResult{}, fmt.Errorf("webhook payload: %w", err)
	}
	id := webhook.MessageID(call.ID)
	target := webhook.Target{URL: r.hook.URL, Secret: r.hook.Secret,
		Timeout: time.Duration(r.hook.TimeoutMS) * time.Millisecond, MaxRetries: r.hook.MaxRetries}
	output, err := r.w.client.Deliver(ctx, target, id, body, func(a webhook.Attempt) { r.record(ctx, call, id, a) })
	if err != nil {
		if ctx.Err() != nil {
			return ToolResult{}, ctx.Err()
		}
		var failed *webhook.Failed
		if !errors.As(err, &failed) {
			return ToolResult{}, fmt.Errorf("webhook %s: %w", call.Name, err)
		}
		if r.hook.OnFailure == db.OnFailureRequiresAction {
			return ToolResult{}, ErrToClient
		}
		out, _ := json.Marshal(map[string]string{"error": failed.Error()})
		output = string(out)
	}
	return ToolResult{
		Output: output,
		// Streams show the output as one last delta of the call.
		Delta: map[string]any{"output": output},
		Details: db.ToolCall{ID: call.ID, Type: "function",
			Function: &db.FunctionCallOutput{Name: call.Name, Arguments: call.Arguments, Output: &output}},
	}, nil
}

// record stores one attempt. It is written even when the run was just
// cancelled (the attempt happened), and a failure to record it is logged
// rather than failing the call: the delivery itself is what matters.
func (r *webhookRunner) record(ctx context.Context, call ToolCall, id string, a webhook.Attempt) {
	d := db.Delivery{RunID: call.Run.ID, ThreadID: call.Run.ThreadID, ToolCallID: call.ID, FunctionName: call.Name,
		WebhookID: id, Attempt: a.N, LatencyMS: a.Latency.Milliseconds(), Response: a.Response}
	if a.Status != 0 {
		d.StatusCode = &a.Status
	}
	if a.Err != "" {
		d.Error = &a.Err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := r.w.store.RecordDelivery(rctx, d); err != nil {
		r.w.log.Warn("record webhook delivery", "run", call.Run.ID, "call", call.ID, "err", err)
	}
}
