package ui

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"
	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/views"
)

// versionStore is what the history page needs.
type versionStore interface {
	AllAssistantVersions(ctx context.Context, id string) ([]db.AssistantVersion, error)
	RestoreAssistantVersion(ctx context.Context, id string, n int) (db.Assistant, error)
}

// AssistantHistory handles GET /assistants/:assistant_id/history?a=&b=:
// the versions, newest first, and the diff of version a against b (by
// default the one before the current against the current).
func (u *UI) AssistantHistory(c *echo.Context) error {
	id := c.Param("assistant_id")
	ctx := c.Request().Context()
	a, err := u.store.GetAssistant(ctx, id)
	if err != nil {
		return respond.StoreErr(err, "assistant", id)
	}
	all, err := u.store.AllAssistantVersions(ctx, id)
	if err != nil {
		return respond.Internal(err)
	}
	v := views.HistoryView{ID: id, Name: deref(a.Name)}
	byNumber := map[int]db.AssistantVersion{}
	for i := len(all) - 1; i >= 0; i-- {
		ver := all[i]
		byNumber[ver.Version] = ver
		v.Versions = append(v.Versions, views.VersionRow{Number: ver.Version, CreatedAt: ver.CreatedAt,
			Who: actorLabel(ver.CreatedBy), Current: i == len(all)-1})
	}
	if n := len(all); n > 0 {
		v.A, v.B = all[max(n-2, 0)].Version, all[n-1].Version
	}
	pick := func(param string, dst *int) {
		if n, err := strconv.Atoi(c.QueryParam(param)); err == nil {
			if _, ok := byNumber[n]; ok {
				*dst = n
			}
		}
	}
	pick("a", &v.A)
	pick("b", &v.B)
	if v.A != 0 && v.B != 0 {
		diffVersions(&v, byNumber[v.A].Assistant, byNumber[v.B].Assistant)
	}
	return render(c, http.StatusOK, views.AssistantHistoryPage(u.page(c, "History of "+orID(a), "assistants"), v))
}

// RestoreAssistantVersion handles POST
// /assistants/:assistant_id/versions/:version/restore: the version's
// configuration becomes the assistant's, as a new version.
func (u *UI) RestoreAssistantVersion(c *echo.Context) error {
	id := c.Param("assistant_id")
	n, err := strconv.Atoi(c.Param("version"))
	if err != nil || n < 1 {
		return &respond.Error{Status: http.StatusNotFound, Type: "invalid_request_error", Message: "No such version."}
	}
	if _, err := u.store.RestoreAssistantVersion(c.Request().Context(), id, n); err != nil {
		return respond.StoreErr(err, "assistant version", c.Param("version"))
	}
	return u.flash(c, "/assistants/"+id+"/history", "Version "+strconv.Itoa(n)+" restored as a new version.", false)
}

func orID(a db.Assistant) string {
	if a.Name != nil && *a.Name != "" {
		return *a.Name
	}
	return a.ID
}

// actorLabel says who made a version, for people.
func actorLabel(a db.Actor) string {
	switch a.Type {
	case "user":
		return a.Name
	case "api_key":
		if a.ID == "" {
			return "API (" + a.Name + ")"
		}
		return "API key “" + a.Name + "” (" + a.ID + ")"
	}
	return "assistantd"
}

