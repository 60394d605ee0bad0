package ui_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/assistantd/assistantd/db"
)

// overridesAssistant stores an assistant with two function tools.
func overridesAssistant(t *testing.T, a *app) db.Assistant {
	t.Helper()
	name, instr, temp := "Weather helper", "Answer briefly.", 0.7
	tool := func(n string) db.Tool {
		return db.Tool{Type: "function", Function: &db.FunctionDef{Name: n, Parameters: []byte(`{"type":"object","properties":{}}`)}}
	}
	asst, err := a.store.CreateAssistant(testCtx(), db.Assistant{Name: &name, Model: "gpt-4o-mini",
		Instructions: &instr, Temperature: &temp, Tools: []db.Tool{tool("get_weather"), tool("get_time")}})
	if err != nil {
		t.Fatal(err)
	}
	return asst
}

func attr(t *testing.T, s *goquery.Selection, name string) string {
	t.Helper()
	if s.Length() != 1 {
		t.Fatalf("%d elements for %s, want 1", s.Length(), name)
	}
	v, _ := s.Attr(name)
	return v
}

func selected(doc *goquery.Document, id string) string {
	v, _ := testid(doc, id).Find("option[selected]").Attr("value")
	return v
}

func checkedTools(doc *goquery.Document) []string {
	var out []string
	doc.Find(`input[name="tool"][checked]`).Each(func(_ int, s *goquery.Selection) {
		v, _ := s.Attr("value")
		out = append(out, v)
	})
	return out
}

// The overrides an address carries fill the settings pane, what does not
// apply to the assistant is dropped with a note, and the picker and the
// New thread link carry them on.
func TestPlaygroundOverridesFromTheAddress(t *testing.T) {
	a, _ := newLiveApp(t)
	c := a.user(db.RoleEditor)
	asst := overridesAssistant(t, a)

	q := url.Values{"assistant": {asst.ID}, "model": {"gpt-4o"}, "instructions": {"Be terse & kind <b>"},
		"temperature": {"0.3"}, "top_p": {"0.9"}, "tool_choice": {"function:get_time"}, "response_format": {"json_object"},
		"tools_override": {"1"}, "tool": {"get_time", "no_such_tool"}}
	doc := c.page("/playground?"+q.Encode(), http.StatusOK)
	if v := attr(t, testid(doc, "ov-model"), "value"); v != "gpt-4o" {
		t.Errorf("model %q", v)
	}
	if v := testid(doc, "ov-instructions").Text(); v != "Be terse & kind <b>" {
		t.Errorf("instructions %q", v)
	}
	if v := attr(t, testid(doc, "ov-temperature"), "value"); v != "0.3" {
		t.Errorf("temperature %q", v)
	}
	if v := attr(t, testid(doc, "ov-temperature"), "type"); v != "number" {
		t.Errorf("temperature input type %q", v)
	}
	if v := attr(t, testid(doc, "ov-top-p"), "value"); v != "0.9" {
		t.Errorf("top_p %q", v)
	}
	if v := selected(doc, "ov-tool-choice"); v != "function:get_time" {
		t.Errorf("tool_choice %q", v)
	}
	if v := selected(doc, "ov-format"); v != "json_object" {
		t.Errorf("response_format %q", v)
	}
	if got := strings.Join(checkedTools(doc), ","); got != "get_time" {
		t.Errorf("tools checked %q, want get_time", got)
	}
	if n := testid(doc, "ov-notes").Text(); !strings.Contains(n, "no_such_tool") {
		t.Errorf("the dropped tool is not named: %q", n)
	}
	if n := doc.Find(`[data-testid^="ov-error-"]:not([hidden])`).Length(); n != 0 {
		t.Errorf("%d errors for good values: %q", n, doc.Find(`[data-testid^="ov-error-"]`).Text())
	}
	// Switching assistant sends the overrides along (the dropped tool gone).
	carried := url.Values{}
	doc.Find(`form[data-carry-overrides] input[data-carried]`).Each(func(_ int, s *goquery.Selection) {
		k, _ := s.Attr("name")
		v, _ := s.Attr("value")
		carried.Add(k, v)
	})
	want := url.Values{"model": {"gpt-4o"}, "instructions": {"Be terse & kind <b>"}, "temperature": {"0.3"}, "top_p": {"0.9"},
		"tool_choice": {"function:get_time"}, "response_format": {"json_object"}, "tools_override": {"1"}, "tool": {"get_time"}}
	if carried.Encode() != want.Encode() {
		t.Errorf("the picker carries %s, want %s", carried.Encode(), want.Encode())
	}
	href, err := url.Parse(attr(t, testid(doc, "new-thread"), "href"))
	if err != nil {
		t.Fatal(err)
	}
	if got := href.Query(); got.Get("temperature") != "0.3" || got.Get("assistant") != asst.ID || got.Has("thread") {
		t.Errorf("New thread links to %s", href)
	}

	// A tool choice naming a function this assistant lacks is not applied.
	doc = c.page("/playground?assistant="+asst.ID+"&tool_choice=function:gone", http.StatusOK)
	if v := selected(doc, "ov-tool-choice"); v != "" {
		t.Errorf("tool_choice %q selected, want the assistant's", v)
	}
	if n := testid(doc, "ov-notes").Text(); !strings.Contains(n, "gone") {
		t.Errorf("the dropped tool choice is not named: %q", n)
	}
}

