package ui_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/ui"
)

// form is a settings form with the client's CSRF token.
func (c *client) form(kv ...string) url.Values {
	c.t.Helper()
	f := url.Values{"csrf_token": {c.token()}}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	return f
}

// saved checks that a settings form was taken: a redirect back to the page.
func saved(t *testing.T, res *http.Response, what string) {
	t.Helper()
	if res.StatusCode != http.StatusSeeOther || location(res) != "/settings/project" {
		t.Fatalf("%s: status %d to %q, want 303 to /settings/project", what, res.StatusCode, location(res))
	}
}

// TestProjectSettingsOwnerSaves: an owner changes each part of the
// settings page and the store holds what was sent; the page shows it back.
func TestProjectSettingsOwnerSaves(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *app) {
		ctx := context.Background()
		b, err := a.store.CreateProject(ctx, "Team B")
		if err != nil {
			t.Fatal(err)
		}
		olive, _ := a.member("olive@example.com", map[string]string{b.ID: db.ProjectOwner})

		doc := olive.page("/settings/project", http.StatusOK)
		if got := testid(doc, "nav-project-settings").AttrOr("aria-current", ""); got != "page" {
			t.Errorf("the Settings nav link is not current: %q", got)
		}
		if _, ok := testid(doc, "mode-all").Attr("checked"); !ok {
			t.Error("a new project does not show All models")
		}

		saved(t, olive.post("/settings/project/models", olive.form("mode", "allow_list", "other_models", "gpt-4o-mini\r\n  gpt-4o \n\ngpt-4o-mini\n")), "allow list")
		s, err := a.store.ProjectSettings(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if s.ModelMode != db.AllowList || !cmp.Equal(s.ModelIDs, []string{"gpt-4o", "gpt-4o-mini"}) {
			t.Errorf("stored models: %s %v", s.ModelMode, s.ModelIDs)
		}
		doc = olive.page("/settings/project", http.StatusOK)
		if _, ok := testid(doc, "mode-allow_list").Attr("checked"); !ok {
			t.Error("the page does not show the allow list mode")
		}
		if got := testid(doc, "models-text").Text(); got != "gpt-4o\ngpt-4o-mini" {
			t.Errorf("the page's list: %q", got)
		}
		if got := testid(doc, "flash").Text(); !strings.Contains(got, "Saved the project's models") {
			t.Errorf("flash = %q", got)
		}
		saved(t, olive.post("/settings/project/models", olive.form("mode", "deny_list", "other_models", "o1")), "deny list")
		if s, _ = a.store.ProjectSettings(ctx, b.ID); s.ModelMode != db.DenyList || !cmp.Equal(s.ModelIDs, []string{"o1"}) {
			t.Errorf("stored deny list: %s %v", s.ModelMode, s.ModelIDs)
		}
		saved(t, olive.post("/settings/project/models", olive.form("mode", "all", "other_models", "o1")), "all models")
		if s, _ = a.store.ProjectSettings(ctx, b.ID); s.ModelMode != db.DenyList || len(s.ModelIDs) != 0 {
			t.Errorf("all models stored as %s %v, want an empty deny list", s.ModelMode, s.ModelIDs)
		}

		// Tools: an unticked box is off.
		saved(t, olive.post("/settings/project/tools", olive.form("file_search", "on")), "tools")
		if s, _ = a.store.ProjectSettings(ctx, b.ID); s.CodeInterpreter || !s.FileSearch {
			t.Errorf("tools: code_interpreter=%v file_search=%v", s.CodeInterpreter, s.FileSearch)
		}
		doc = olive.page("/settings/project", http.StatusOK)
		_, ci := testid(doc, "tool-code-interpreter").Attr("checked")
		_, fs := testid(doc, "tool-file-search").Attr("checked")
		if ci || !fs {
			t.Errorf("the page's tools: code_interpreter=%v file_search=%v", ci, fs)
		}

		// Rate limits: add, edit, remove.
		saved(t, olive.post("/settings/project/rate_limits", olive.form("model", "gpt-4o", "requests", "60", "tokens", "")), "add a limit")
		saved(t, olive.post("/settings/project/rate_limits", olive.form("model", "o1", "requests", "5", "tokens", "1000")), "add a limit")
		l, _ := a.store.GetRateLimit(ctx, b.ID, "gpt-4o")
		if l.MaxRequestsPer1Minute != 60 || l.MaxTokensPer1Minute != 0 {
			t.Errorf("gpt-4o limits: %+v", l)
		}
		saved(t, olive.post("/settings/project/rate_limits", olive.form("model", "gpt-4o", "requests", "30", "tokens", "9000")), "edit a limit")
		if l, _ = a.store.GetRateLimit(ctx, b.ID, "gpt-4o"); l.MaxRequestsPer1Minute != 30 || l.MaxTokensPer1Minute != 9000 {
			t.Errorf("gpt-4o limits after the edit: %+v", l)
		}
		doc = olive.page("/settings/project", http.StatusOK)
		if got := texts(testid(doc, "limit-model")); !cmp.Equal(got, []string{"gpt-4o", "o1"}) {
			t.Errorf("limited models shown: %v", got)
		}
		saved(t, olive.post("/settings/project/rate_limits/remove", olive.form("model", "o1")), "remove a limit")
		if l, _ = a.store.GetRateLimit(ctx, b.ID, "o1"); l.MaxRequestsPer1Minute != 0 || l.MaxTokensPer1Minute != 0 {
			t.Errorf("o1 limits after removal: %+v", l)
		}
		if got := texts(testid(olive.page("/settings/project", http.StatusOK), "limit-model")); !cmp.Equal(got, []string{"gpt-4o"}) {
			t.Errorf("limited models after removal: %v", got)
		}
		// Another project's limits are untouched.
		if ls, _ := a.store.ListRateLimits(ctx, db.DefaultProjectID); len(ls) != 0 {
			t.Errorf("the Default project got limits: %+v", ls)
		}

		// Upstream: set with a key; the key never comes back in the page;
		// a blank key keeps it; remove_key drops it; remove drops it all.
		const secret = "sk-project-b-upstream-0123456789"
		saved(t, olive.post("/settings/project/upstream", olive.form("base_url", "https://llm.example.com/v1", "api_key", secret)), "upstream")
		if s, _ = a.store.ProjectSettings(ctx, b.ID); s.UpstreamURL != "https://llm.example.com/v1" || s.UpstreamKey != secret {
			t.Errorf("stored upstream: %q key %q", s.UpstreamURL, s.UpstreamKey)
		}
		body := readAll(t, olive.get("/settings/project"))
		if strings.Contains(body, secret) || strings.Contains(body, "0123456789") {
			t.Error("the page shows the upstream key")
		}
		if !strings.Contains(body, "…6789") || !strings.Contains(body, "https://llm.example.com/v1") {
			t.Error("the page shows neither the key's hint nor the URL")
		}
		saved(t, olive.post("/settings/project/upstream", olive.form("base_url", "https://other.example.com/v1", "api_key", "")), "new URL, same key")
		if s, _ = a.store.ProjectSettings(ctx, b.ID); s.UpstreamURL != "https://other.example.com/v1" || s.UpstreamKey != secret {
			t.Errorf("a blank key did not keep the key: %q key %q", s.UpstreamURL, s.UpstreamKey)
		}
		saved(t, olive.post("/settings/project/upstream", olive.form("base_url", "https://other.example.com/v1", "remove_key", "on")), "remove the key")
		if s, _ = a.store.ProjectSettings(ctx, b.ID); s.UpstreamURL != "https://other.example.com/v1" || s.UpstreamKey != "" {
			t.Errorf("after removing the key: %q key %q", s.UpstreamURL, s.UpstreamKey)
		}
		if !s.UpstreamGuarded {
			t.Error("an owner's upstream is not guarded")
		}
		// An owner who is not an admin of the server cannot point it into
		// its own network: refused in place, the URL kept; an admin can.
		for _, private := range []string{"http://10.0.0.5:8000/v1", "http://127.0.0.1:11434/v1", "http://[::1]/v1", "http://169.254.169.254/latest"} {
			res := olive.post("/settings/project/upstream", olive.form("base_url", private, "api_key", "short"))
			if res.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("%s: status %d", private, res.StatusCode)
			}
			doc := parse(t, res)
			if got := testid(doc, "upstream-errors").Text(); !strings.Contains(got, "does not reach") {
				t.Errorf("%s: refusal %q", private, got)
			}
			if got, _ := doc.Find(`input[name="base_url"]`).Attr("value"); got != private {
				t.Errorf("%s: the URL typed is not kept: %q", private, got)
			}
		}
		if s, _ = a.store.ProjectSettings(ctx, b.ID); s.UpstreamURL != "https://other.example.com/v1" {
			t.Errorf("a refused URL was stored: %q", s.UpstreamURL)
		}
		admin := a.user(db.RoleAdmin)
		admin.switchTo(b.ID)
		saved(t, admin.post("/settings/project/upstream", admin.form("base_url", "http://10.0.0.5:8000/v1", "api_key", "short")), "short key")
		if s, _ = a.store.ProjectSettings(ctx, b.ID); s.UpstreamURL != "http://10.0.0.5:8000/v1" || s.UpstreamGuarded {
			t.Errorf("an admin's private upstream: %q guarded %v", s.UpstreamURL, s.UpstreamGuarded)
		}
		if got := testid(olive.page("/settings/project", http.StatusOK), "upstream-key-hint").Text(); strings.Contains(got, "short") || !strings.Contains(got, "A key is set") {
			t.Errorf("a short key's hint: %q", got)
		}
		saved(t, olive.post("/settings/project/upstream/remove", olive.form()), "remove the upstream")
		if s, _ = a.store.ProjectSettings(ctx, b.ID); s.UpstreamURL != "" || s.UpstreamKey != "" {
			t.Errorf("after removing the upstream: %q key %q", s.UpstreamURL, s.UpstreamKey)
		}
		if d, _ := a.store.ProjectSettings(ctx, db.DefaultProjectID); !cmp.Equal(d, db.DefaultSettings(db.DefaultProjectID)) {
			t.Errorf("the Default project's settings changed: %+v", d)
		}
	})
}

