package ui

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent/webhook"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
	"github.com/assistantd/assistantd/views"
)

// The assistant editor's webhook sections: each function of a stored
// assistant gets one, saved, tested and removed on its own (htmx posts
// only the section's fields), through the same validation and delivery
// client as the API.

// webhookStore is what the webhook sections need from the store.
type webhookStore interface {
	PutWebhook(ctx context.Context, w db.Webhook) (db.Webhook, error)
	GetWebhook(ctx context.Context, assistantID, functionName string) (db.Webhook, error)
	ListWebhooks(ctx context.Context, assistantID string) ([]db.Webhook, error)
	DeleteWebhook(ctx context.Context, assistantID, functionName string) error
	ListThreadDeliveries(ctx context.Context, threadID string) ([]db.Delivery, error)
}

// attachWebhooks gives every function the stored assistant has its
// webhook section. Functions added in the editor but not saved yet get
// none: a webhook belongs to a function the assistant has.
func (u *UI) attachWebhooks(ctx context.Context, f *views.AssistantForm) error {
	if f.ID == "" || u.cfg.Webhooks == nil {
		return nil
	}
	a, err := u.store.GetAssistant(ctx, f.ID)
	if err != nil {
		return err
	}
	hooks, err := u.store.ListWebhooks(ctx, f.ID)
	if err != nil {
		return err
	}
	byName := map[string]db.Webhook{}
	for _, h := range hooks {
		byName[h.FunctionName] = h
	}
	for i := range f.Functions {
		fn := &f.Functions[i]
		if fn.Webhook != nil || !assistantHasFunction(a, fn.Name) {
			continue // already set (a section just posted), or not saved yet
		}
		wf := webhookForm(f.ID, i, fn.Name)
		if h, ok := byName[fn.Name]; ok {
			fillWebhookForm(&wf, h)
		}
		wf.ReadOnly = f.ReadOnly
		fn.Webhook = &wf
	}
	return nil
}

func assistantHasFunction(a db.Assistant, name string) bool {
	for _, t := range a.Tools {
		if t.Type == "function" && t.Function != nil && t.Function.Name == name {
			return true
		}
	}
	return false
}

// webhookForm is an empty section with the API's defaults.
func webhookForm(assistantID string, index int, function string) views.WebhookForm {
	return views.WebhookForm{AssistantID: assistantID, Function: function, Index: index,
		TimeoutMS: strconv.Itoa(validate.DefaultWebhookTimeoutMS), MaxRetries: strconv.Itoa(validate.DefaultWebhookRetries),
		OnFailure: db.OnFailureErrorOutput}
}

func fillWebhookForm(wf *views.WebhookForm, h db.Webhook) {
	wf.Configured, wf.URL, wf.SecretHint = true, h.URL, webhook.Hint(h.Secret)
	wf.TimeoutMS, wf.MaxRetries, wf.OnFailure = strconv.Itoa(h.TimeoutMS), strconv.Itoa(h.MaxRetries), h.OnFailure
}

// webhookSection reads the path and the posted section: the form as the
// person left it, and the stored webhook (ok false when there is none).
func (u *UI) webhookSection(c *echo.Context) (views.WebhookForm, db.Webhook, bool, error) {
	if u.cfg.Webhooks == nil {
		return views.WebhookForm{}, db.Webhook{}, false, echo.ErrNotFound
	}
	ctx := c.Request().Context()
	id, name := c.Param("assistant_id"), c.Param("function_name")
	a, err := u.store.GetAssistant(ctx, id)
	if err != nil {
		return views.WebhookForm{}, db.Webhook{}, false, respond.StoreErr(err, "assistant", id)
	}
	if !assistantHasFunction(a, name) {
		return views.WebhookForm{}, db.Webhook{}, false, &respond.Error{Status: http.StatusNotFound, Type: "invalid_request_error",
			Message: "The assistant has no function named '" + name + "'. Save the assistant first."}
	}
	field := func(n string) string { return c.FormValue(views.WebhookField(name, n)) }
	index, _ := strconv.Atoi(field("index"))
	wf := webhookForm(id, max(index, 0), name)
	stored, err := u.store.GetWebhook(ctx, id, name)
	switch {
	case errors.Is(err, db.ErrNotFound):
	case err != nil:
		return wf, stored, false, respond.Internal(err)
	default:
		fillWebhookForm(&wf, stored)
	}
	if c.Request().Form.Has(views.WebhookField(name, "url")) {
		wf.URL, wf.TimeoutMS = strings.TrimSpace(field("url")), strings.TrimSpace(field("timeout_ms"))
		wf.MaxRetries, wf.OnFailure = strings.TrimSpace(field("max_retries")), field("on_failure")
	}
	return wf, stored, err == nil, nil
}

