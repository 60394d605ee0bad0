package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent/webhook"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
)

// WebhookStore is what the webhook endpoints need from the store.
type WebhookStore interface {
	GetAssistant(ctx context.Context, id string) (db.Assistant, error)
	PutWebhook(ctx context.Context, w db.Webhook) (db.Webhook, error)
	GetWebhook(ctx context.Context, assistantID, functionName string) (db.Webhook, error)
	ListWebhooks(ctx context.Context, assistantID string) ([]db.Webhook, error)
	DeleteWebhook(ctx context.Context, assistantID, functionName string) error
	ListThreadDeliveries(ctx context.Context, threadID string) ([]db.Delivery, error)
}

// Webhooks serves the webhook extension of the API
// (/v1/assistants/{assistant_id}/webhooks) and lends the web app the same
// validation and delivery client.
type Webhooks struct {
	store  WebhookStore
	client *webhook.Client
}

// NewWebhooks returns the webhook handlers; client's guard checks URLs and
// its deliveries serve the web app's test calls.
func NewWebhooks(store WebhookStore, client *webhook.Client) *Webhooks {
	return &Webhooks{store: store, client: client}
}

// webhookObject is a webhook as the API shows it. Secret is set only in
// the response that generated it.
type webhookObject struct {
	Object       string `json:"object"`
	FunctionName string `json:"function_name"`
	URL          string `json:"url"`
	Secret       string `json:"secret,omitempty"`
	SecretHint   string `json:"secret_hint"`
	TimeoutMS    int    `json:"timeout_ms"`
	MaxRetries   int    `json:"max_retries"`
	OnFailure    string `json:"on_failure"`
	CreatedAt    int64  `json:"created_at"`
}

func toWebhookObject(w db.Webhook) webhookObject {
	return webhookObject{Object: "assistant.webhook", FunctionName: w.FunctionName, URL: w.URL,
		SecretHint: webhook.Hint(w.Secret), TimeoutMS: w.TimeoutMS, MaxRetries: w.MaxRetries, OnFailure: w.OnFailure,
		CreatedAt: w.CreatedAt}
}

// webhookPath validates the path's assistant id and function name.
func webhookPath(c *echo.Context) (assistantID, name string, err error) {
	assistantID, name = c.Param("assistant_id"), c.Param("function_name")
	if err := checkID("assistant_id", assistantID, "asst_"); err != nil {
		return "", "", err
	}
	if !validate.FunctionName.MatchString(name) {
		return "", "", respond.Invalid("function_name", "invalid_value",
			"Invalid 'function_name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.")
	}
	return assistantID, name, nil
}

// noFunction is the 400 for a webhook of a function the assistant lacks.
func noFunction(assistantID, name string) *respond.Error {
	return respond.Invalid("function_name", "invalid_value",
		"Invalid 'function_name': assistant '%s' has no function named '%s'.", assistantID, name)
}

// put validates and stores a webhook; the API and the web app share it.
func (h *Webhooks) put(ctx context.Context, assistantID, name string, r validate.WebhookRequest) (webhookObject, error) {
	w := db.Webhook{AssistantID: assistantID, FunctionName: name}
	generated, err := validate.Webhook(r, &w, h.client.Guard().CheckURL)
	if err != nil {
		return webhookObject{}, err
	}
	w, err = h.store.PutWebhook(ctx, w)
	switch {
	case errors.Is(err, db.ErrNoFunction):
		return webhookObject{}, noFunction(assistantID, name)
	case err != nil:
		return webhookObject{}, respond.StoreErr(err, "assistant", assistantID)
	}
	obj := toWebhookObject(w)
	if generated {
		obj.Secret = w.Secret
	}
	return obj, nil
}

// PutWebhook handles PUT /v1/assistants/{assistant_id}/webhooks/{function_name}.
func (h *Webhooks) PutWebhook(c *echo.Context) error {
	assistantID, name, err := webhookPath(c)
	if err != nil {
		return err
	}
	var r validate.WebhookRequest
	if err := decodeBody(c.Request(), &r, false); err != nil {
		return err
	}
	obj, err := h.put(c.Request().Context(), assistantID, name, r)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, obj)
}

// ListWebhooks handles GET /v1/assistants/{assistant_id}/webhooks. An
// assistant has at most one webhook per function, so the list is one page.
func (h *Webhooks) ListWebhooks(c *echo.Context) error {
	ctx, assistantID := c.Request().Context(), c.Param("assistant_id")
	if err := checkID("assistant_id", assistantID, "asst_"); err != nil {
		return err
	}
	if _, err := h.store.GetAssistant(ctx, assistantID); err != nil {
		return respond.StoreErr(err, "assistant", assistantID)
	}
	hooks, err := h.store.ListWebhooks(ctx, assistantID)
	if err != nil {
		return respond.Internal(err)
	}
	out := list[webhookObject]{Object: "list", Data: []webhookObject{}}
	for _, w := range hooks {
		out.Data = append(out.Data, toWebhookObject(w))
	}
	if n := len(out.Data); n > 0 {
		out.FirstID, out.LastID = &out.Data[0].FunctionName, &out.Data[n-1].FunctionName
	}
	return c.JSON(http.StatusOK, out)
}

// DeleteWebhook handles DELETE /v1/assistants/{assistant_id}/webhooks/{function_name}.
func (h *Webhooks) DeleteWebhook(c *echo.Context) error {
	assistantID, name, err := webhookPath(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := h.store.GetAssistant(ctx, assistantID); err != nil {
		return respond.StoreErr(err, "assistant", assistantID)
	}
	if err := h.store.DeleteWebhook(ctx, assistantID, name); err != nil {
		if errors.Is(err, db.ErrNotFound) {
			return &respond.Error{Status: http.StatusNotFound, Type: "invalid_request_error", Param: "function_name",
				Message: "No webhook found for function '" + name + "' of assistant '" + assistantID + "'."}
		}
		return respond.Internal(err)
	}
	return c.JSON(http.StatusOK, map[string]any{"object": "assistant.webhook.deleted", "function_name": name, "deleted": true})
}
