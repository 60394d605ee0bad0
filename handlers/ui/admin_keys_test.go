package ui_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/api"
	"github.com/assistantd/assistantd/handlers/ui"
	"github.com/assistantd/assistantd/telemetry"
	"github.com/assistantd/assistantd/web"
)

// TestAdminKeysPage: an instance admin makes an admin key, shown once,
// which then opens the Admin API; revoked, it does not. Editors and
// viewers can neither see nor make admin keys.
func TestAdminKeysPage(t *testing.T) {
	var store *db.Store
	h := telemetry.NewHistory(telemetry.NewMetrics(), time.Minute) // for the System page, which links the admin keys
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h.Start(ctx)
	a := newAppWith(t, func(cfg *ui.Config, s *db.Store) { store, cfg.History = s, h }, func(w *web.Config) {
		w.Organization = api.NewOrganization(store, nil)
		w.CheckAdminKey = store.CheckAdminKey
	})
	orgList := func(key string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", a.srv.URL+"/v1/organization/projects", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}

	admin := a.user(db.RoleAdmin)
	if href, _ := testid(admin.page("/settings/system", http.StatusOK), "admin-keys-link").Attr("href"); href != "/settings/admin-keys" {
		t.Fatalf("the System page links admins to %q", href)
	}
	doc := admin.page("/settings/admin-keys", http.StatusOK)
	if testid(doc, "admin-key-row").Length() != 0 || testid(doc, "admin-key-form").Length() != 1 {
		t.Fatal("a fresh admin keys page should list none and offer the form")
	}
	res := admin.post("/settings/admin-keys", url.Values{"csrf_token": {admin.token()}, "name": {"<b>provisioning</b>"}})
	if res.StatusCode != http.StatusOK || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d, Cache-Control %q", res.StatusCode, res.Header.Get("Cache-Control"))
	}
	doc = parse(t, res)
	secret := strings.TrimSpace(testid(doc, "new-admin-key-secret").Text())
	if !strings.HasPrefix(secret, "sk-admin-") {
		t.Fatalf("new admin key %q", secret)
	}
	if html, _ := doc.Html(); strings.Contains(html, "<b>provisioning</b>") {
		t.Fatal("the key's name is not escaped")
	}
	if got := orgList(secret); got != http.StatusOK {
		t.Fatalf("the new admin key on the Admin API: %d", got)
	}
	doc = admin.page("/settings/admin-keys", http.StatusOK)
	if testid(doc, "admin-key-row").Length() != 1 || testid(doc, "new-admin-key-secret").Length() != 0 || strings.Contains(doc.Text(), secret) {
		t.Fatal("the listed key should be shown by its hint only, never again in full")
	}

	keys, err := store.ListAdminKeys(context.Background())
	if err != nil || len(keys) != 1 {
		t.Fatalf("stored admin keys: %+v %v", keys, err)
	}
	res = admin.post("/settings/admin-keys/"+keys[0].ID+"/revoke", url.Values{"csrf_token": {admin.token()}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", res.StatusCode)
	}
	if got := orgList(secret); got != http.StatusUnauthorized {
		t.Fatalf("a revoked admin key on the Admin API: %d, want 401", got)
	}

	for _, role := range []string{db.RoleEditor, db.RoleViewer} {
		c := a.user(role)
		if res := c.get("/settings/admin-keys"); res.StatusCode != http.StatusForbidden {
			t.Errorf("%s GET /settings/admin-keys: %d, want 403", role, res.StatusCode)
		}
		if res := c.post("/settings/admin-keys", url.Values{"csrf_token": {c.token()}, "name": {"x"}}); res.StatusCode != http.StatusForbidden {
			t.Errorf("%s POST /settings/admin-keys: %d, want 403", role, res.StatusCode)
		}
	}
	if keys, _ := store.ListAdminKeys(context.Background()); len(keys) != 1 {
		t.Fatalf("%d admin keys after refused requests, want 1", len(keys))
	}
}