// SaveWebhook handles POST /assistants/:assistant_id/webhooks/:function_name:
// the section's Save. A new webhook without a secret gets one generated,
// shown this once; a stored one keeps its secret unless a new one is given
// or "Generate a new secret" is ticked.
func (u *UI) SaveWebhook(c *echo.Context) error {
	wf, stored, exists, err := u.webhookSection(c)
	if err != nil {
		return err
	}
	r := validate.WebhookRequest{URL: validate.Some(wf.URL)}
	errs := map[string]string{}
	if s := strings.TrimSpace(c.FormValue(views.WebhookField(wf.Function, "secret"))); hasNul(s) {
		errs["secret"] = nulRefusal
	} else if s != "" {
		r.Secret = validate.Some(s)
	} else if exists && c.FormValue(views.WebhookField(wf.Function, "rotate")) != "on" {
		r.Secret = validate.Some(stored.Secret)
	}
	for field, raw := range map[string]string{"timeout_ms": wf.TimeoutMS, "max_retries": wf.MaxRetries} {
		if raw == "" {
			continue
		}
		n, err := strconv.Atoi(raw)
		if err != nil {
			errs[field] = "Enter a whole number."
			continue
		}
		if field == "timeout_ms" {
			r.TimeoutMS = validate.Some(n)
		} else {
			r.MaxRetries = validate.Some(n)
		}
	}
	if wf.OnFailure != "" {
		r.OnFailure = validate.Some(wf.OnFailure)
	}
	if len(errs) == 0 {
		w := db.Webhook{AssistantID: wf.AssistantID, FunctionName: wf.Function}
		generated, err := validate.Webhook(r, &w, u.cfg.Webhooks.Guard().CheckURL)
		if err == nil {
			w, err = u.store.PutWebhook(c.Request().Context(), w)
		}
		if problems, ok := validate.List(err); ok {
			fieldErrors(errs, problems)
		} else if errors.Is(err, db.ErrNoFunction) {
			errs[""] = "The assistant no longer has the function " + wf.Function + "." // removed meanwhile
		} else if err != nil {
			return respond.StoreErr(err, "assistant", wf.AssistantID)
		} else {
			wf.Configured, wf.Saved = true, true
			if generated {
				wf.NewSecret = w.Secret
			}
			wf.URL, wf.SecretHint = w.URL, webhook.Hint(w.Secret)
			wf.TimeoutMS, wf.MaxRetries, wf.OnFailure = strconv.Itoa(w.TimeoutMS), strconv.Itoa(w.MaxRetries), w.OnFailure
			return u.renderWebhook(c, http.StatusOK, wf)
		}
	}
	wf.Errors = errs
	return u.renderWebhook(c, http.StatusUnprocessableEntity, wf)
}

// renderWebhook answers a section's post: the section for htmx, which
// swaps it in place; without JavaScript, the editor of the stored
// assistant with this section as it now is (a new secret shown once, or
// the errors beside the input kept).
func (u *UI) renderWebhook(c *echo.Context, status int, wf views.WebhookForm) error {
	if isHTMX(c) {
		return render(c, status, views.WebhookSettings(wf))
	}
	a, err := u.store.GetAssistant(c.Request().Context(), wf.AssistantID)
	if err != nil {
		return respond.StoreErr(err, "assistant", wf.AssistantID)
	}
	f := formFromAssistant(a)
	for i := range f.Functions {
		if f.Functions[i].Name == wf.Function {
			wf.Index = i
			f.Functions[i].Webhook = &wf
		}
	}
	return u.renderEditor(c, status, f)
}