// TestProjectSettingsRoles: viewers and editors read the settings and may
// change nothing (403, the store unchanged); instance admins change them.
func TestProjectSettingsRoles(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *app) {
		ctx := context.Background()
		if _, err := a.store.UpdateProjectSettings(ctx, db.DefaultProjectID, db.SettingsChange{
			ModelMode: new(db.AllowList), ModelIDs: []string{"gpt-4o"}, Upstream: &db.ProjectUpstream{URL: "https://llm.example.com/v1", Key: "sk-viewers-never-see-this-key"},
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.store.SetRateLimit(ctx, db.DefaultProjectID, "gpt-4o", db.RateLimitChange{MaxRequestsPer1Minute: new(int64(7))}); err != nil {
			t.Fatal(err)
		}
		before, _ := a.store.ProjectSettings(ctx, db.DefaultProjectID)
		vic, _ := a.member("vic@example.com", map[string]string{db.DefaultProjectID: db.ProjectViewer})
		eve, _ := a.member("eve@example.com", map[string]string{db.DefaultProjectID: db.ProjectEditor})
		for name, c := range map[string]*client{"viewer": vic, "editor": eve} {
			t.Run(name, func(t *testing.T) {
				res := c.get("/settings/project")
				if res.StatusCode != http.StatusOK {
					t.Fatalf("GET: status %d", res.StatusCode)
				}
				body := readAll(t, res)
				if strings.Contains(body, "sk-viewers") || strings.Contains(body, "<form method=\"post\" action=\"/settings/project") {
					t.Error("the read-only page shows the key or a settings form")
				}
				doc := c.page("/settings/project", http.StatusOK)
				got := []string{strings.TrimSpace(testid(doc, "models-mode").Text()), strings.Join(texts(testid(doc, "models-list").Find("li")), ","),
					strings.Join(texts(testid(doc, "limit-requests")), ",")}
				if diff := cmp.Diff([]string{"Only the models listed (allow list)", "gpt-4o", "7"}, got); diff != "" {
					t.Errorf("read-only page (-want +got):\n%s", diff)
				}
				for path, form := range map[string]url.Values{
					"/settings/project/models":             c.form("mode", "all"),
					"/settings/project/tools":              c.form(),
					"/settings/project/rate_limits":        c.form("model", "gpt-4o", "requests", "0"),
					"/settings/project/rate_limits/remove": c.form("model", "gpt-4o"),
					"/settings/project/upstream":           c.form("base_url", "https://evil.example.com/v1", "api_key", "x"),
					"/settings/project/upstream/remove":    c.form(),
				} {
					if res := c.post(path, form); res.StatusCode != http.StatusForbidden {
						t.Errorf("POST %s: status %d, want 403", path, res.StatusCode)
					}
				}
			})
		}
		after, _ := a.store.ProjectSettings(ctx, db.DefaultProjectID)
		if !cmp.Equal(before, after) {
			t.Errorf("settings changed by refused posts:\n%+v\n%+v", before, after)
		}
		if l, _ := a.store.GetRateLimit(ctx, db.DefaultProjectID, "gpt-4o"); l.MaxRequestsPer1Minute != 7 {
			t.Errorf("limit changed by refused posts: %+v", l)
		}
		// An instance admin acts as an owner.
		admin := a.user(db.RoleAdmin)
		saved(t, admin.post("/settings/project/tools", admin.form("code_interpreter", "on")), "admin tools")
		if s, _ := a.store.ProjectSettings(ctx, db.DefaultProjectID); !s.CodeInterpreter || s.FileSearch {
			t.Errorf("admin's tools: %+v", s)
		}
		// A post without the CSRF token is refused.
		if res := admin.post("/settings/project/tools", url.Values{"file_search": {"on"}}); res.StatusCode != http.StatusForbidden {
			t.Errorf("POST without CSRF: status %d, want 403", res.StatusCode)
		}
	})
}

