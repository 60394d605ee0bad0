package ui_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/db/dbtest"
)

// projectsNow is the fixed time of the projects tests, on both the
// store's and the web app's clock, so that "today" is one day for both.
var projectsNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// onBothStores runs f on a web app over SQLite, and over PostgreSQL when
// ASSISTANTD_TEST_POSTGRES is set.
func onBothStores(t *testing.T, f func(t *testing.T, a *app)) {
	clock := db.WithClock(func() time.Time { return projectsNow })
	t.Run("sqlite", func(t *testing.T) {
		store, err := db.Open(context.Background(), t.TempDir(), db.WithPasswordCost(bcrypt.MinCost), clock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		a := newAppOn(t, store, nil, nil)
		a.now = projectsNow
		f(t, a)
	})
	t.Run("postgres", func(t *testing.T) {
		ctx := context.Background()
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
		store, err := db.Open(ctx, t.TempDir(), db.WithDatabaseURL(pgURL), db.WithPasswordCost(bcrypt.MinCost), clock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		store.StartupDone()
		a := newAppOn(t, store, nil, nil)
		a.now = projectsNow
		f(t, a)
	})
}

// member creates a person who is not an instance admin, with a role in
// each of the given projects (id → role), and signs them in.
func (a *app) member(email string, roles map[string]string) (*client, db.User) {
	a.t.Helper()
	ctx := context.Background()
	usr, err := a.store.CreateUser(ctx, email, db.RoleViewer, password)
	if err != nil {
		a.t.Fatal(err)
	}
	for p, r := range roles {
		if err := a.store.SetMember(ctx, p, usr.ID, r); err != nil {
			a.t.Fatal(err)
		}
	}
	c := a.client()
	res := c.post("/login", url.Values{"csrf_token": {csrf(c.page("/login", http.StatusOK))}, "email": {email}, "password": {password}})
	if res.StatusCode != http.StatusSeeOther {
		a.t.Fatalf("sign in as %s: status %d", email, res.StatusCode)
	}
	return c, usr
}

// switcher returns the projects a page's switcher offers and the one
// selected.
func switcher(doc *goquery.Document) (names []string, selected string) {
	testid(doc, "project-select").Find("option").Each(func(_ int, o *goquery.Selection) {
		names = append(names, strings.TrimSpace(o.Text()))
		if _, ok := o.Attr("selected"); ok {
			selected = strings.TrimSpace(o.Text())
		}
	})
	return names, selected
}

func (c *client) switchTo(projectID string) *http.Response {
	c.t.Helper()
	return c.post("/projects/switch", url.Values{"csrf_token": {c.token()}, "project_id": {projectID}, "next": {"/settings/keys"}})
}

func TestProjectSwitcher(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *app) {
		ctx := context.Background()
		b, err := a.store.CreateProject(ctx, "Team B")
		if err != nil {
			t.Fatal(err)
		}
		c, err := a.store.CreateProject(ctx, "Team C")
		if err != nil {
			t.Fatal(err)
		}
		admin := a.user(db.RoleAdmin)
		alice, aliceUser := a.member("alice@example.com", map[string]string{db.DefaultProjectID: db.ProjectEditor, b.ID: db.ProjectViewer})

		// The switcher offers the projects one belongs to; admins every
		// active one.
		names, sel := switcher(alice.page("/assistants", http.StatusOK))
		if diff := cmp.Diff([]string{"Default project", "Team B"}, names); diff != "" {
			t.Errorf("alice's switcher (-want +got):\n%s", diff)
		}
		if sel != "Default project" {
			t.Errorf("alice works in %q at first, want the Default project", sel)
		}
		names, _ = switcher(admin.page("/assistants", http.StatusOK))
		if diff := cmp.Diff([]string{"Default project", "Team B", "Team C"}, names); diff != "" {
			t.Errorf("the admin's switcher (-want +got):\n%s", diff)
		}

		// Switching goes to the section's list and holds for later pages.
		res := alice.switchTo(b.ID)
		if res.StatusCode != http.StatusSeeOther || location(res) != "/settings/keys" {
			t.Fatalf("switch: status %d to %q", res.StatusCode, location(res))
		}
		doc := alice.page("/settings/keys", http.StatusOK)
		if _, sel := switcher(doc); sel != "Team B" {
			t.Errorf("after switching alice works in %q", sel)
		}
		if got := testid(doc, "current-role").Text(); got != db.ProjectViewer {
			t.Errorf("alice's role in Team B shows as %q", got)
		}

		// A project one is not a member of cannot be entered, however asked.
		if res := alice.switchTo(c.ID); res.StatusCode != http.StatusNotFound {
			t.Errorf("alice switching to Team C: status %d, want 404", res.StatusCode)
		}
		if res := alice.switchTo("proj_madeup"); res.StatusCode != http.StatusNotFound {
			t.Errorf("alice switching to a made-up project: status %d, want 404", res.StatusCode)
		}
		if _, sel := switcher(alice.page("/assistants", http.StatusOK)); sel != "Team B" {
			t.Errorf("a refused switch moved alice to %q", sel)
		}

		// The session's choice is checked on every request: removed from
		// Team B, alice is back in her first project at once.
		if err := a.store.RemoveMember(ctx, b.ID, aliceUser.ID); err != nil {
			t.Fatal(err)
		}
		doc = alice.page("/assistants", http.StatusOK)
		names, sel = switcher(doc)
		if sel != "Default project" || len(names) != 1 {
			t.Errorf("after removal from Team B alice sees %v, in %q", names, sel)
		}
		if got := testid(doc, "current-role").Text(); got != db.ProjectEditor {
			t.Errorf("alice's role shows as %q, want her Default project role", got)
		}

		// The admin enters any project; an archived one leaves the switcher
		// and its people fall back.
		if res := admin.switchTo(c.ID); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("admin switching to Team C: status %d", res.StatusCode)
		}
		if _, sel := switcher(admin.page("/assistants", http.StatusOK)); sel != "Team C" {
			t.Errorf("the admin works in %q", sel)
		}
		if _, err := a.store.ArchiveProject(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		names, sel = switcher(admin.page("/assistants", http.StatusOK))
		if sel != "Default project" || len(names) != 2 {
			t.Errorf("after archiving Team C the admin sees %v, in %q", names, sel)
		}
	})
}