// Bad values from an address are shown as given, each with its message;
// a run with them is refused in place; nothing answers 5xx.
func TestPlaygroundBadOverridesInTheAddress(t *testing.T) {
	a, _ := newLiveApp(t)
	c := a.user(db.RoleEditor)
	asst := overridesAssistant(t, a)

	doc := c.page("/playground?assistant="+asst.ID+"&temperature=abc&top_p=7&tool_choice=bogus&response_format=xml", http.StatusOK)
	if v := attr(t, testid(doc, "ov-temperature"), "value"); v != "abc" {
		t.Errorf("temperature %q, want abc kept", v)
	}
	if v := attr(t, testid(doc, "ov-temperature"), "type"); v != "text" {
		t.Errorf("temperature input type %q: a number input would blank abc", v)
	}
	for id, want := range map[string]string{"ov-error-temperature": "not a number", "ov-error-top_p": "maximum",
		"ov-error-tool_choice": "bogus", "ov-error-response_format": "xml"} {
		if got := testid(doc, id).Text(); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want it to mention %q", id, got, want)
		}
	}
	if v := selected(doc, "ov-tool-choice"); v != "bogus" {
		t.Errorf("tool_choice %q, want bogus kept", v)
	}
	if v := selected(doc, "ov-format"); v != "xml" {
		t.Errorf("response_format %q, want xml kept", v)
	}
	if v := attr(t, testid(doc, "ov-tool-choice"), "aria-invalid"); v != "true" {
		t.Errorf("tool_choice aria-invalid %q", v)
	}

	// Over-long values are left out, and the pane says so.
	long := strings.Repeat("x", 9000)
	doc = c.page("/playground?assistant="+asst.ID+"&instructions="+long+"&model="+long[:300], http.StatusOK)
	if v := testid(doc, "ov-instructions").Text(); v != "" {
		t.Errorf("%d bytes of instructions read from the address", len(v))
	}
	if n := testid(doc, "ov-notes").Text(); !strings.Contains(n, "instructions override is longer") || !strings.Contains(n, "model override is longer") {
		t.Errorf("notes %q", n)
	}

	many := url.Values{"assistant": {asst.ID}, "tools_override": {"1"}}
	for i := 0; i < 129; i++ {
		many.Add("tool", "get_time")
	}
	doc = c.page("/playground?"+many.Encode(), http.StatusOK)
	if on := len(checkedTools(doc)) != 2; on || !strings.Contains(testid(doc, "ov-notes").Text(), "more than 128 tools") {
		t.Errorf("129 tools in a link: override on %v, notes %q", on, testid(doc, "ov-notes").Text())
	}

	// NaN parses as a float and passes every range check: the pane and
	// the run refuse it all the same.
	doc = c.page("/playground?assistant="+asst.ID+"&top_p=NaN", http.StatusOK)
	if got := testid(doc, "ov-error-top_p").Text(); !strings.Contains(got, "not a number") {
		t.Errorf("top_p=NaN: %q", got)
	}
	for _, bad := range [][2]string{{"temperature", "abc"}, {"temperature", "NaN"}, {"top_p", "nan"}, {"tool_choice", "bogus"}} {
		res := c.post("/playground", url.Values{"csrf_token": {c.token()}, "content": {"hi"}, "action": {"run"},
			"assistant_id": {asst.ID}, bad[0]: {bad[1]}}, "X-Live", "1")
		var body struct {
			Message string            `json:"message"`
			Fields  map[string]string `json:"fields"`
		}
		err := json.NewDecoder(res.Body).Decode(&body)
		// The problem is given by field, for the pane to show beside it.
		if res.StatusCode != http.StatusUnprocessableEntity || err != nil || !strings.Contains(body.Fields[bad[0]], bad[1]) ||
			!strings.Contains(body.Message, strings.ReplaceAll(bad[0], "_", " ")) {
			t.Errorf("a run with %s=%s: status %d %+v %v, want 422 naming the field and the value", bad[0], bad[1], res.StatusCode, body, err)
		}
	}
}