// TestProjectSettingsRefusals: bad input is answered in place with 422,
// the message and the input kept, and the store unchanged.
func TestProjectSettingsRefusals(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *app) {
		ctx := context.Background()
		owner := a.user(db.RoleAdmin)
		long := strings.Repeat("m", 257)
		tests := []struct {
			name, path string
			form       []string
			errID      string
			want       string            // in the error list
			kept       map[string]string // testid → value shown back
		}{
			{"unknown mode", "/settings/project/models", []string{"mode", "some", "other_models", "gpt-4o"}, "models-errors", "Pick all models", map[string]string{"models-text": "gpt-4o"}},
			{"empty allow list", "/settings/project/models", []string{"mode", "allow_list", "other_models", " \n "}, "models-errors", "at least one model", nil},
			{"long model", "/settings/project/models", []string{"mode", "deny_list", "other_models", "gpt-4o\n" + long}, "models-errors", "at most 256 characters", map[string]string{"models-text": "gpt-4o\n" + long}},
			{"NUL model", "/settings/project/models", []string{"mode", "deny_list", "other_models", "gpt\x00-4o"}, "models-errors", "NUL", map[string]string{"models-text": "gpt\ufffd-4o"}},
			{"no model", "/settings/project/rate_limits", []string{"model", " ", "requests", "5"}, "limit-errors", "Name the model", map[string]string{"limit-new-requests": "5"}},
			{"negative", "/settings/project/rate_limits", []string{"model", "gpt-4o", "requests", "-1", "tokens", "3"}, "limit-errors", "Requests per minute must be a whole number", map[string]string{"limit-model-input": "gpt-4o", "limit-new-requests": "-1", "limit-new-tokens": "3"}},
			{"not a number", "/settings/project/rate_limits", []string{"model", "gpt-4o", "tokens", "lots"}, "limit-errors", "Tokens per minute must be a whole number", map[string]string{"limit-new-tokens": "lots"}},
			{"NUL limit model", "/settings/project/rate_limits", []string{"model", "gpt\x00", "requests", "1"}, "limit-errors", "NUL", nil},
			{"not a URL", "/settings/project/upstream", []string{"base_url", "llm.example.com", "api_key", "sk-typed-key-stays-out"}, "upstream-errors", "http(s) URL", map[string]string{"upstream-url": "llm.example.com", "upstream-key": ""}},
			{"ftp URL", "/settings/project/upstream", []string{"base_url", "ftp://llm.example.com/v1"}, "upstream-errors", "http(s) URL", map[string]string{"upstream-url": "ftp://llm.example.com/v1"}},
			{"long key", "/settings/project/upstream", []string{"base_url", "https://llm.example.com/v1", "api_key", strings.Repeat("k", 4097)}, "upstream-errors", "at most 4096", map[string]string{"upstream-url": "https://llm.example.com/v1"}},
			{"NUL key", "/settings/project/upstream", []string{"base_url", "https://llm.example.com/v1", "api_key", "sk\x00"}, "upstream-errors", "NUL", nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := owner.post(tt.path, owner.form(tt.form...))
				if res.StatusCode != http.StatusUnprocessableEntity {
					t.Fatalf("status %d, want 422", res.StatusCode)
				}
				doc := parse(t, res)
				if got := testid(doc, tt.errID).Text(); !strings.Contains(got, tt.want) {
					t.Errorf("errors %q, want %q", got, tt.want)
				}
				for id, want := range tt.kept {
					sel := testid(doc, id)
					got := sel.AttrOr("value", "")
					if sel.Is("textarea") {
						got = sel.Text()
					}
					if got != want {
						t.Errorf("%s shows %q, want %q", id, clipPath(got), clipPath(want))
					}
				}
			})
		}
		if s, _ := a.store.ProjectSettings(ctx, db.DefaultProjectID); !cmp.Equal(s, db.DefaultSettings(db.DefaultProjectID)) {
			t.Errorf("refused forms changed the settings: %+v", s)
		}
		if ls, _ := a.store.ListRateLimits(ctx, db.DefaultProjectID); len(ls) != 0 {
			t.Errorf("refused forms set limits: %+v", ls)
		}
	})
}

