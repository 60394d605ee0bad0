package ui_test

import (
	"context"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/ui"
	"github.com/assistantd/assistantd/web"
)

const password = "a-good-password"

// app is the web app through the real router on a temp-dir SQLite store.
type app struct {
	t     testing.TB
	store *db.Store
	srv   *httptest.Server
	mu    sync.Mutex
	now   time.Time
}

func newApp(t testing.TB, setupToken string) *app {
	t.Helper()
	// The API handlers are not exercised here; their routes stay unused.
	return newAppWith(t, func(cfg *ui.Config, _ *db.Store) { cfg.SetupToken = setupToken }, nil)
}

func (a *app) clock() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.now
}

func (a *app) advance(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.now = a.now.Add(d)
}

// user creates a user with role and returns a client signed in as them.
func (a *app) user(role string) *client {
	a.t.Helper()
	email := role + "@example.com"
	if _, err := a.store.CreateUser(testCtx(), email, role, password); err != nil {
		a.t.Fatal(err)
	}
	c := a.client()
	doc := c.page("/login", http.StatusOK)
	res := c.post("/login", url.Values{"csrf_token": {csrf(doc)}, "email": {email}, "password": {password}})
	if res.StatusCode != http.StatusSeeOther {
		a.t.Fatalf("sign in as %s: status %d", role, res.StatusCode)
	}
	return c
}

type client struct {
	t    testing.TB
	base string
	http *http.Client
}

func (a *app) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: a.t, base: a.srv.URL, http: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) do(req *http.Request) *http.Response {
	c.t.Helper()
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { res.Body.Close() })
	return res
}

func (c *client) get(path string) *http.Response {
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	return c.do(req)
}

// page GETs path, checks the status and parses the HTML.
func (c *client) page(path string, status int) *goquery.Document {
	c.t.Helper()
	res := c.get(path)
	if res.StatusCode != status {
		c.t.Fatalf("GET %s: status %d, want %d", path, res.StatusCode, status)
	}
	return parse(c.t, res)
}

func (c *client) post(path string, form url.Values, headers ...string) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return c.do(req)
}

// token returns the session's CSRF token from any page.
func (c *client) token() string {
	c.t.Helper()
	return csrf(c.page("/settings/keys", http.StatusOK))
}

func parse(t testing.TB, res *http.Response) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func csrf(doc *goquery.Document) string {
	v, _ := doc.Find(`input[name="csrf_token"]`).First().Attr("value")
	return v
}

func testid(doc *goquery.Document, id string) *goquery.Selection {
	return doc.Find(`[data-testid="` + id + `"]`)
}

func texts(s *goquery.Selection) []string {
	var out []string
	s.Each(func(_ int, e *goquery.Selection) { out = append(out, strings.TrimSpace(e.Text())) })
	return out
}

func TestPagesRequireSignIn(t *testing.T) {
	a := newApp(t, "")
	c := a.client()
	for _, path := range []string{"/assistants", "/assistants/new", "/threads", "/files", "/settings/keys", "/settings/users", "/threads/thread_x"} {
		t.Run(path, func(t *testing.T) {
			res := c.get(path)
			if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login?next=") {
				t.Errorf("GET %s: %d to %q, want a redirect to /login", path, res.StatusCode, res.Header.Get("Location"))
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	a := newApp(t, "")
	res := a.client().get("/login")
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"} {
		if got := res.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP = %q", csp)
	}
	cookie := res.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("session cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(cookie, "Secure") {
		t.Errorf("session cookie %q is Secure over plain HTTP", cookie)
	}
}

func TestFirstRunSetup(t *testing.T) {
	a := newApp(t, "the-setup-token")
	c := a.client()
	c.page("/setup?token=wrong", http.StatusNotFound)
	doc := c.page("/setup?token=the-setup-token", http.StatusOK)
	form := url.Values{"csrf_token": {csrf(doc)}, "token": {"the-setup-token"}, "email": {"root@example.com"},
		"password": {"short"}, "confirm": {"short"}}
	res := c.post("/setup", form)
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("short password: status %d", res.StatusCode)
	}
	form.Set("password", password)
	form.Set("confirm", password)
	res = c.post("/setup", form)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("setup: status %d", res.StatusCode)
	}
	doc = c.page("/assistants", http.StatusOK)
	if got := testid(doc, "current-role").Text(); got != "admin" {
		t.Errorf("role = %q, want admin", got)
	}
	c.page("/setup?token=the-setup-token", http.StatusNotFound)
}

func TestSessionExpires(t *testing.T) {
	a := newApp(t, "")
	c := a.user(db.RoleViewer)
	c.page("/threads", http.StatusOK)
	a.advance(61 * time.Minute)
	if res := c.get("/threads"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("after the TTL: status %d, want a redirect to sign in", res.StatusCode)
	}
}

