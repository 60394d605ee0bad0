package ui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/assistantd/assistantd/db"
)

// The compare form: a side's bad override is refused beside its field
// and nothing is started; a viewer may look but not start or keep.
func TestCompareRefuses(t *testing.T) {
	a, _ := newLiveApp(t)
	c := a.user(db.RoleEditor)
	asst := overridesAssistant(t, a)
	res := c.post("/playground/compare", url.Values{"csrf_token": {c.token()}, "content": {"hi"},
		"a_assistant": {asst.ID}, "b_assistant": {asst.ID}, "b_temperature": {"5"}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("status %d", res.StatusCode)
	}
	doc := parse(t, res)
	if got := testid(doc, "compare-error-temperature-b").Text(); !strings.Contains(got, "2") {
		t.Errorf("side B's temperature error: %q", got)
	}
	if v := attr(t, testid(doc, "compare-temperature-b"), "value"); v != "5" {
		t.Errorf("the typed value was not kept: %q", v)
	}
	threads, _, err := a.store.BrowseThreads(testCtx(), db.ThreadFilter{Limit: 10})
	if err != nil || len(threads) != 0 {
		t.Errorf("a refused compare made %d threads (%v)", len(threads), err)
	}
	viewer := a.user(db.RoleViewer)
	viewer.page("/playground/compare", http.StatusOK)
	for _, path := range []string{"/playground/compare", "/playground/compare/keep"} {
		if res := viewer.post(path, url.Values{"csrf_token": {viewer.token()}, "a_assistant": {asst.ID}, "b_assistant": {asst.ID}, "content": {"x"}}); res.StatusCode != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d", path, res.StatusCode)
		}
	}
}

// Both forks copy the source thread's messages and tool resources; the
// source is left as it was.
func TestCompareForks(t *testing.T) {
	a, _ := newLiveApp(t)
	c := a.user(db.RoleEditor)
	asst := overridesAssistant(t, a)
	ctx := testCtx()
	src, _, err := a.store.CreateThread(ctx, db.Thread{ToolResources: &db.ToolResources{FileSearch: &db.FileSearchResources{VectorStoreIDs: []string{}}}},
		[]db.Message{{Role: "user", Status: "completed", Content: []db.ContentPart{textPart("first question")}}})
	if err != nil {
		t.Fatal(err)
	}
	res := c.post("/playground/compare", url.Values{"csrf_token": {c.token()}, "thread": {src.ID}, "content": {"next"},
		"a_assistant": {asst.ID}, "b_assistant": {asst.ID}, "b_model": {"other-model"}})
	loc, err := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusSeeOther || err != nil {
		t.Fatalf("status %d, Location %q", res.StatusCode, res.Header.Get("Location"))
	}
	for _, side := range []string{"a", "b"} {
		id := loc.Query().Get(side)
		msgs, err := a.store.ThreadTranscript(ctx, id, 10)
		if err != nil || len(msgs) != 2 || msgs[0].Content[0].Text.Value != "first question" || msgs[1].Content[0].Text.Value != "next" {
			t.Fatalf("fork %s: %+v %v", side, msgs, err)
		}
		th, err := a.store.GetThread(ctx, id)
		if err != nil || th.Metadata["compare_of"] != src.ID || th.ToolResources == nil || th.ToolResources.FileSearch == nil {
			t.Errorf("fork %s: %+v %v", side, th, err)
		}
		runs, err := a.store.ListRuns(ctx, id, db.ListParams{Limit: 10})
		want := map[string]string{"a": "gpt-4o-mini", "b": "other-model"}[side]
		if err != nil || len(runs.Data) != 1 || runs.Data[0].Model != want {
			t.Errorf("fork %s runs: %+v %v", side, runs.Data, err)
		}
	}
	if msgs, _ := a.store.ThreadTranscript(ctx, src.ID, 10); len(msgs) != 1 {
		t.Errorf("the source has %d messages", len(msgs))
	}
	doc := c.page(loc.String(), http.StatusOK)
	if n := doc.Find("[data-live-root]").Length(); n != 2 {
		t.Errorf("%d live columns", n)
	}
}