// TestProjectSettingsUpstreamModels: with the server's upstream naming
// its models, the allowed models form offers them as boxes to tick, and
// the list saved is the boxes ticked and the names typed.
func TestProjectSettingsUpstreamModels(t *testing.T) {
	a := newAppWith(t, func(cfg *ui.Config, store *db.Store) {
		providers, err := agent.NewProviders([]agent.ProviderConfig{{Name: "default", BaseURL: "http://127.0.0.1:1/v1", Models: []string{"gpt-4o", "gpt-4o-mini"}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Engine = agent.New(store, providers, agent.NewHub(time.Minute), cfg.Log, agent.Config{Workers: 1, RunTimeout: time.Hour, MaxSteps: 5})
	}, nil)
	owner := a.user(db.RoleAdmin)
	doc := owner.page("/settings/project", http.StatusOK)
	var offered []string
	testid(doc, "known-models").Find(`input[name="model"]`).Each(func(_ int, s *goquery.Selection) { offered = append(offered, s.AttrOr("value", "")) })
	if diff := cmp.Diff([]string{"gpt-4o", "gpt-4o-mini"}, offered); diff != "" {
		t.Errorf("models offered (-want +got):\n%s", diff)
	}
	saved(t, owner.post("/settings/project/models", owner.form("mode", "allow_list", "model", "gpt-4o-mini", "other_models", "my-local-model")), "allow list")
	s, _ := a.store.ProjectSettings(testCtx(), db.DefaultProjectID)
	if !cmp.Equal(s.ModelIDs, []string{"gpt-4o-mini", "my-local-model"}) {
		t.Errorf("stored list: %v", s.ModelIDs)
	}
	doc = owner.page("/settings/project", http.StatusOK)
	var ticked []string
	testid(doc, "known-models").Find(`input[checked]`).Each(func(_ int, s *goquery.Selection) { ticked = append(ticked, s.AttrOr("value", "")) })
	if !cmp.Equal(ticked, []string{"gpt-4o-mini"}) || testid(doc, "models-text").Text() != "my-local-model" {
		t.Errorf("page after saving: ticked %v, typed %q", ticked, testid(doc, "models-text").Text())
	}
	if n := testid(doc, "limit-form").Find("datalist option").Length(); n != 2 {
		t.Errorf("the limit form suggests %d models, want 2", n)
	}
}
