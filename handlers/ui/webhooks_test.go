package ui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/assistantd/assistantd/agent/webhook"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/ui"
)

// newWebhookApp is newApp with the webhook sections enabled (no networks
// allowed beyond the public ones).
func newWebhookApp(t *testing.T) *app {
	t.Helper()
	return newAppWith(t, func(cfg *ui.Config, store *db.Store) {
		cfg.Webhooks = webhook.NewClient(webhook.NewGuard(nil, nil))
	}, nil)
}

func TestWebhookSection(t *testing.T) {
	a := newWebhookApp(t)
	ctx := testCtx()
	asst, err := a.store.CreateAssistant(ctx, db.Assistant{Model: "m", Tools: []db.Tool{
		{Type: "function", Function: &db.FunctionDef{Name: "get_weather"}}}})
	if err != nil {
		t.Fatal(err)
	}
	editor := a.user(db.RoleEditor)
	tok := editor.token()
	path := "/assistants/" + asst.ID + "/webhooks/get_weather"
	save := func(fields url.Values) *http.Response {
		fields.Set("csrf_token", tok)
		fields.Set("webhook-get_weather-index", "0")
		return editor.post(path, fields, "HX-Request", "true")
	}

	// Errors come back in place, the input kept, nothing stored.
	res := save(url.Values{"webhook-get_weather-url": {"http://0x7f000001/"}, "webhook-get_weather-timeout_ms": {"soon"}})
	doc := parse(t, res)
	if res.StatusCode != http.StatusUnprocessableEntity || testid(doc, "error-webhook-timeout").Length() != 1 {
		t.Fatalf("bad timeout: %d, errors %v", res.StatusCode, texts(doc.Find(".errors")))
	}
	if v, _ := testid(doc, "webhook-url").Attr("value"); v != "http://0x7f000001/" {
		t.Fatalf("URL not kept: %q", v)
	}
	res = save(url.Values{"webhook-get_weather-url": {"http://0x7f000001/"}})
	doc = parse(t, res)
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(testid(doc, "error-webhook-url").Text(), "refused network") {
		t.Fatalf("refused URL: %d, errors %v", res.StatusCode, texts(doc.Find(".errors")))
	}
	if _, err := a.store.GetWebhook(ctx, asst.ID, "get_weather"); err != db.ErrNotFound {
		t.Fatalf("stored after errors: %v", err)
	}

	// Saved: the secret shown once; saving again keeps it; rotating replaces it.
	doc = parse(t, save(url.Values{"webhook-get_weather-url": {"https://hooks.example.com/w"}, "webhook-get_weather-max_retries": {"1"}}))
	secret := strings.TrimSpace(testid(doc, "webhook-new-secret").Find("code").Text())
	stored, err := a.store.GetWebhook(ctx, asst.ID, "get_weather")
	if err != nil || stored.Secret != secret || stored.MaxRetries != 1 || stored.TimeoutMS != 10000 {
		t.Fatalf("stored %+v, %v; shown secret %q", stored, err, secret)
	}
	doc = parse(t, save(url.Values{"webhook-get_weather-url": {"https://hooks.example.com/v2"}}))
	if testid(doc, "webhook-new-secret").Length() != 0 || testid(doc, "webhook-saved").Length() != 1 {
		t.Fatal("a second save showed a secret")
	}
	if again, _ := a.store.GetWebhook(ctx, asst.ID, "get_weather"); again.Secret != secret || again.URL != "https://hooks.example.com/v2" {
		t.Fatalf("after a second save: %+v", again)
	}
	doc = parse(t, save(url.Values{"webhook-get_weather-url": {"https://hooks.example.com/v2"}, "webhook-get_weather-rotate": {"on"}}))
	rotated := strings.TrimSpace(testid(doc, "webhook-new-secret").Find("code").Text())
	if rotated == "" || rotated == secret {
		t.Fatalf("rotate: new secret %q (old %q)", rotated, secret)
	}

	// A function the assistant lacks.
	res = editor.post("/assistants/"+asst.ID+"/webhooks/get_time", url.Values{"csrf_token": {tok}}, "HX-Request", "true")
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown function: %d", res.StatusCode)
	}

	// A viewer reads the settings, without the secret, and cannot change them.
	viewer := a.user(db.RoleViewer)
	doc = viewer.page("/assistants/"+asst.ID, http.StatusOK)
	summary := testid(doc, "webhook-summary").Text()
	if !strings.Contains(summary, "https://hooks.example.com/v2") || !strings.Contains(summary, webhook.Hint(rotated)) ||
		strings.Contains(doc.Text(), rotated) || testid(doc, "webhook-save").Length() != 0 {
		t.Fatalf("viewer's section: %q", summary)
	}
	res = viewer.post(path, url.Values{"csrf_token": {viewer.token()}, "webhook-get_weather-url": {"https://evil.example.com/"}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer save: %d, want 403", res.StatusCode)
	}
	if w, _ := a.store.GetWebhook(ctx, asst.ID, "get_weather"); w.URL != "https://hooks.example.com/v2" {
		t.Fatalf("a viewer changed the webhook: %+v", w)
	}
}