func TestNoProjectPage(t *testing.T) {
	a := newApp(t, "")
	nobody, _ := a.member("nobody@example.com", nil)
	for _, path := range []string{"/assistants", "/threads", "/settings/keys", "/usage"} {
		doc := nobody.page(path, http.StatusForbidden)
		if got := testid(doc, "error-message").Text(); !strings.Contains(got, "not a member of any project") {
			t.Errorf("GET %s: %q", path, got)
		}
		if testid(doc, "project-switcher").Length() != 0 {
			t.Errorf("GET %s shows a project switcher with nothing in it", path)
		}
	}
	// Their own account still works.
	nobody.page("/settings/account", http.StatusOK)
}

// TestProjectRoles: what a person may change comes from their role in the
// project they work in, checked on the server for every post.
func TestProjectRoles(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *app) {
		ctx := context.Background()
		b, err := a.store.CreateProject(ctx, "Team B")
		if err != nil {
			t.Fatal(err)
		}
		asst, err := a.store.CreateAssistant(db.WithProject(ctx, db.DefaultProjectID), db.Assistant{Model: "gpt-4o"})
		if err != nil {
			t.Fatal(err)
		}
		other, err := a.store.CreateUser(ctx, "other@example.com", db.RoleViewer, password)
		if err != nil {
			t.Fatal(err)
		}
		// Vic: viewer of the Default project, owner of Team B. Eve: editor
		// of the Default project. Olive: owner of the Default project.
		vic, _ := a.member("vic@example.com", map[string]string{db.DefaultProjectID: db.ProjectViewer, b.ID: db.ProjectOwner})
		eve, _ := a.member("eve@example.com", map[string]string{db.DefaultProjectID: db.ProjectEditor})
		olive, _ := a.member("olive@example.com", map[string]string{db.DefaultProjectID: db.ProjectOwner})
		admin := a.user(db.RoleAdmin)

		newAssistant := url.Values{"name": {"x"}, "model": {"gpt-4o"}, "action": {"save"}}
		key := url.Values{"name": {"k"}}
		tests := []struct {
			name string
			c    *client
			path string
			form url.Values
			want int
		}{
			{"viewer creates an assistant", vic, "/assistants/new", newAssistant, http.StatusForbidden},
			{"viewer deletes an assistant", vic, "/assistants/" + asst.ID + "/delete", url.Values{}, http.StatusForbidden},
			{"viewer uploads", vic, "/files", url.Values{}, http.StatusForbidden},
			{"viewer creates a key", vic, "/settings/keys", key, http.StatusForbidden},
			{"viewer adds a member", vic, "/settings/members", url.Values{"email": {other.Email}, "role": {"owner"}}, http.StatusForbidden},
			{"viewer creates a service account", vic, "/settings/service_accounts", url.Values{"name": {"s"}, "role": {"owner"}}, http.StatusForbidden},
			{"editor creates a key", eve, "/settings/keys", key, http.StatusForbidden},
			{"editor adds a member", eve, "/settings/members", url.Values{"email": {other.Email}, "role": {"viewer"}}, http.StatusForbidden},
			{"editor creates an assistant", eve, "/assistants/new", newAssistant, http.StatusSeeOther},
			{"owner creates a project", olive, "/settings/projects", url.Values{"name": {"Mine"}}, http.StatusForbidden},
			{"owner adds a user", olive, "/settings/users", url.Values{"email": {"n@example.com"}, "password": {password}, "role": {"viewer"}}, http.StatusForbidden},
			{"owner archives a project", olive, "/settings/projects/" + b.ID + "/archive", url.Values{}, http.StatusForbidden},
			{"owner creates a key", olive, "/settings/keys", key, http.StatusOK},
			{"owner adds a member", olive, "/settings/members", url.Values{"email": {other.Email}, "role": {"viewer"}}, http.StatusSeeOther},
			{"admin creates a key", admin, "/settings/keys", key, http.StatusOK},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				form := url.Values{"csrf_token": {tt.c.token()}}
				for k, v := range tt.form {
					form[k] = v
				}
				if res := tt.c.post(tt.path, form); res.StatusCode != tt.want {
					t.Errorf("POST %s: status %d, want %d", tt.path, res.StatusCode, tt.want)
				}
			})
		}
		all, err := a.store.AllAssistants(db.WithProject(ctx, db.DefaultProjectID))
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 {
			t.Errorf("%d assistants, want 2 (the editor's one create only)", len(all))
		}
		keys, _ := a.store.ListAPIKeys(ctx, db.DefaultProjectID)
		if len(keys) != 2 {
			t.Errorf("%d keys in the Default project, want 2 (the owner's and the admin's)", len(keys))
		}
		if m, err := a.store.GetMember(ctx, db.DefaultProjectID, other.ID); err != nil || m.Role != db.ProjectViewer {
			t.Errorf("the owner's new member: %+v, %v", m, err)
		}

		// Owners name the person to add; an unknown address adds nobody,
		// and only admins are offered the list of every account.
		// The refusal is shown in place, with the address kept.
		res := olive.post("/settings/members", url.Values{"csrf_token": {olive.token()}, "email": {"ghost@example.com"}, "role": {"editor"}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("adding an unknown address: status %d", res.StatusCode)
		}
		doc := parse(t, res)
		if got := testid(doc, "member-errors").Text(); !strings.Contains(got, "No account has the address ghost@example.com") {
			t.Errorf("refusal = %q", got)
		}
		if got, _ := testid(doc, "member-email-input").Attr("value"); got != "ghost@example.com" {
			t.Errorf("the typed address is not kept: %q", got)
		}
		if got, _ := doc.Find(`[data-testid="member-role"] option[selected]`).Attr("value"); got != "editor" {
			t.Errorf("the picked role is not kept: %q", got)
		}
		doc = olive.page("/settings/members", http.StatusOK)
		if n := doc.Find("datalist option").Length(); n != 0 {
			t.Errorf("an owner who is not an admin is offered %d accounts", n)
		}
		if _, err := a.store.CreateUser(ctx, "loner@example.com", db.RoleViewer, password); err != nil {
			t.Fatal(err)
		}
		var offered []string
		admin.page("/settings/members", http.StatusOK).Find("datalist option").Each(func(_ int, o *goquery.Selection) {
			v, _ := o.Attr("value")
			offered = append(offered, v)
		})
		if diff := cmp.Diff([]string{"loner@example.com"}, offered); diff != "" {
			t.Errorf("accounts offered to the admin (-want +got):\n%s", diff)
		}

		// The same person, switched to the project they own, may manage it.
		if res := vic.switchTo(b.ID); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("vic switching to Team B: status %d", res.StatusCode)
		}
		if res := vic.post("/settings/keys", url.Values{"csrf_token": {vic.token()}, "name": {"b key"}}); res.StatusCode != http.StatusOK {
			t.Errorf("vic creating a key in Team B: status %d", res.StatusCode)
		}
		if keys, _ := a.store.ListAPIKeys(ctx, b.ID); len(keys) != 1 || keys[0].Name != "b key" {
			t.Errorf("Team B's keys: %+v", keys)
		}
		// An editor sees no key buttons.
		doc = eve.page("/settings/keys", http.StatusOK)
		if testid(doc, "key-form").Length() != 0 || testid(doc, "key-revoke").Length() != 0 {
			t.Error("an editor is offered key management")
		}
	})
}