func TestRolesAndCSRF(t *testing.T) {
	a := newApp(t, "")
	ctx := testCtx()
	asst, err := a.store.CreateAssistant(ctx, db.Assistant{Model: "gpt-4o"})
	if err != nil {
		t.Fatal(err)
	}
	admin, editor, viewer := a.user(db.RoleAdmin), a.user(db.RoleEditor), a.user(db.RoleViewer)
	newAssistant := url.Values{"name": {"x"}, "model": {"gpt-4o"}, "action": {"save"}}
	tests := []struct {
		name   string
		c      *client
		path   string
		form   url.Values
		noCSRF bool
		hdr    []string
		want   int
	}{
		{"viewer creates", viewer, "/assistants/new", newAssistant, false, nil, http.StatusForbidden},
		{"viewer deletes", viewer, "/assistants/" + asst.ID + "/delete", url.Values{}, false, nil, http.StatusForbidden},
		{"viewer edits", viewer, "/assistants/" + asst.ID, newAssistant, false, nil, http.StatusForbidden},
		{"viewer uploads", viewer, "/files", url.Values{}, false, nil, http.StatusForbidden},
		{"editor creates a key", editor, "/settings/keys", url.Values{"name": {"k"}}, false, nil, http.StatusForbidden},
		{"editor adds a user", editor, "/settings/users", url.Values{"email": {"e@example.com"}}, false, nil, http.StatusForbidden},
		{"editor without token", editor, "/assistants/new", newAssistant, true, nil, http.StatusForbidden},
		{"editor from another site", editor, "/assistants/new", newAssistant, false, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"editor from another origin", editor, "/assistants/new", newAssistant, false, []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"editor creates", editor, "/assistants/new", newAssistant, false, []string{"Sec-Fetch-Site", "same-origin"}, http.StatusSeeOther},
		{"admin creates a key", admin, "/settings/keys", url.Values{"name": {"k"}}, false, nil, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{}
			for k, v := range tt.form {
				form[k] = v
			}
			if !tt.noCSRF {
				form.Set("csrf_token", tt.c.token())
			}
			if res := tt.c.post(tt.path, form, tt.hdr...); res.StatusCode != tt.want {
				t.Errorf("POST %s: status %d, want %d", tt.path, res.StatusCode, tt.want)
			}
		})
	}
	all, _ := a.store.AllAssistants(ctx)
	if len(all) != 2 {
		t.Errorf("%d assistants, want 2 (the editor's one create only)", len(all))
	}
}

func TestAssistantsList(t *testing.T) {
	a := newApp(t, "")
	ctx := testCtx()
	for _, name := range []string{"Billing", "Weather help desk", "Weekly help desk"} {
		n := name
		if _, err := a.store.CreateAssistant(ctx, db.Assistant{Model: "gpt-4o", Name: &n}); err != nil {
			t.Fatal(err)
		}
	}
	c := a.user(db.RoleViewer)
	tests := []struct{ query, want string }{
		{"", "Weekly help desk,Weather help desk,Billing"},
		{"?sort=name", "Billing,Weather help desk,Weekly help desk"},
		{"?sort=oldest", "Billing,Weather help desk,Weekly help desk"},
		// A space cannot occur in an id, which the search also matches.
		{"?q=HELP+desk", "Weekly help desk,Weather help desk"},
		{"?q=no+such", ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			doc := c.page("/assistants"+tt.query, http.StatusOK)
			got := strings.Join(texts(testid(doc, "assistant-name")), ",")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			if testid(doc, "new-assistant").Length() != 0 {
				t.Error("a viewer sees the New assistant button")
			}
		})
	}
}

func TestFunctionCheck(t *testing.T) {
	a := newApp(t, "")
	c := a.user(db.RoleEditor)
	tests := []struct {
		name, fn, params string
		strict           bool
		wantName, want   []string // substrings of the errors, in order
	}{
		{"valid", "get_weather", `{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}`, true, nil, nil},
		{"no parameters", "ping", ``, false, nil, nil},
		{"bad name", "get weather", `{"type":"object"}`, false, []string{"letters, digits"}, nil},
		{"missing name", "", `{"type":"object"}`, false, []string{"Give the function a name"}, nil},
		{"bad JSON", "f", "{\n  \"type\": \"object\",,\n}", false, nil, []string{"line 2, column"}},
		{"not an object", "f", `[1]`, false, nil, []string{"must be a JSON object"}},
		{"invalid schema", "f", `{"type":"object","properties":{"a":{"type":"text"}}}`, false, nil, []string{"/properties/a/type"}},
		{"top level not an object", "f", `{"type":"string"}`, false, nil, []string{`"type": "object"`}},
		{"strict rules", "f", `{"type":"object","properties":{"a":{"type":"object","properties":{"b":{"type":"string"}}}}}`, true, nil,
			[]string{`at /properties/a, set "additionalProperties": false`, `at /properties/a, every property must be required; add "b"`,
				`at the top level, set "additionalProperties": false`, `at the top level, every property must be required; add "a"`}},
		{"remote reference refused", "f", `{"type":"object","properties":{"a":{"$ref":"https://example.com/s.json"}}}`, false, nil, []string{"not allowed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"csrf_token": {c.token()}, "fn_count": {"1"}, "fn-0-name": {tt.fn}, "fn-0-parameters": {tt.params}}
			if tt.strict {
				form.Set("fn-0-strict", "on")
			}
			res := c.post("/assistants/functions/check?index=0", form, "HX-Request", "true")
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			doc := parse(t, res)
			check := func(label string, got []string, want []string) {
				if len(got) != len(want) {
					t.Fatalf("%s errors = %q, want %d containing %q", label, got, len(want), want)
				}
				for i := range want {
					if !strings.Contains(got[i], want[i]) {
						t.Errorf("%s error %d = %q, want it to contain %q", label, i, got[i], want[i])
					}
				}
			}
			check("name", texts(doc.Find(`[data-testid="function-name-errors"] li`)), tt.wantName)
			got := texts(doc.Find(`[data-testid="function-errors"] li`))
			if tt.name == "strict rules" {
				// The walk visits nested objects after their parent.
				got = append(got[2:], got[:2]...)
			}
			check("parameters", got, tt.want)
			valid := testid(doc, "function-valid").Length() == 1
			if valid != (len(tt.wantName)+len(tt.want) == 0) {
				t.Errorf("valid mark shown = %v", valid)
			}
		})
	}
}

