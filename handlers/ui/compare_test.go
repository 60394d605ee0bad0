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
	threads, _, err := a.store.BrowseThreads(t.Context(), db.ThreadFilter{Limit: 10})
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