// TestLastOwnerStays: an owner who is not an instance admin cannot
// demote or remove the project's only owner (themselves): the page says
// why and nothing changes. With a second owner they can; an instance
// admin always can.
func TestLastOwnerStays(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *app) {
		ctx := context.Background()
		b, err := a.store.CreateProject(ctx, "Team B")
		if err != nil {
			t.Fatal(err)
		}
		vic, vicUser := a.member("vic@example.com", map[string]string{b.ID: db.ProjectOwner})
		_, olive := a.member("olive@example.com", map[string]string{b.ID: db.ProjectViewer})
		if res := vic.switchTo(b.ID); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("switch to Team B: status %d", res.StatusCode)
		}
		for _, c := range []struct{ path, role string }{{"/role", "editor"}, {"/remove", ""}} {
			form := url.Values{"csrf_token": {vic.token()}}
			if c.role != "" {
				form.Set("role", c.role)
			}
			res := vic.post("/settings/members/"+vicUser.ID+c.path, form)
			if res.StatusCode != http.StatusSeeOther {
				t.Fatalf("%s: status %d", c.path, res.StatusCode)
			}
			doc := vic.page(res.Header.Get("Location"), http.StatusOK)
			if got := testid(doc, "flash"); !got.HasClass("err") || !strings.Contains(got.Text(), "only owner") {
				t.Errorf("%s: flash %q", c.path, got.Text())
			}
			if m, err := a.store.GetMember(ctx, b.ID, vicUser.ID); err != nil || m.Role != db.ProjectOwner {
				t.Fatalf("%s: vic's membership after the refusal: %+v %v", c.path, m, err)
			}
		}
		// With Olive an owner too, Vic may step down.
		if res := vic.post("/settings/members/"+olive.ID+"/role", url.Values{"csrf_token": {vic.token()}, "role": {"owner"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("make olive an owner: status %d", res.StatusCode)
		}
		if res := vic.post("/settings/members/"+vicUser.ID+"/role", url.Values{"csrf_token": {vic.token()}, "role": {"editor"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("vic steps down: status %d", res.StatusCode)
		}
		if m, _ := a.store.GetMember(ctx, b.ID, vicUser.ID); m.Role != db.ProjectEditor {
			t.Errorf("vic's role after stepping down: %q", m.Role)
		}
		// An instance admin may leave the project without owners.
		admin := a.user(db.RoleAdmin)
		if res := admin.switchTo(b.ID); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("admin switches to Team B: status %d", res.StatusCode)
		}
		if res := admin.post("/settings/members/"+olive.ID+"/remove", url.Values{"csrf_token": {admin.token()}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("admin removes olive: status %d", res.StatusCode)
		}
		if _, err := a.store.GetMember(ctx, b.ID, olive.ID); err == nil {
			t.Error("the admin's removal of the only owner was refused")
		}
	})
}

// TestProjectPagesStayInTheirProject: the keys, service accounts, members
// and usage pages of one project show nothing of another, and its keys
// cannot be revoked from another.
func TestProjectPagesStayInTheirProject(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *app) {
		ctx := context.Background()
		b, err := a.store.CreateProject(ctx, "Team B")
		if err != nil {
			t.Fatal(err)
		}
		bKey, _, err := a.store.CreateAPIKey(ctx, db.KeyOptions{ProjectID: b.ID, Name: "b-secret-key"})
		if err != nil {
			t.Fatal(err)
		}
		bSA, _, _, err := a.store.CreateServiceAccount(ctx, b.ID, "b-robot", "member")
		if err != nil {
			t.Fatal(err)
		}
		bob, _ := a.member("bob@example.com", map[string]string{b.ID: db.ProjectOwner})
		if err := a.store.RecordUsage(ctx, b.ID, "b-model", 100, 10); err != nil {
			t.Fatal(err)
		}
		if err := a.store.RecordUsage(ctx, db.DefaultProjectID, "a-model", 7, 3); err != nil {
			t.Fatal(err)
		}
		// Alice owns the Default project only.
		alice, _ := a.member("alice@example.com", map[string]string{db.DefaultProjectID: db.ProjectOwner})
		for path, hidden := range map[string][]string{
			"/settings/keys":             {"b-secret-key", "b-robot"},
			"/settings/service_accounts": {"b-robot"},
			"/settings/members":          {"bob@example.com"},
			"/usage":                     {"b-model"},
		} {
			res := alice.get(path)
			body := readAll(t, res)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: status %d", path, res.StatusCode)
			}
			for _, h := range hidden {
				if strings.Contains(body, h) {
					t.Errorf("GET %s in the Default project shows %q of Team B", path, h)
				}
			}
		}
		if !strings.Contains(readAll(t, alice.get("/usage")), "a-model") {
			t.Error("the Default project's usage does not show its own model")
		}
		// Team B's key and service account are not found from the Default
		// project, and stay working.
		if res := alice.post("/settings/keys/"+bKey.ID+"/revoke", url.Values{"csrf_token": {alice.token()}}); res.StatusCode != http.StatusNotFound {
			t.Errorf("revoking Team B's key from the Default project: status %d, want 404", res.StatusCode)
		}
		if res := alice.post("/settings/service_accounts/"+bSA.ID+"/delete", url.Values{"csrf_token": {alice.token()}}); res.StatusCode != http.StatusNotFound {
			t.Errorf("deleting Team B's service account from the Default project: status %d, want 404", res.StatusCode)
		}
		if k, _ := a.store.GetAPIKey(ctx, b.ID, bKey.ID); k.RevokedAt != nil {
			t.Error("Team B's key was revoked from the Default project")
		}
		if _, err := a.store.GetServiceAccount(ctx, b.ID, bSA.ID); err != nil {
			t.Errorf("Team B's service account: %v", err)
		}
		// Bob, in Team B, sees them.
		body := readAll(t, bob.get("/settings/keys"))
		for _, want := range []string{"b-secret-key", "service account b-robot"} {
			if !strings.Contains(body, want) {
				t.Errorf("Team B's keys page lacks %q", want)
			}
		}
	})
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	doc := parse(t, res)
	h, _ := doc.Html()
	return h
}