func TestCreateAssistantThroughEditor(t *testing.T) {
	a := newApp(t, "")
	c := a.user(db.RoleEditor)
	form := url.Values{"csrf_token": {c.token()}, "name": {"Helper"}, "model": {"gpt-4o"}, "temperature": {"3"},
		"fn_count": {"1"}, "fn-0-name": {"lookup"}, "fn-0-parameters": {`{"type":"object"}`}, "metadata": {"team=support"}, "action": {"save"}}
	res := c.post("/assistants/new", form)
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("temperature 3: status %d", res.StatusCode)
	}
	doc := parse(t, res)
	if got := testid(doc, "error-temperature").Text(); !strings.Contains(got, "maximum value") {
		t.Errorf("temperature error = %q", got)
	}
	if got, _ := testid(doc, "function-name").Attr("value"); got != "lookup" {
		t.Errorf("the form lost the function name: %q", got)
	}
	form.Set("temperature", "0.5")
	if res := c.post("/assistants/new", form); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: status %d", res.StatusCode)
	}
	all, _ := a.store.AllAssistants(testCtx())
	if len(all) != 1 || *all[0].Temperature != 0.5 || all[0].Tools[0].Function.Name != "lookup" || all[0].Metadata["team"] != "support" {
		t.Fatalf("stored %+v", all)
	}
	// Examples picker and Format, without htmx: the whole form comes back.
	form.Set("action", "example-0")
	form.Set("fn-0-example", "none")
	doc = parse(t, c.post("/assistants/"+all[0].ID, form))
	if got, _ := testid(doc, "function-name").Attr("value"); got != "get_current_time" {
		t.Errorf("example name = %q", got)
	}
	form.Set("action", "format-0")
	form.Set("fn-0-parameters", `{"type":"object","properties":{}}`)
	doc = parse(t, c.post("/assistants/"+all[0].ID, form))
	if got := testid(doc, "function-parameters").Text(); got != "{\n  \"type\": \"object\",\n  \"properties\": {}\n}" {
		t.Errorf("formatted = %q", got)
	}
	res = c.get("/assistants/" + all[0].ID + "/tools.json")
	body, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(body), `"name": "lookup"`) || !strings.Contains(res.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("export = %s", body)
	}
}

// The editor validates with package validate, as POST /v1/assistants
// does, and puts every problem beside its field by the problem's path:
// tools[i] past the built-in tools is function i-offset of the form.
func TestEditorShowsEveryProblemInPlace(t *testing.T) {
	a := newApp(t, "")
	c := a.user(db.RoleEditor)
	form := url.Values{"csrf_token": {c.token()}, "name": {strings.Repeat("n", 257)}, "model": {"gpt-4o"}, "top_p": {"2"},
		"code_interpreter": {"on"}, "code_file_ids": {"file-nosuch"},
		"fn_count":  {"3"},
		"fn-0-name": {"lookup"}, "fn-0-parameters": {`{"type":"object"}`},
		"fn-1-name": {"lookup"}, "fn-1-parameters": {`{"type":"object","properties":{"a":{"type":"string"}}}`}, "fn-1-strict": {"on"},
		"fn-2-name": {"ok_one"}, "fn-2-parameters": {`{"type": "object",,}`},
		"action": {"save"}}
	res := c.post("/assistants/new", form)
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("status %d", res.StatusCode)
	}
	doc := parse(t, res)
	for field, want := range map[string]string{
		"name":           "At most 256 characters",
		"top_p":          "maximum value is 1",
		"tool_resources": "No file has the id file-nosuch",
		"tools":          "Fix the functions marked below",
	} {
		if got := testid(doc, "error-"+field).Text(); !strings.Contains(got, want) {
			t.Errorf("error-%s = %q, want it to contain %q", field, got, want)
		}
	}
	fns := doc.Find(`[data-testid="function"]`)
	if fns.Length() != 3 {
		t.Fatalf("%d functions in the form, want 3", fns.Length())
	}
	wantFn := []struct{ name, params string }{
		{"", ""},
		{"Function 1 already uses this name.", `Strict: at the top level, set "additionalProperties": false.`},
		{"", "line 1, column"},
	}
	for i, w := range wantFn {
		fn := fns.Eq(i)
		name := strings.TrimSpace(fn.Find(`[data-testid="function-name-errors"] li`).First().Text())
		params := strings.TrimSpace(fn.Find(`[data-testid="function-errors"] li`).First().Text())
		if !strings.Contains(name, w.name) || (w.name == "") != (name == "") {
			t.Errorf("function %d name error = %q, want %q", i+1, name, w.name)
		}
		if !strings.Contains(params, w.params) || (w.params == "") != (params == "") {
			t.Errorf("function %d parameters error = %q, want %q", i+1, params, w.params)
		}
	}
	if got, _ := fns.Eq(2).Find(`[data-testid="function-name"]`).Attr("value"); got != "ok_one" {
		t.Errorf("the form lost function 3's name: %q", got)
	}
	if all, _ := a.store.AllAssistants(testCtx()); len(all) != 0 {
		t.Errorf("a refused form stored %d assistants", len(all))
	}
}