// diffVersions fills v's diff of assistant a against b: instructions line
// by line, settings and tools field by field.
func diffVersions(v *views.HistoryView, a, b db.Assistant) {
	oldText, newText := deref(a.Instructions), deref(b.Instructions)
	if oldText != newText {
		v.Instructions = lineDiff(oldText, newText)
	}
	setting := func(field string, old, new any) {
		o, n := showValue(old), showValue(new)
		if o != n {
			v.Settings = append(v.Settings, views.FieldChange{Field: field, Old: o, New: n})
		}
	}
	setting("name", a.Name, b.Name)
	setting("description", a.Description, b.Description)
	setting("model", a.Model, b.Model)
	setting("temperature", a.Temperature, b.Temperature)
	setting("top_p", a.TopP, b.TopP)
	setting("response_format", a.ResponseFormat, b.ResponseFormat)
	setting("reasoning_effort", a.ReasoningEffort, b.ReasoningEffort)
	setting("metadata", a.Metadata, b.Metadata)
	var oldFiles, newFiles, oldStores, newStores []string
	if r := a.ToolResources; r != nil && r.CodeInterpreter != nil {
		oldFiles = r.CodeInterpreter.FileIDs
	}
	if r := b.ToolResources; r != nil && r.CodeInterpreter != nil {
		newFiles = r.CodeInterpreter.FileIDs
	}
	if r := a.ToolResources; r != nil && r.FileSearch != nil {
		oldStores = r.FileSearch.VectorStoreIDs
	}
	if r := b.ToolResources; r != nil && r.FileSearch != nil {
		newStores = r.FileSearch.VectorStoreIDs
	}
	setting("tool_resources.code_interpreter.file_ids", oldFiles, newFiles)
	setting("tool_resources.file_search.vector_store_ids", oldStores, newStores)

	// Tools are matched by what they are (a function by its name), so a
	// reordering is no change and a changed schema shows as one row.
	key := func(t db.Tool) string {
		if t.Type == "function" && t.Function != nil {
			return "function " + t.Function.Name
		}
		return t.Type
	}
	oldTools, order := map[string]db.Tool{}, []string{}
	for _, t := range a.Tools {
		oldTools[key(t)] = t
		order = append(order, key(t))
	}
	newTools := map[string]db.Tool{}
	for _, t := range b.Tools {
		newTools[key(t)] = t
		if _, ok := oldTools[key(t)]; !ok {
			order = append(order, key(t))
		}
	}
	for _, k := range order {
		var o, n string
		if t, ok := oldTools[k]; ok {
			o = showValue(t)
		}
		if t, ok := newTools[k]; ok {
			n = showValue(t)
		}
		if o != n {
			v.Tools = append(v.Tools, views.FieldChange{Field: k, Old: o, New: n})
		}
	}
}

// showValue renders a setting for the diff: strings as they are, other
// values as indented JSON; "" for none.
func showValue(x any) string {
	switch x := x.(type) {
	case string:
		return x
	case *string:
		return deref(x)
	case *float64:
		if x == nil {
			return ""
		}
		return strconv.FormatFloat(*x, 'g', -1, 64)
	case []string:
		return strings.Join(x, ", ")
	case db.Metadata:
		if len(x) == 0 {
			return ""
		}
	case json.RawMessage:
		if len(x) == 0 {
			return ""
		}
	}
	b, err := json.MarshalIndent(x, "", "  ")
	if err != nil || string(b) == "null" {
		return ""
	}
	return string(b)
}

// lineDiff is the line diff of old against new, every line shown.
func lineDiff(old, new string) []views.DiffLine {
	if !strings.HasSuffix(old, "\n") {
		old += "\n"
	}
	if !strings.HasSuffix(new, "\n") {
		new += "\n"
	}
	u, err := udiff.ToUnifiedDiff("a", "b", old, udiff.Lines(old, new), 1<<30)
	if err != nil { // only for edits that do not fit the text, which Lines never makes
		return []views.DiffLine{{Kind: "del", Text: old}, {Kind: "ins", Text: new}}
	}
	var out []views.DiffLine
	for _, h := range u.Hunks {
		for _, l := range h.Lines {
			kind := "eq"
			switch l.Kind {
			case udiff.Delete:
				kind = "del"
			case udiff.Insert:
				kind = "ins"
			}
			out = append(out, views.DiffLine{Kind: kind, Text: strings.TrimSuffix(l.Content, "\n")})
		}
	}
	return out
}