func TestKeysExpiryAndReadOnly(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *app) {
		ctx := context.Background()
		owner := a.user(db.RoleAdmin)
		res := owner.post("/settings/keys", url.Values{"csrf_token": {owner.token()}, "name": {"ci reader"}, "expires": {"2026-03-12"}, "read_only": {"on"}})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("create: status %d", res.StatusCode)
		}
		doc := parse(t, res)
		secret := strings.TrimSpace(testid(doc, "new-key-secret").Text())
		p, ok, err := a.store.CheckAPIKey(ctx, secret)
		if err != nil || !ok || !p.ReadOnly || p.ProjectID != db.DefaultProjectID {
			t.Fatalf("the new key: %+v ok=%v err=%v", p, ok, err)
		}
		keys, _ := a.store.ListAPIKeys(ctx, db.DefaultProjectID)
		// It works through the whole day chosen (UTC).
		if want := time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC).Unix(); len(keys) != 1 || keys[0].ExpiresAt == nil || *keys[0].ExpiresAt != want {
			t.Errorf("stored expiry: %+v, want %d", keys, want)
		}
		doc = owner.page("/settings/keys", http.StatusOK)
		row := testid(doc, "key-row")
		got := []string{testid(doc, "key-name").Text(), strings.TrimSpace(row.Find(`[data-testid="key-expires-at"]`).Text()),
			strings.TrimSpace(row.Find(`[data-testid="key-access"]`).Text()), strings.TrimSpace(row.Find(`[data-testid="key-status"]`).Text())}
		if diff := cmp.Diff([]string{"ci reader", "2026-03-13 00:00 UTC", "read-only", "active"}, got); diff != "" {
			t.Errorf("key row (-want +got):\n%s", diff)
		}
		if strings.Contains(readAll(t, owner.get("/settings/keys")), secret) {
			t.Error("the secret is shown again")
		}
		for _, bad := range []string{"2026-03-10", "2020-01-01", "not-a-date"} {
			res := owner.post("/settings/keys", url.Values{"csrf_token": {owner.token()}, "name": {"late"}, "expires": {bad}})
			if res.StatusCode != http.StatusUnprocessableEntity {
				t.Errorf("expiry %q: status %d, want 422", bad, res.StatusCode)
			}
			if testid(parse(t, res), "key-errors").Length() == 0 {
				t.Errorf("expiry %q: no error shown", bad)
			}
		}
		if keys, _ := a.store.ListAPIKeys(ctx, db.DefaultProjectID); len(keys) != 1 {
			t.Errorf("%d keys after refused forms, want 1", len(keys))
		}
	})
}

