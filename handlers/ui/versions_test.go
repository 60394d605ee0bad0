package ui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/assistantd/assistantd/db"
)

// TestAssistantHistory: edits through the editor record versions as the
// signed-in user; the history page diffs any two versions (instructions by
// line, settings and tools by field); restore needs an editor and the CSRF
// token and records a new version.
func TestAssistantHistory(t *testing.T) {
	a := newApp(t, "")
	c := a.user(db.RoleEditor)
	ctx := testCtx()
	form := url.Values{"csrf_token": {c.token()}, "name": {"Helper"}, "model": {"gpt-4o"}, "temperature": {"0.5"},
		"instructions": {"Be brief.\nUse <b>tags</b>.\nSign off."}, "action": {"save"}}
	if res := c.post("/assistants/new", form); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: status %d", res.StatusCode)
	}
	all, _ := a.store.AllAssistants(ctx)
	id := all[0].ID
	form.Set("instructions", "Be brief.\nSign off warmly.")
	form.Set("temperature", "0.9")
	form.Set("code_interpreter", "on")
	if res := c.post("/assistants/"+id, form); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("edit: status %d", res.StatusCode)
	}
	versions, err := a.store.AllAssistantVersions(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != 2 {
		t.Fatalf("%d versions, want 2", len(versions))
	}
	for _, v := range versions {
		if v.CreatedBy.Type != "user" || v.CreatedBy.Name != "editor@example.com" {
			t.Errorf("v%d by %+v, want the editor", v.Version, v.CreatedBy)
		}
	}

	doc := c.page("/assistants/"+id+"/history", http.StatusOK)
	if n := testid(doc, "version-row").Length(); n != 2 {
		t.Fatalf("%d version rows", n)
	}
	var lines []string
	testid(doc, "instructions-diff").Find("span").Each(func(_ int, s *goquery.Selection) {
		kind, _ := s.Attr("data-kind")
		lines = append(lines, kind+":"+strings.TrimSpace(strings.TrimLeft(s.Text(), "−+ ")))
	})
	want := []string{"eq:Be brief.", "del:Use <b>tags</b>.", "del:Sign off.", "ins:Sign off warmly."}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("instructions diff = %q, want %q", lines, want)
	}
	if html, _ := testid(doc, "instructions-diff").Html(); strings.Contains(html, "<b>") {
		t.Errorf("instructions shown unescaped: %s", html)
	}
	fields := map[string]bool{}
	doc.Find(`[data-testid="field-change"]`).Each(func(_ int, s *goquery.Selection) {
		f, _ := s.Attr("data-field")
		fields[f] = true
	})
	if !fields["temperature"] || !fields["code_interpreter"] || fields["model"] || fields["name"] || len(fields) != 2 {
		t.Errorf("changed fields = %v, want temperature and code_interpreter", fields)
	}

	// The same version against itself: nothing differs.
	doc = c.page("/assistants/"+id+"/history?a=2&b=2", http.StatusOK)
	if testid(doc, "instructions-same").Length() != 1 || testid(doc, "settings-same").Length() != 1 || testid(doc, "tools-same").Length() != 1 {
		t.Error("v2 against v2 shows changes")
	}

	restore := "/assistants/" + id + "/versions/1/restore"
	if res := c.post(restore, url.Values{}); res.StatusCode != http.StatusForbidden {
		t.Errorf("restore without CSRF: status %d", res.StatusCode)
	}
	viewer := a.user(db.RoleViewer)
	if res := viewer.post(restore, url.Values{"csrf_token": {viewer.token()}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("restore by a viewer: status %d", res.StatusCode)
	}
	if res := c.post("/assistants/"+id+"/versions/9/restore", url.Values{"csrf_token": {c.token()}}); res.StatusCode != http.StatusNotFound {
		t.Errorf("restore of a missing version: status %d", res.StatusCode)
	}
	if res := c.post(restore, url.Values{"csrf_token": {c.token()}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("restore: status %d", res.StatusCode)
	}
	cur, _ := a.store.GetAssistant(ctx, id)
	if *cur.Instructions != "Be brief.\nUse <b>tags</b>.\nSign off." || *cur.Temperature != 0.5 || len(cur.Tools) != 0 {
		t.Errorf("after restore: %+v", cur)
	}
	versions, _ = a.store.AllAssistantVersions(ctx, id)
	if len(versions) != 3 || *versions[2].Assistant.Instructions != *cur.Instructions {
		t.Errorf("restore did not record version 3: %d versions", len(versions))
	}
	doc = c.page("/assistants/"+id+"/history", http.StatusOK)
	if got, _ := testid(doc, "current-version").Closest("tr").Attr("data-version"); got != "3" {
		t.Errorf("current version shown as %q", got)
	}
}