func TestThreadsSearchAndSanitising(t *testing.T) {
	a := newApp(t, "")
	ctx := testCtx()
	text := func(s string) []db.ContentPart {
		return []db.ContentPart{{Type: "text", Text: &db.Text{Value: s}}}
	}
	evil, _, err := a.store.CreateThread(ctx, db.Thread{Metadata: db.Metadata{"customer": "acme"}}, []db.Message{
		{Role: "user", Status: "completed", Content: text("My invoice: <script>alert(1)</script> <img src=x onerror=alert(2)> [x](javascript:alert(3))")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.store.CreateThread(ctx, db.Thread{Metadata: db.Metadata{"customer": "globex"}}, []db.Message{
		{Role: "user", Status: "completed", Content: text("reset my password please")},
	}); err != nil {
		t.Fatal(err)
	}
	c := a.user(db.RoleViewer)
	tests := []struct{ query, want string }{
		{"", "2"},
		{"?q=invoice", evil.ID},
		{"?q=INVOICE", evil.ID},
		{"?q=%22password+please%22", "1"},
		{"?q=AND+OR+(", "0"},
		{"?meta_key=customer&meta_value=acme", evil.ID},
		{"?meta_key=customer", "2"},
		{"?from=2000-01-01&to=2000-01-02", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			doc := c.page("/threads"+tt.query, http.StatusOK)
			rows := testid(doc, "thread-row")
			if strings.HasPrefix(tt.want, "thread_") {
				if id, _ := rows.Attr("data-id"); rows.Length() != 1 || id != tt.want {
					t.Errorf("rows = %d (%s), want only %s", rows.Length(), id, tt.want)
				}
				return
			}
			if got := rows.Length(); itoa(got) != tt.want {
				t.Errorf("rows = %d, want %s", got, tt.want)
			}
		})
	}
	doc := c.page("/threads?q=invoice", http.StatusOK)
	if got := doc.Find(`[data-testid="thread-snippet"] mark`).Text(); got != "invoice" {
		t.Errorf("highlighted = %q", got)
	}
	doc = c.page("/threads/"+evil.ID, http.StatusOK)
	body := testid(doc, "message-body")
	if n := body.Find("script, [onerror], a[href^=javascript]").Length(); n != 0 {
		html, _ := body.Html()
		t.Errorf("active content survived: %s", html)
	}
	if testid(doc, "thread-delete").Length() != 0 {
		t.Error("a viewer sees the Delete button")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestThreadPageShowsRuns(t *testing.T) {
	a := newApp(t, "")
	ctx := testCtx()
	th, _, err := a.store.CreateThread(ctx, db.Thread{}, []db.Message{
		{Role: "user", Status: "completed", Content: []db.ContentPart{{Type: "text", Text: &db.Text{Value: "weather?"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := a.store.CreateRun(ctx, db.Run{ThreadID: th.ID, AssistantID: "asst_x", Model: "gpt-4o",
		TruncationStrategy: &db.TruncationStrategy{Type: "auto"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := `{"temp":21}`
	err = a.store.Batch(ctx, func(ctx context.Context, tx *db.Tx) error {
		if _, err := tx.CreateStep(ctx, db.RunStep{RunID: run.ID, ThreadID: th.ID, AssistantID: "asst_x", Type: "tool_calls",
			StepDetails: db.StepDetails{Type: "tool_calls", ToolCalls: []db.ToolCall{{ID: "call_1", Type: "function",
				Function: &db.FunctionCallOutput{Name: "get_weather", Arguments: `{"city":"Paris"}`, Output: &out}}}}}); err != nil {
			return err
		}
		_, err := tx.UpdateRun(ctx, run.ID, func(r *db.Run) error {
			r.Status = db.RunFailed
			r.LastError = &db.LastError{Code: "server_error", Message: "upstream said no"}
			r.Usage = &db.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15}
			return nil
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	doc := a.user(db.RoleViewer).page("/threads/"+th.ID, http.StatusOK)
	for id, want := range map[string]string{
		"run-status":     "failed",
		"run-error":      "server_error: upstream said no",
		"run-usage":      "total 15",
		"tool-arguments": `"city": "Paris"`,
		"tool-output":    `"temp": 21`,
	} {
		if got := testid(doc, id).Text(); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want it to contain %q", id, got, want)
		}
	}
	if _, open := testid(doc, "run-step").Attr("open"); open {
		t.Error("steps should be collapsed by default")
	}
	c := a.user(db.RoleEditor)
	list := c.page("/threads", http.StatusOK)
	if got := testid(list, "thread-run-status").Text(); got != "failed" {
		t.Errorf("last run status in the list = %q", got)
	}
	for query, want := range map[string]int{"?assistant=asst_x": 1, "?assistant=asst_other": 0, "?run_status=failed": 1, "?run_status=completed": 0} {
		if got := testid(c.page("/threads"+query, http.StatusOK), "thread-row").Length(); got != want {
			t.Errorf("threads%s: %d rows, want %d", query, got, want)
		}
	}
}

func TestRenderMarkdownShowsRawHTMLAsText(t *testing.T) {
	got := ui.RenderMarkdown("Hi <b onclick=\"x()\">there</b>\n\n<script>alert(1)</script>\n\n```go\nfmt.Println(1)\n```\n")
	for _, want := range []string{"&lt;b onclick=&#34;x()&#34;&gt;there&lt;/b&gt;", "&lt;script&gt;alert(1)&lt;/script&gt;", `<span class="nx">fmt</span>`} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered %s\nwant it to contain %s", got, want)
		}
	}
	if strings.Contains(got, "<script") || strings.Contains(got, `onclick="`) {
		t.Errorf("active content in %s", got)
	}
}

func TestSignInThrottled(t *testing.T) {
	a := newApp(t, "")
	if _, err := a.store.CreateUser(testCtx(), "x@example.com", db.RoleViewer, password); err != nil {
		t.Fatal(err)
	}
	c := a.client()
	token := csrf(c.page("/login", http.StatusOK))
	try := func(pw string) int {
		return c.post("/login", url.Values{"csrf_token": {token}, "email": {"x@example.com"}, "password": {pw}}).StatusCode
	}
	for i := 0; i < 10; i++ {
		if got := try("wrong password"); got != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d", i, got)
		}
	}
	if got := try(password); got != http.StatusTooManyRequests {
		t.Errorf("after 10 failures the right password got %d, want 429", got)
	}
	a.advance(16 * time.Minute)
	if got := try(password); got != http.StatusSeeOther {
		t.Errorf("after the window: status %d, want 303", got)
	}
}

func TestSecureCookieBehindTLSProxy(t *testing.T) {
	store, err := db.Open(testCtx(), t.TempDir(), db.WithPasswordCost(bcrypt.MinCost))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, trust := range []bool{false, true} {
		ui := ui.New(ui.Config{Store: store, HashKey: make([]byte, 64), BlockKey: make([]byte, 32), TrustProxy: trust,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		h := web.New(web.Config{UI: ui, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Health: store.Ping})
		req := httptest.NewRequest(http.MethodGet, "/login", nil)
		req.Header.Set("X-Forwarded-Proto", "https")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if secure := strings.Contains(rec.Header().Get("Set-Cookie"), "Secure"); secure != trust {
			t.Errorf("trust proxy %v: Secure = %v", trust, secure)
		}
	}
}

func TestUploadSeveralFiles(t *testing.T) {
	a := newApp(t, "")
	c := a.user(db.RoleEditor)
	var body strings.Builder
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("csrf_token", c.token())
	_ = mw.WriteField("purpose", "assistants")
	for name, content := range map[string]string{"a.txt": "alpha", "empty.txt": "", "b.md": "# beta"} {
		w, _ := mw.CreateFormFile("files", name)
		_, _ = w.Write([]byte(content))
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, c.base+"/files", strings.NewReader(body.String()))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res := c.do(req)
	// Post/redirect/get: the answer is a redirect, so a reload of the page
	// shown afterwards uploads nothing again.
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/files?uploaded=file-") {
		t.Fatalf("upload: status %d, Location %q", res.StatusCode, loc)
	}
	doc := c.page(loc, http.StatusOK)
	if ok := testid(doc, "upload-ok").Length(); ok != 2 {
		t.Errorf("%d listed as uploaded; want 2", ok)
	}
	if got := testid(doc, "flash").Text(); !strings.Contains(got, "2 files stored") || !strings.Contains(got, "empty.txt (the file is empty)") {
		t.Errorf("flash = %q", got)
	}
	doc = c.page(loc, http.StatusOK) // the reload
	if got := testid(doc, "file-row").Length(); got != 2 {
		t.Errorf("%d files listed, want 2", got)
	}
	// The address names only real files: an id of nothing lists nothing.
	if doc := c.page("/files?uploaded=file-nope&uploaded=%3Cb%3E", http.StatusOK); testid(doc, "upload-ok").Length() != 0 {
		t.Error("ids of no file listed as uploaded")
	}
	href, _ := testid(doc, "file-download").First().Attr("href")
	res = c.get(href)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment") ||
		res.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("download: %d %q %q", res.StatusCode, res.Header.Get("Content-Disposition"), res.Header.Get("Content-Type"))
	}
}

func TestAPIKeyShownOnce(t *testing.T) {
	a := newApp(t, "")
	c := a.user(db.RoleAdmin)
	res := c.post("/settings/keys", url.Values{"csrf_token": {c.token()}, "name": {"ci"}})
	doc := parse(t, res)
	secret := strings.TrimSpace(testid(doc, "new-key-secret").Text())
	if _, ok, _ := a.store.CheckAPIKey(testCtx(), secret); !ok {
		t.Fatalf("the shown secret %q does not work", secret)
	}
	doc = c.page("/settings/keys", http.StatusOK)
	if testid(doc, "new-key").Length() != 0 || strings.Contains(doc.Text(), secret) {
		t.Error("the secret is shown again")
	}
	if got := testid(doc, "key-last-used").Text(); got == "never" {
		t.Errorf("last used = %q after use", got)
	}
}

func TestLastAdminStays(t *testing.T) {
	a := newApp(t, "")
	c := a.user(db.RoleAdmin)
	users, _ := a.store.ListUsers(testCtx())
	id := users[0].ID
	c.post("/settings/users/"+id+"/role", url.Values{"csrf_token": {c.token()}, "role": {"viewer"}})
	if u, _ := a.store.GetUser(testCtx(), id); u.Role != db.RoleAdmin {
		t.Errorf("the last admin became %s", u.Role)
	}
	doc := c.page("/settings/users", http.StatusOK)
	if got := testid(doc, "flash").Text(); !strings.Contains(got, "last admin") {
		t.Errorf("flash = %q", got)
	}
}

func TestSchemaCheck(t *testing.T) {
	a := newApp(t, "")
	c := a.user(db.RoleEditor)
	tests := []struct {
		schema string
		strict bool
		want   string // an error substring, or "" for valid
	}{
		{`{"type":"object","properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false}`, true, ""},
		{`{"type":"object","properties":{"a":{"type":"string"}}}`, true, `add "a" to "required"`},
		{`{"type":"object","properties":{"a":{"type":"string"}}}`, false, ""},
		{`{"type": 5}`, false, "/type"},
		{`{"type":`, false, "Invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.schema, func(t *testing.T) {
			form := url.Values{"csrf_token": {c.token()}, "schema": {tt.schema}, "schema_name": {"answer"}}
			if tt.strict {
				form.Set("schema_strict", "on")
			}
			doc := parse(t, c.post("/assistants/schema/check", form, "HX-Request", "true"))
			errs := strings.Join(texts(doc.Find(`[data-testid="schema-errors"] li`)), "\n")
			if tt.want == "" && (errs != "" || testid(doc, "schema-valid").Length() != 1) {
				t.Errorf("errors %q, want valid", errs)
			}
			if tt.want != "" && !strings.Contains(errs, tt.want) {
				t.Errorf("errors %q, want %q", errs, tt.want)
			}
		})
	}
}

func TestCodeInterpreterFilePicker(t *testing.T) {
	a := newApp(t, "")
	ctx := testCtx()
	sf, err := a.store.StageFile(strings.NewReader("x,y\n1,2\n"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.store.CommitFile(ctx, db.File{Filename: "data.csv", Purpose: "assistants", ContentType: "text/csv"}, sf, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := a.user(db.RoleEditor)
	doc := c.page("/assistants/new", http.StatusOK)
	if got := doc.Find(`[data-testid="code-file-picker"] input[value="` + f.ID + `"]`).Length(); got != 1 {
		t.Fatalf("the picker offers the file %d times", got)
	}
	form := url.Values{"csrf_token": {c.token()}, "model": {"gpt-4o"}, "code_interpreter": {"on"}, "code_file": {f.ID},
		"code_file_ids": {f.ID + " file-missing"}, "action": {"save"}}
	res := c.post("/assistants/new", form)
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("a missing file id: status %d", res.StatusCode)
	}
	if got := testid(parse(t, res), "error-tool_resources").Text(); !strings.Contains(got, "file-missing") {
		t.Errorf("error = %q", got)
	}
	form.Set("code_file_ids", "")
	if res := c.post("/assistants/new", form); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: status %d", res.StatusCode)
	}
	all, _ := a.store.AllAssistants(ctx)
	if diff := cmp.Diff([]string{f.ID}, all[0].ToolResources.CodeInterpreter.FileIDs); diff != "" {
		t.Errorf("code interpreter files (-want +got):\n%s", diff)
	}
	th, _, err := a.store.CreateThread(ctx, db.Thread{}, []db.Message{{Role: "user", Status: "completed",
		Content:     []db.ContentPart{{Type: "text", Text: &db.Text{Value: "see attached"}}},
		Attachments: []db.Attachment{{FileID: f.ID, Tools: []db.AttachmentTool{{Type: "code_interpreter"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	used := testid(c.page("/files", http.StatusOK), "file-used-by")
	var hrefs []string
	used.Find("a").Each(func(_ int, a *goquery.Selection) { h, _ := a.Attr("href"); hrefs = append(hrefs, h) })
	if diff := cmp.Diff([]string{"/assistants/" + all[0].ID, "/threads/" + th.ID}, hrefs); diff != "" {
		t.Errorf("used by (-want +got):\n%s", diff)
	}
}

func TestErrorPages(t *testing.T) {
	a := newApp(t, "")
	c := a.user(db.RoleViewer)
	doc := c.page("/no/such/page", http.StatusNotFound)
	if got := testid(doc, "error-message").Text(); !strings.Contains(got, "/no/such/page") {
		t.Errorf("404 page says %q", got)
	}
	if testid(doc, "current-user").Length() != 1 {
		t.Error("the error page lacks the signed-in layout")
	}
	c.page("/threads/thread_missing", http.StatusNotFound)

	// htmx requests get a fragment aimed at the page's error area.
	res := c.post("/assistants/functions/check?index=0", url.Values{"csrf_token": {c.token()}}, "HX-Request", "true")
	if res.StatusCode != http.StatusForbidden || res.Header.Get("HX-Retarget") != "#htmx-errors" {
		t.Errorf("htmx error: status %d, HX-Retarget %q", res.StatusCode, res.Header.Get("HX-Retarget"))
	}
	if doc := parse(t, res); testid(doc, "error-fragment").Length() != 1 || doc.Find("html body header").Length() != 0 {
		t.Error("htmx error is not a bare fragment")
	}
}

func TestThreadCitationsAndImages(t *testing.T) {
	a := newApp(t, "")
	ctx := testCtx()
	sf, _ := a.store.StageFile(strings.NewReader("manual"), 1<<20)
	f, err := a.store.CommitFile(ctx, db.File{Filename: "manual.pdf", Purpose: "assistants", ContentType: "application/pdf"}, sf, 0)
	if err != nil {
		t.Fatal(err)
	}
	value := "The warranty lasts two years【4:0†source】."
	start := strings.Index(value, "【")
	th, _, err := a.store.CreateThread(ctx, db.Thread{}, []db.Message{{Role: "assistant", Status: "completed", Content: []db.ContentPart{
		{Type: "text", Text: &db.Text{Value: value, Annotations: []db.Annotation{{Type: "file_citation", Text: "【4:0†source】",
			StartIndex: len([]rune(value[:start])), EndIndex: len([]rune(value)) - 1, FileCitation: &db.FileCitation{FileID: f.ID}}}}},
		{Type: "image_file", ImageFile: &db.ImageFile{FileID: f.ID}},
		{Type: "image_url", ImageURL: &db.ImageURL{URL: "javascript:alert(1)"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	doc := a.user(db.RoleViewer).page("/threads/"+th.ID, http.StatusOK)
	if got := testid(doc, "message-body").First().Text(); !strings.Contains(got, "two years [1].") || strings.Contains(got, "source") {
		t.Errorf("body = %q, want the marker replaced by [1]", got)
	}
	if got := testid(doc, "citations").Text(); !strings.Contains(got, "manual.pdf") || !strings.Contains(got, f.ID) {
		t.Errorf("citations = %q", got)
	}
	imgs := testid(doc, "message-image")
	if src, _ := imgs.Attr("src"); imgs.Length() != 1 || src != "/files/"+f.ID+"/content" {
		t.Errorf("%d images, first src %q; want only the stored file's", imgs.Length(), src)
	}
}

func TestImportTools(t *testing.T) {
	a := newApp(t, "")
	c := a.user(db.RoleEditor)
	form := url.Values{"csrf_token": {c.token()}, "model": {"gpt-4o"}, "action": {"import"},
		"tools_json": {`[{"type":"code_interpreter"},{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{}}}}]`}}
	doc := parse(t, c.post("/assistants/new", form))
	if v, _ := testid(doc, "function-name").Attr("value"); v != "lookup" {
		t.Errorf("imported function name %q", v)
	}
	if _, checked := testid(doc, "tool-code-interpreter").Attr("checked"); !checked {
		t.Error("code interpreter not ticked")
	}
	form.Set("tools_json", `[{"type":"browser"}]`)
	doc = parse(t, c.post("/assistants/new", form))
	if got := testid(doc, "error-tools_json").Text(); !strings.Contains(got, "browser") {
		t.Errorf("import error = %q", got)
	}
}

func TestPasswords(t *testing.T) {
	a := newApp(t, "")
	ctx := testCtx()
	viewer := a.user(db.RoleViewer)
	form := url.Values{"csrf_token": {viewer.token()}, "current": {"wrong"}, "password": {"new-password-1"}, "confirm": {"new-password-1"}}
	if res := viewer.post("/settings/account", form); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("wrong current password: status %d", res.StatusCode)
	}
	form.Set("current", password)
	if res := viewer.post("/settings/account", form); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("change own password: status %d", res.StatusCode)
	}
	if _, err := a.store.Authenticate(ctx, "viewer@example.com", "new-password-1"); err != nil {
		t.Errorf("the new password does not work: %v", err)
	}
	admin := a.user(db.RoleAdmin)
	users, _ := a.store.ListUsers(ctx)
	res := admin.post("/settings/users/"+users[0].ID+"/password", url.Values{"csrf_token": {admin.token()}, "password": {"reset-password-1"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("reset: status %d", res.StatusCode)
	}
	if _, err := a.store.Authenticate(ctx, users[0].Email, "reset-password-1"); err != nil {
		t.Errorf("the reset password does not work: %v", err)
	}
	// The reset signed the viewer out everywhere; a viewer still signed
	// in may not reset anyone's password.
	if signedIn(viewer) {
		t.Error("the viewer is still signed in after an admin reset their password")
	}
	viewer = a.signInAs("viewer2@example.com")
	res = viewer.post("/settings/users/"+users[0].ID+"/password", url.Values{"csrf_token": {viewer.token()}, "password": {"hijacked-password"}})
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer resetting a password: status %d", res.StatusCode)
	}
}

func TestUploadRefusedBeforeReading(t *testing.T) {
	a := newApp(t, "")
	for name, c := range map[string]*client{"anonymous": a.client(), "viewer": a.user(db.RoleViewer)} {
		t.Run(name, func(t *testing.T) {
			var body strings.Builder
			mw := multipart.NewWriter(&body)
			w, _ := mw.CreateFormFile("files", "a.txt")
			_, _ = w.Write([]byte("alpha"))
			mw.Close()
			req, _ := http.NewRequest(http.MethodPost, c.base+"/files", strings.NewReader(body.String()))
			req.Header.Set("Content-Type", mw.FormDataContentType())
			if res := c.do(req); res.StatusCode != http.StatusForbidden {
				t.Errorf("status %d, want 403", res.StatusCode)
			}
		})
	}
	if page, _ := a.store.ListFiles(testCtx(), "", db.ListParams{Limit: 10}); len(page.Data) != 0 {
		t.Errorf("%d files stored", len(page.Data))
	}
}

func TestEditKeepsFileSearchOptions(t *testing.T) {
	a := newApp(t, "")
	ctx := testCtx()
	n := 5
	asst, err := a.store.CreateAssistant(ctx, db.Assistant{Model: "gpt-4o", Tools: []db.Tool{{Type: "file_search", FileSearch: &db.FileSearchTool{MaxNumResults: &n}}}})
	if err != nil {
		t.Fatal(err)
	}
	c := a.user(db.RoleEditor)
	res := c.post("/assistants/"+asst.ID, url.Values{"csrf_token": {c.token()}, "model": {"gpt-4o"}, "name": {"renamed"}, "file_search": {"on"}, "action": {"save"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: status %d", res.StatusCode)
	}
	got, _ := a.store.GetAssistant(ctx, asst.ID)
	if *got.Name != "renamed" || got.Tools[0].FileSearch == nil || *got.Tools[0].FileSearch.MaxNumResults != 5 {
		t.Errorf("after editing: %+v", got.Tools)
	}
}

func TestResponseFormatSchemaRoundTrip(t *testing.T) {
	a := newApp(t, "")
	c := a.user(db.RoleEditor)
	form := url.Values{"csrf_token": {c.token()}, "model": {"gpt-4o"}, "response_type": {"json_schema"}, "schema_name": {"answer"},
		"schema_description": {"The answer"}, "schema_strict": {"on"}, "action": {"save"},
		"schema": {`{"type":"object","properties":{"text":{"type":"string"}},"required":["text"],"additionalProperties":false}`}}
	if res := c.post("/assistants/new", form); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: status %d", res.StatusCode)
	}
	all, _ := a.store.AllAssistants(testCtx())
	// The schema is stored as typed, as the API stores the same JSON.
	want := `{"type":"json_schema","json_schema":{"name":"answer","description":"The answer","schema":{"type":"object","properties":{"text":{"type":"string"}},"required":["text"],"additionalProperties":false},"strict":true}}`
	if diff := cmp.Diff(want, string(all[0].ResponseFormat)); diff != "" {
		t.Errorf("response_format (-want +got):\n%s", diff)
	}
	doc := c.page("/assistants/"+all[0].ID, http.StatusOK)
	if v, _ := doc.Find("#schema_description").Attr("value"); v != "The answer" {
		t.Errorf("description in the editor = %q", v)
	}
}

func TestComposerAddsMessages(t *testing.T) {
	a := newApp(t, "")
	ctx := testCtx()
	th, _, err := a.store.CreateThread(ctx, db.Thread{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	editor, viewer := a.user(db.RoleEditor), a.user(db.RoleViewer)
	if testid(viewer.page("/threads/"+th.ID, http.StatusOK), "composer").Length() != 0 {
		t.Error("a viewer sees the composer")
	}
	doc := editor.page("/threads/"+th.ID, http.StatusOK)
	if testid(doc, "composer").Length() != 1 || testid(doc, "composer-run").Length() != 0 {
		t.Error("an editor should see the composer, without Add and run when no engine is configured")
	}
	form := url.Values{"csrf_token": {editor.token()}, "content": {"a **note**"}, "role": {"assistant"}, "action": {"add"}}
	if res := editor.post("/threads/"+th.ID+"/messages", form); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("add: status %d", res.StatusCode)
	}
	if res := viewer.post("/threads/"+th.ID+"/messages", form); res.StatusCode != http.StatusForbidden {
		t.Errorf("viewer add: status %d", res.StatusCode)
	}
	msgs, _ := a.store.ThreadTranscript(ctx, th.ID, 10)
	if len(msgs) != 1 || msgs[0].Role != "assistant" || msgs[0].Content[0].Text.Value != "a **note**" {
		t.Errorf("messages = %+v", msgs)
	}
}

// testCtx is the context of a test's own calls: scoped to the Default
// project, as the web app's requests are.
func testCtx() context.Context { return db.WithProject(context.Background(), db.DefaultProjectID) }