func TestServiceAccountsPage(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *app) {
		ctx := context.Background()
		owner := a.user(db.RoleAdmin)
		res := owner.post("/settings/service_accounts", url.Values{"csrf_token": {owner.token()}, "name": {"nightly import"}, "role": {"member"}})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("create: status %d", res.StatusCode)
		}
		secret := strings.TrimSpace(testid(parse(t, res), "new-sa-secret").Text())
		if _, ok, _ := a.store.CheckAPIKey(ctx, secret); !ok {
			t.Fatal("the service account's key does not work")
		}
		doc := owner.page("/settings/service_accounts", http.StatusOK)
		if got := texts(testid(doc, "sa-name")); !cmp.Equal(got, []string{"nightly import"}) {
			t.Errorf("service accounts: %v", got)
		}
		if testid(doc, "new-sa-secret").Length() != 0 {
			t.Error("the key is shown again")
		}
		sas, _ := a.store.ListServiceAccounts(ctx, db.DefaultProjectID)
		if len(sas) != 1 {
			t.Fatalf("%d service accounts", len(sas))
		}
		if res := owner.post("/settings/service_accounts/"+sas[0].ID+"/delete", url.Values{"csrf_token": {owner.token()}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("delete: status %d", res.StatusCode)
		}
		if _, ok, _ := a.store.CheckAPIKey(ctx, secret); ok {
			t.Error("the deleted service account's key still works")
		}
		if testid(owner.page("/settings/service_accounts", http.StatusOK), "sa-empty").Length() != 1 {
			t.Error("the deleted service account is still listed")
		}
	})
}

