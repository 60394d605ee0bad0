package ui_test

import (
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/assistantd/assistantd/agent/retrieval"
	"github.com/assistantd/assistantd/agent/webhook"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/db/dbtest"
	"github.com/assistantd/assistantd/handlers/ui"
	"golang.org/x/crypto/bcrypt"
)

// TestNulTextOnPostgres: PostgreSQL's text cannot hold a NUL character.
// Every web app form that stores a person's text in a plain-text column
// answers one with a message in place, the input kept, never a 500, and
// stores nothing; text stored as JSON (message content, metadata, function
// definitions) holds it escaped and is saved. Skipped without
// ASSISTANTD_TEST_POSTGRES.
func TestNulTextOnPostgres(t *testing.T) {
	ctx := testCtx()
	pgURL := dbtest.Database(t, func(u string) error {
		dir, err := os.MkdirTemp("", "ui-tmpl-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		s, err := db.Open(ctx, dir, db.WithDatabaseURL(u))
		if err != nil {
			return err
		}
		return s.Close()
	})
	store, err := db.Open(ctx, t.TempDir(), db.WithDatabaseURL(pgURL), db.WithPasswordCost(bcrypt.MinCost))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	store.StartupDone()
	a := newAppOn(t, store, func(cfg *ui.Config, store *db.Store) {
		withEngine(cfg, store)
		cfg.Webhooks = webhook.NewClient(webhook.NewGuard(nil, nil))
		cfg.VectorStores = store
		cfg.Retriever = &retrieval.Service{Searcher: retrieval.NewSearcher(store, nil), Ingester: retrieval.NewIngester(store, nil, 1, cfg.Log)}
	}, nil)
	c := a.user(db.RoleAdmin)
	asst, err := store.CreateAssistant(ctx, db.Assistant{Model: "gpt-4o", Tools: []db.Tool{
		{Type: "function", Function: &db.FunctionDef{Name: "get_weather"}}}})
	if err != nil {
		t.Fatal(err)
	}
	th, _, err := store.CreateThread(ctx, db.Thread{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const nul = "bad\x00text"
	refused := []struct {
		name, path string
		form       url.Values
		errorID    string // where the message is shown
		keptID     string // the input that keeps the value ("" when the page is a redirect's flash)
		keptAttr   string
	}{
		{"new assistant name", "/assistants/new", url.Values{"name": {nul}, "model": {"gpt-4o"}, "action": {"save"}}, "error-name", "#name", "value"},
		{"assistant instructions", "/assistants/" + asst.ID, url.Values{"name": {"Helper"}, "model": {"gpt-4o"}, "instructions": {nul}, "action": {"save"}}, "error-instructions", "#instructions", ""},
		{"assistant description", "/assistants/" + asst.ID, url.Values{"name": {"Helper"}, "model": {"gpt-4o"}, "description": {nul}, "action": {"save"}}, "error-description", "#description", "value"},
		{"assistant model", "/assistants/" + asst.ID, url.Values{"name": {"Helper"}, "model": {nul}, "action": {"save"}}, "error-model", "#model", "value"},
		{"vector store name", "/vector_stores", url.Values{"name": {nul}}, "vs-error", "[data-testid=vs-name]", "value"},
		{"webhook secret", "/assistants/" + asst.ID + "/webhooks/get_weather", url.Values{"webhook-get_weather-index": {"0"},
			"webhook-get_weather-url": {"https://example.com/hook"}, "webhook-get_weather-secret": {nul}}, "error-webhook-secret", "[data-testid=webhook-url]", "value"},
		{"compare instructions", "/playground/compare", url.Values{"content": {"hello"}, "a_assistant": {asst.ID}, "b_assistant": {asst.ID},
			"b_instructions": {nul}}, "compare-error", "", ""},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("csrf_token", c.token())
			res := c.post(tc.path, tc.form)
			if res.StatusCode != http.StatusUnprocessableEntity && res.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d", res.StatusCode)
			}
			doc := parse(t, res)
			if got := testid(doc, tc.errorID).Text(); !strings.Contains(got, "NUL character") {
				t.Errorf("%s = %q; page errors %q", tc.errorID, got, doc.Find(".errors, [role=alert]").Text())
			}
			if tc.keptID != "" {
				kept := doc.Find(tc.keptID).First()
				got := kept.Text()
				if tc.keptAttr != "" {
					got, _ = kept.Attr(tc.keptAttr)
				}
				if !strings.Contains(got, "bad") && !strings.Contains(got, "example.com") {
					t.Errorf("input not kept: %s = %q", tc.keptID, got)
				}
			}
		})
	}
	if n, _ := store.ListVectorStores(ctx, db.ListParams{Limit: 10}); len(n.Data) != 0 {
		t.Errorf("a refused form stored %d vector stores", len(n.Data))
	}
	if got, _ := store.GetAssistant(ctx, asst.ID); got.Name != nil || got.Instructions != nil {
		t.Errorf("a refused form changed the assistant: %+v", got)
	}

	// A key name: refused in place, nothing created; a project's name in
	// place too, and a service account's with a flash.
	res := c.post("/settings/keys", url.Values{"csrf_token": {c.token()}, "name": {nul}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("key: status %d", res.StatusCode)
	}
	if doc := parse(t, res); !strings.Contains(testid(doc, "key-errors").Text(), "NUL character") {
		t.Errorf("key: errors %q", testid(doc, "key-errors").Text())
	}
	if keys, _ := store.ListAPIKeys(ctx, db.DefaultProjectID); len(keys) != 0 {
		t.Errorf("a refused form stored %d keys", len(keys))
	}
	res = c.post("/settings/projects", url.Values{"csrf_token": {c.token()}, "name": {nul}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("project: status %d", res.StatusCode)
	}
	if doc := parse(t, res); !strings.Contains(testid(doc, "project-errors").Text(), "NUL character") {
		t.Errorf("project: errors %q", testid(doc, "project-errors").Text())
	}
	res = c.post("/settings/service_accounts", url.Values{"csrf_token": {c.token()}, "name": {nul}, "role": {"member"}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("service account: status %d", res.StatusCode)
	}
	if doc := parse(t, res); !strings.Contains(testid(doc, "sa-errors").Text(), "NUL character") {
		t.Errorf("service account: errors %q", testid(doc, "sa-errors").Text())
	}
	if ps, _ := store.ListProjects(ctx, true); len(ps) != 1 {
		t.Errorf("a refused form stored a project: %+v", ps)
	}
	if sas, _ := store.ListServiceAccounts(ctx, db.DefaultProjectID); len(sas) != 0 {
		t.Errorf("a refused form stored %d service accounts", len(sas))
	}
	// Signing in with one is a wrong email, in place.
	anon := a.client()
	res = anon.post("/login", url.Values{"csrf_token": {csrf(anon.page("/login", http.StatusOK))}, "email": {nul}, "password": {password}})
	if doc := parse(t, res); res.StatusCode != http.StatusUnauthorized || !strings.Contains(testid(doc, "login-error").Text(), "Wrong email") {
		t.Errorf("sign-in: status %d, %q", res.StatusCode, testid(doc, "login-error").Text())
	}
	// A file named with one: refused by name, the others stored.
	var body strings.Builder
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("csrf_token", c.token())
	_ = mw.WriteField("purpose", "assistants")
	// RFC 2231's encoded parameter is how a NUL reaches a file name.
	for _, disp := range []string{`filename="ok.txt"`, `filename*=UTF-8''b%00d.txt`} {
		w, _ := mw.CreatePart(map[string][]string{"Content-Disposition": {`form-data; name="files"; ` + disp},
			"Content-Type": {"text/plain"}})
		_, _ = w.Write([]byte("content"))
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, c.base+"/files", strings.NewReader(body.String()))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res = c.do(req)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("upload: status %d", res.StatusCode)
	}
	if doc := c.page(location(res), http.StatusOK); !strings.Contains(testid(doc, "flash").Text(), "1 file stored") ||
		!strings.Contains(testid(doc, "flash").Text(), "NUL character") {
		t.Errorf("upload: flash %q", testid(doc, "flash").Text())
	}
	// Text stored as JSON keeps the character: a message is added.
	res = c.post("/threads/"+th.ID+"/messages", url.Values{"csrf_token": {c.token()}, "content": {nul}, "role": {"user"}, "action": {"add"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("message: status %d", res.StatusCode)
	}
	if msgs, err := store.ThreadTranscript(ctx, th.ID, 10); err != nil || len(msgs) != 1 || msgs[0].Content[0].Text.Value != nul {
		t.Errorf("message stored as %+v (%v)", msgs, err)
	}
}