// DeleteWebhook handles POST /assistants/:assistant_id/webhooks/:function_name/delete.
func (u *UI) DeleteWebhook(c *echo.Context) error {
	wf, _, exists, err := u.webhookSection(c)
	if err != nil {
		return err
	}
	if exists {
		if err := u.store.DeleteWebhook(c.Request().Context(), wf.AssistantID, wf.Function); err != nil && !errors.Is(err, db.ErrNotFound) {
			return respond.Internal(err)
		}
	}
	return u.renderWebhook(c, http.StatusOK, webhookForm(wf.AssistantID, wf.Index, wf.Function))
}

// testCallTimeout bounds a whole test call, retries included.
const testCallTimeout = 2 * time.Minute

// TestWebhook handles POST /assistants/:assistant_id/webhooks/:function_name/test:
// "Send test call" delivers a sample call, signed, to the stored webhook
// through the runs' own client (and so its address guard and retries),
// and shows every attempt.
func (u *UI) TestWebhook(c *echo.Context) error {
	wf, stored, exists, err := u.webhookSection(c)
	if err != nil {
		return err
	}
	if !exists {
		wf.Errors = map[string]string{"": "Save the webhook before sending a test call."}
		return u.renderWebhook(c, http.StatusUnprocessableEntity, wf)
	}
	callID := "call_test_" + db.NewID("")
	body, err := json.Marshal(webhook.Payload{Type: "function_call", ToolCallID: callID,
		Function: webhook.PayloadFunction{Name: stored.FunctionName, Arguments: "{}"},
		RunID:    "run_test", ThreadID: "thread_test", AssistantID: stored.AssistantID, CreatedAt: time.Now().Unix()})
	if err != nil {
		return respond.Internal(err)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), testCallTimeout)
	defer cancel()
	test := &views.WebhookTest{URL: stored.URL}
	target := webhook.Target{URL: stored.URL, Secret: stored.Secret,
		Timeout: time.Duration(stored.TimeoutMS) * time.Millisecond, MaxRetries: stored.MaxRetries}
	out, err := u.cfg.Webhooks.Deliver(ctx, target, webhook.MessageID(callID), body, func(a webhook.Attempt) {
		va := views.WebhookAttempt{N: a.N, Status: "no response", OK: a.Err == "", LatencyMS: a.Latency.Milliseconds(),
			Response: a.Response, Err: a.Err}
		if a.Status != 0 {
			va.Status = "HTTP " + strconv.Itoa(a.Status)
		}
		test.Attempts = append(test.Attempts, va)
	})
	if err != nil {
		test.Err = err.Error()
	} else {
		test.Output = out
	}
	wf.Test = test
	return u.renderWebhook(c, http.StatusOK, wf)
}

// attachDeliveries adds each function call's webhook attempts to the
// thread page's runs.
func (u *UI) attachDeliveries(ctx context.Context, threadID string, runs []views.RunView) error {
	if u.cfg.Webhooks == nil || len(runs) == 0 {
		return nil
	}
	ds, err := u.store.ListThreadDeliveries(ctx, threadID)
	if err != nil || len(ds) == 0 {
		return err
	}
	byCall := map[string][]views.DeliveryView{}
	for _, d := range ds {
		dv := views.DeliveryView{WebhookID: d.WebhookID, Attempt: d.Attempt, Status: "no response", OK: d.Error == nil,
			LatencyMS: d.LatencyMS, Response: d.Response, CreatedAt: d.CreatedAt}
		if d.StatusCode != nil {
			dv.Status = "HTTP " + strconv.Itoa(*d.StatusCode)
		}
		if d.Error != nil {
			dv.Err = *d.Error
		}
		byCall[d.ToolCallID] = append(byCall[d.ToolCallID], dv)
	}
	for i := range runs {
		for j := range runs[i].Steps {
			for k := range runs[i].Steps[j].ToolCalls {
				tc := &runs[i].Steps[j].ToolCalls[k]
				tc.Deliveries = byCall[tc.ID]
			}
		}
	}
	return nil
}