func TestMembersAndProjectsAdmin(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *app) {
		ctx := context.Background()
		admin := a.user(db.RoleAdmin)
		// Create, rename; the Default project cannot be archived.
		if res := admin.post("/settings/projects", url.Values{"csrf_token": {admin.token()}, "name": {"  Research  "}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("create: status %d", res.StatusCode)
		}
		if res := admin.post("/settings/projects", url.Values{"csrf_token": {admin.token()}, "name": {""}}); res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("create with no name: status %d", res.StatusCode)
		}
		ps, _ := a.store.ListProjects(ctx, true)
		if len(ps) != 2 || ps[1].Name != "Research" {
			t.Fatalf("projects: %+v", ps)
		}
		r := ps[1]
		if res := admin.post("/settings/projects/"+r.ID+"/rename", url.Values{"csrf_token": {admin.token()}, "name": {"R&D"}}); res.StatusCode != http.StatusSeeOther {
			t.Errorf("rename: status %d", res.StatusCode)
		}
		admin.post("/settings/projects/"+db.DefaultProjectID+"/archive", url.Values{"csrf_token": {admin.token()}})
		if p, _ := a.store.GetProject(ctx, db.DefaultProjectID); !p.Active() {
			t.Fatal("the Default project was archived")
		}
		doc := admin.page("/settings/projects", http.StatusOK)
		if got := testid(doc, "flash").Text(); !strings.Contains(got, "cannot be archived") {
			t.Errorf("flash = %q", got)
		}
		var names []string
		testid(doc, "project-row").Each(func(_ int, s *goquery.Selection) {
			v, _ := s.Find(`[data-testid="project-rename-name"]`).Attr("value")
			names = append(names, v)
		})
		if diff := cmp.Diff([]string{"Default project", "R&D"}, names); diff != "" {
			t.Errorf("projects page (-want +got):\n%s", diff)
		}

		// Users made on the Users page join the current project.
		admin.switchTo(r.ID)
		res := admin.post("/settings/users", url.Values{"csrf_token": {admin.token()}, "email": {"rita@example.com"}, "password": {password}, "role": {"editor"}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("add user: status %d", res.StatusCode)
		}
		users, _ := a.store.ListUsers(ctx)
		var rita db.User
		for _, u := range users {
			if u.Email == "rita@example.com" {
				rita = u
			}
		}
		if rita.Role == db.RoleAdmin {
			t.Error("rita became an instance admin")
		}
		ms, _ := a.store.ListUserProjects(ctx, rita.ID)
		if len(ms) != 1 || ms[0].Project.ID != r.ID || ms[0].Role != db.ProjectEditor {
			t.Errorf("rita's projects: %+v", ms)
		}

		// The members page of R&D: change her role, then remove her.
		doc = admin.page("/settings/members", http.StatusOK)
		if got := texts(testid(doc, "member-email")); len(got) != 1 || !strings.HasPrefix(got[0], "rita@example.com") {
			t.Errorf("R&D's members: %v", got)
		}
		if res := admin.post("/settings/members/"+rita.ID+"/role", url.Values{"csrf_token": {admin.token()}, "role": {"owner"}}); res.StatusCode != http.StatusSeeOther {
			t.Errorf("change role: status %d", res.StatusCode)
		}
		if m, _ := a.store.GetMember(ctx, r.ID, rita.ID); m.Role != db.ProjectOwner {
			t.Errorf("rita's role: %q", m.Role)
		}
		if res := admin.post("/settings/members/"+rita.ID+"/role", url.Values{"csrf_token": {admin.token()}, "role": {"admin"}}); res.StatusCode != http.StatusBadRequest {
			t.Errorf("an unknown role: status %d", res.StatusCode)
		}
		if res := admin.post("/settings/members/"+rita.ID+"/remove", url.Values{"csrf_token": {admin.token()}}); res.StatusCode != http.StatusSeeOther {
			t.Errorf("remove: status %d", res.StatusCode)
		}
		if _, err := a.store.GetMember(ctx, r.ID, rita.ID); err == nil {
			t.Error("rita is still a member")
		}
		// Changing the role of someone not in the project does not add them.
		if res := admin.post("/settings/members/"+rita.ID+"/role", url.Values{"csrf_token": {admin.token()}, "role": {"viewer"}}); res.StatusCode != http.StatusNotFound {
			t.Errorf("role of a non-member: status %d", res.StatusCode)
		}

		// Archiving R&D: its keys stop working.
		_, secret, err := a.store.CreateAPIKey(ctx, db.KeyOptions{ProjectID: r.ID, Name: "rd"})
		if err != nil {
			t.Fatal(err)
		}
		if res := admin.post("/settings/projects/"+r.ID+"/archive", url.Values{"csrf_token": {admin.token()}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("archive: status %d", res.StatusCode)
		}
		if _, ok, _ := a.store.CheckAPIKey(ctx, secret); ok {
			t.Error("an archived project's key still works")
		}
		doc = admin.page("/settings/projects", http.StatusOK)
		if got := texts(testid(doc, "project-status")); len(got) != 2 || !strings.HasPrefix(got[1], "archived") {
			t.Errorf("statuses: %v", got)
		}
	})
}