// "Add and run" on a new thread goes to an address that carries the
// overrides; that page shows them, and the run used them.
func TestPlaygroundRunKeepsOverridesInTheAddress(t *testing.T) {
	a, _ := newLiveApp(t)
	c := a.user(db.RoleEditor)
	asst := overridesAssistant(t, a)
	form := url.Values{"csrf_token": {c.token()}, "content": {"hello"}, "action": {"run"}, "assistant_id": {asst.ID},
		"instructions": {"Reply in French."}, "temperature": {"0.25"}, "tool_choice": {"none"},
		"tools_override": {"on"}, "tool": {"get_weather"}}
	res := c.post("/playground", form, "X-Live", "1")
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", res.StatusCode)
	}
	loc, err := url.Parse(res.Header.Get("X-Location"))
	if err != nil || loc.Path != "/playground" {
		t.Fatalf("X-Location %q", res.Header.Get("X-Location"))
	}
	q := loc.Query()
	threadID := q.Get("thread")
	want := url.Values{"thread": {threadID}, "assistant": {asst.ID}, "instructions": {"Reply in French."},
		"temperature": {"0.25"}, "tool_choice": {"none"}, "tools_override": {"1"}, "tool": {"get_weather"}}
	if !strings.HasPrefix(threadID, "thread_") || q.Encode() != want.Encode() {
		t.Fatalf("X-Location carries %s, want %s", q.Encode(), want.Encode())
	}
	runs, err := a.store.ListRuns(testCtx(), threadID, db.ListParams{Limit: 10})
	if err != nil || len(runs.Data) != 1 {
		t.Fatalf("runs %v %v", runs, err)
	}
	if r := runs.Data[0]; r.Instructions != "Reply in French." || r.Temperature == nil || *r.Temperature != 0.25 || len(r.Tools) != 1 {
		t.Errorf("the run: instructions %q temperature %v tools %d", r.Instructions, r.Temperature, len(r.Tools))
	}
	doc := c.page(loc.String(), http.StatusOK)
	if v := attr(t, testid(doc, "ov-temperature"), "value"); v != "0.25" {
		t.Errorf("after the run the pane's temperature is %q", v)
	}
	if v := testid(doc, "ov-instructions").Text(); v != "Reply in French." {
		t.Errorf("after the run the pane's instructions are %q", v)
	}
	if got := strings.Join(checkedTools(doc), ","); got != "get_weather" {
		t.Errorf("tools %q", got)
	}

	// Instructions too long for an address stay out of it, marked; the
	// page it leads to says they are not included.
	form.Set("instructions", strings.Repeat("Be thorough. ", 200))
	form.Set("action", "add")
	form.Del("thread_id")
	res = c.post("/playground", form, "X-Live", "1")
	loc, _ = url.Parse(res.Header.Get("X-Location"))
	if q := loc.Query(); q.Has("instructions") || q.Get("instructions_omitted") != "1" || q.Get("temperature") != "0.25" {
		t.Fatalf("X-Location for long instructions: %s", loc)
	}
	doc = c.page(loc.String(), http.StatusOK)
	if n := testid(doc, "ov-instructions-note"); n.Length() != 1 || !strings.Contains(n.Text(), "too long") {
		t.Errorf("no note about the instructions left out: %q", n.Text())
	}
}

// The pane's tool checkboxes act without any "override" switch: a run
// sent with some unticked (tools_shown marks the pane's list) uses only
// the ticked ones; with all ticked it uses the assistant's own list and
// the address carries no tool override.
func TestPlaygroundToolCheckboxesAct(t *testing.T) {
	a, _ := newLiveApp(t)
	c := a.user(db.RoleEditor)
	asst := overridesAssistant(t, a)
	for _, tc := range []struct {
		ticked   []string
		want     int
		override bool
	}{{[]string{"get_time"}, 1, true}, {nil, 0, true}, {[]string{"get_time", "get_weather"}, 2, false}} {
		form := url.Values{"csrf_token": {c.token()}, "content": {"hello"}, "action": {"run"}, "assistant_id": {asst.ID},
			"tools_shown": {"1"}, "tool": tc.ticked}
		res := c.post("/playground", form, "X-Live", "1")
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("ticked %v: status %d", tc.ticked, res.StatusCode)
		}
		loc, _ := url.Parse(res.Header.Get("X-Location"))
		if got := loc.Query().Has("tools_override"); got != tc.override {
			t.Errorf("ticked %v: the address's tool override %v, want %v (%s)", tc.ticked, got, tc.override, loc)
		}
		runs, err := a.store.ListRuns(testCtx(), loc.Query().Get("thread"), db.ListParams{Limit: 10})
		if err != nil || len(runs.Data) != 1 {
			t.Fatalf("runs %v %v", runs, err)
		}
		if got := len(runs.Data[0].Tools); got != tc.want {
			t.Errorf("ticked %v: the run has %d tools, want %d", tc.ticked, got, tc.want)
		}
	}
}