func TestUsagePage(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *app) {
		ctx := context.Background()
		c := a.user(db.RoleViewer)
		doc := c.page("/usage", http.StatusOK)
		if testid(doc, "usage-empty").Length() != 1 {
			t.Error("no usage yet, but the page does not say so")
		}
		for _, u := range []struct {
			model   string
			in, out int64
		}{{"gpt-4o", 100, 20}, {"gpt-4o", 50, 30}, {"gpt-4o-mini", 10, 5}} {
			if err := a.store.RecordUsage(ctx, db.DefaultProjectID, u.model, u.in, u.out); err != nil {
				t.Fatal(err)
			}
		}
		doc = c.page("/usage?days=7", http.StatusOK)
		type row struct{ Model, Requests, In, Out string }
		var rows []row
		testid(doc, "usage-row").Each(func(_ int, s *goquery.Selection) {
			rows = append(rows, row{strings.TrimSpace(s.Find(`td[data-label="Model"]`).Text()), s.Find(`[data-testid="usage-requests"]`).Text(),
				s.Find(`[data-testid="usage-input"]`).Text(), s.Find(`[data-testid="usage-output"]`).Text()})
		})
		if diff := cmp.Diff([]row{{"gpt-4o", "2", "150", "50"}, {"gpt-4o-mini", "1", "10", "5"}}, rows); diff != "" {
			t.Errorf("usage table (-want +got):\n%s", diff)
		}
		// The tokens chart: today's bar stacks both models; the taller
		// model's segment is as tall as its share.
		chart := testid(doc, "usage-chart-tokens")
		if got := chart.Find(`[data-testid="usage-total"]`).Text(); got != "215" {
			t.Errorf("tokens total %q, want 215", got)
		}
		bars := chart.Find(`[data-testid="usage-bar"]`)
		if bars.Length() != 2 {
			t.Fatalf("%d bars, want 2", bars.Length())
		}
		heights := map[string]string{}
		bars.Each(func(_ int, s *goquery.Selection) {
			m, _ := s.Attr("data-model")
			d, _ := s.Attr("data-day")
			h, _ := s.Attr("height")
			if d != "2026-03-10" {
				t.Errorf("a bar on %s, want today", d)
			}
			heights[m] = h
		})
		// 200 and 15 of 215 tokens over a chart 119 units tall.
		if diff := cmp.Diff(map[string]string{"gpt-4o": "110.7", "gpt-4o-mini": "8.3"}, heights); diff != "" {
			t.Errorf("bar heights (-want +got):\n%s", diff)
		}
		// Today is the last of seven days: the bar is at the right end.
		x, _ := bars.First().Attr("x")
		if x != "515.3" {
			t.Errorf("today's bar at x=%s, want 515.3, the seventh of seven slots", x)
		}
	})
}

// TestProjectRoutesOddIDs: ids in the project pages' paths that no object
// has (a NUL, which PostgreSQL's text cannot even hold, a very long one)
// are not found (or, with a NUL on PostgreSQL, a bad request), never a
// 500.
func TestProjectRoutesOddIDs(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *app) {
		admin := a.user(db.RoleAdmin)
		for _, id := range []string{"%00", "a%00b", strings.Repeat("x", 5000)} {
			for _, path := range []string{"/settings/keys/" + id + "/revoke", "/settings/service_accounts/" + id + "/delete",
				"/settings/members/" + id + "/role", "/settings/members/" + id + "/remove",
				"/settings/projects/" + id + "/rename", "/settings/projects/" + id + "/archive"} {
				res := admin.post(path, url.Values{"csrf_token": {admin.token()}, "role": {"viewer"}, "name": {"x"}})
				// PostgreSQL refuses to look up text with a NUL: 400, as
				// everywhere in the app (db.IsInvalidText).
				if res.StatusCode != http.StatusNotFound && !(res.StatusCode == http.StatusBadRequest && strings.Contains(id, "%00")) {
					t.Errorf("POST %s: status %d, want 404", clipPath(path), res.StatusCode)
				}
			}
		}
		res := admin.post("/settings/members", url.Values{"csrf_token": {admin.token()}, "email": {"a\x00b@example.com"}, "role": {"viewer"}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("adding an address with a NUL: status %d", res.StatusCode)
		}
		res = admin.post("/projects/switch", url.Values{"csrf_token": {admin.token()}, "project_id": {"a\x00b"}})
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("switching to an id with a NUL: status %d", res.StatusCode)
		}
	})
}

func clipPath(p string) string {
	if len(p) > 80 {
		return p[:80] + "…"
	}
	return p
}
