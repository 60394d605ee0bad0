package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
	"github.com/assistantd/assistantd/views"
)

// assistantStore is what the assistants pages need.
type assistantStore interface {
	AllAssistants(ctx context.Context) ([]db.Assistant, error)
	GetAssistant(ctx context.Context, id string) (db.Assistant, error)
	CreateAssistant(ctx context.Context, a db.Assistant) (db.Assistant, error)
	UpdateAssistant(ctx context.Context, id string, fn func(*db.Assistant) error) (db.Assistant, error)
	DeleteAssistant(ctx context.Context, id string) error
}

var assistantSorts = [][2]string{{"newest", "Newest first"}, {"oldest", "Oldest first"}, {"name", "Name A–Z"}, {"model", "Model"}}

// Assistants handles GET /assistants: search and sort.
func (u *UI) Assistants(c *echo.Context) error {
	all, err := u.store.AllAssistants(c.Request().Context())
	if err != nil {
		return respond.Internal(err)
	}
	v := views.AssistantsView{Query: strings.TrimSpace(c.QueryParam("q")), Sort: c.QueryParam("sort"), Sorts: assistantSorts, Total: len(all)}
	if v.Sort == "" {
		v.Sort = "newest"
	}
	q := strings.ToLower(v.Query)
	for _, a := range all {
		row := views.AssistantRow{ID: a.ID, Name: deref(a.Name), Description: deref(a.Description), Model: a.Model, CreatedAt: a.CreatedAt}
		if q != "" && !strings.Contains(strings.ToLower(row.ID+"\n"+row.Name+"\n"+row.Model+"\n"+row.Description), q) {
			continue
		}
		for _, t := range a.Tools {
			if t.Type == "function" && t.Function != nil {
				row.Tools = append(row.Tools, "ƒ "+t.Function.Name)
			} else {
				row.Tools = append(row.Tools, t.Type)
			}
		}
		v.Rows = append(v.Rows, row)
	}
	switch v.Sort {
	case "oldest":
		slices.Reverse(v.Rows)
	case "name":
		sort.SliceStable(v.Rows, func(i, j int) bool { return strings.ToLower(v.Rows[i].Name) < strings.ToLower(v.Rows[j].Name) })
	case "model":
		sort.SliceStable(v.Rows, func(i, j int) bool { return v.Rows[i].Model < v.Rows[j].Model })
	}
	return render(c, http.StatusOK, views.AssistantsPage(u.page(c, "Assistants", "assistants"), v))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// models returns the names of the models the upstreams serve, as
// /v1/models lists them, or none when there is no engine or they cannot
// say (the form's model is then a free-text field).
func (u *UI) models(ctx context.Context) []string {
	if u.cfg.Engine == nil {
		return nil
	}
	var names []string
	for _, m := range u.cfg.Engine.Models(ctx) {
		names = append(names, m.ID)
	}
	return names
}

// NewAssistant handles GET /assistants/new.
func (u *UI) NewAssistant(c *echo.Context) error {
	// The model is one the upstreams serve (the first they list), not a
	// fixed name they may not know; with no list it is left to type.
	f := views.AssistantForm{Action: "/assistants/new", ResponseType: "auto"}
	if models := u.models(c.Request().Context()); len(models) > 0 {
		f.Model = models[0]
	}
	return u.renderEditor(c, http.StatusOK, f)
}

// ShowAssistant handles GET /assistants/:assistant_id: the editor, or a
// read-only view for viewers.
func (u *UI) ShowAssistant(c *echo.Context) error {
	id := c.Param("assistant_id")
	a, err := u.store.GetAssistant(c.Request().Context(), id)
	if err != nil {
		return respond.StoreErr(err, "assistant", id)
	}
	f := formFromAssistant(a)
	f.ReadOnly = !canEdit(c)
	return u.renderEditor(c, http.StatusOK, f)
}

func (u *UI) renderEditor(c *echo.Context, status int, f views.AssistantForm) error {
	f.Models = u.models(c.Request().Context())
	files, err := u.store.ListFiles(c.Request().Context(), "assistants", db.ListParams{Limit: 100, Order: "desc"})
	if err != nil {
		return respond.Internal(err)
	}
	for _, fl := range files.Data {
		f.Files = append(f.Files, views.FileOption{ID: fl.ID, Name: fl.Filename, Bytes: fl.Bytes})
	}
	if vs := u.cfg.VectorStores; vs != nil {
		f.StoresOn = true
		stores, err := vs.ListVectorStores(c.Request().Context(), db.ListParams{Limit: 100, Order: "desc"})
		if err != nil {
			return respond.Internal(err)
		}
		for _, st := range stores.Data {
			f.Stores = append(f.Stores, views.StoreOption{ID: st.ID, Name: st.Name, Status: st.Status, Bytes: st.UsageBytes, Files: st.FileCounts.Total})
		}
	}
	f.Examples = exampleOptions()
	if u.cfg.CodeProblem != nil {
		f.CodeProblem = u.cfg.CodeProblem()
	}
	if err := u.attachWebhooks(c.Request().Context(), &f); err != nil {
		return respond.StoreErr(err, "assistant", f.ID)
	}
	title := "New assistant"
	if f.ID != "" {
		title = "Assistant " + f.Name
	}
	return render(c, status, views.AssistantPage(u.page(c, title, "assistants"), f))
}

// formFromAssistant fills the editor from a stored assistant.
func formFromAssistant(a db.Assistant) views.AssistantForm {
	f := views.AssistantForm{ID: a.ID, Action: "/assistants/" + a.ID, Name: deref(a.Name), Description: deref(a.Description),
		Model: a.Model, Instructions: deref(a.Instructions), ResponseType: "auto"}
	if a.Temperature != nil {
		f.Temperature = strconv.FormatFloat(*a.Temperature, 'f', -1, 64)
	}
	if a.TopP != nil {
		f.TopP = strconv.FormatFloat(*a.TopP, 'f', -1, 64)
	}
	var rf validate.ResponseFormatObject
	if json.Unmarshal(a.ResponseFormat, &rf) == nil && rf.Type != "" {
		f.ResponseType = rf.Type
		if js := rf.JSONSchema; js != nil {
			f.SchemaName, f.SchemaDescription, f.SchemaStrict = js.Name, js.Description, js.Strict != nil && *js.Strict
			if len(js.Schema) > 0 {
				f.Schema = prettyJSON(string(js.Schema))
			}
		}
	}
	setTools(&f, a.Tools)
	if tr := a.ToolResources; tr != nil {
		if tr.CodeInterpreter != nil {
			f.CodeFileIDs = strings.Join(tr.CodeInterpreter.FileIDs, " ")
		}
		if tr.FileSearch != nil {
			f.VectorStoreIDs = strings.Join(tr.FileSearch.VectorStoreIDs, " ")
		}
	}
	keys := make([]string, 0, len(a.Metadata))
	for k := range a.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var meta []string
	for _, k := range keys {
		meta = append(meta, k+"="+a.Metadata[k])
	}
	f.Metadata = strings.Join(meta, "\n")
	return f
}

// setTools replaces the editor's tools with tools.
func setTools(f *views.AssistantForm, tools []db.Tool) {
	f.CodeInterpreter, f.FileSearch, f.Functions = false, false, nil
	for _, t := range tools {
		switch t.Type {
		case "code_interpreter":
			f.CodeInterpreter = true
		case "file_search":
			f.FileSearch = true
		case "function":
			if t.Function == nil {
				continue
			}
			fn := views.FunctionForm{Index: len(f.Functions), Name: t.Function.Name, Description: t.Function.Description,
				Strict: t.Function.Strict != nil && *t.Function.Strict}
			if len(t.Function.Parameters) > 0 {
				fn.Parameters = prettyJSON(string(t.Function.Parameters))
			}
			f.Functions = append(f.Functions, fn)
		}
	}
}

// formFromRequest reads the editor's fields as posted.
func formFromRequest(c *echo.Context) views.AssistantForm {
	v := func(name string) string { return c.FormValue(name) }
	// Browsers post a textarea's line breaks as CRLF: kept as LF, so that
	// saving untouched instructions is no change (nor a new version).
	f := views.AssistantForm{Name: v("name"), Description: v("description"), Model: strings.TrimSpace(v("model")),
		Instructions: strings.ReplaceAll(v("instructions"), "\r\n", "\n"), Temperature: strings.TrimSpace(v("temperature")), TopP: strings.TrimSpace(v("top_p")),
		ResponseType: v("response_type"), SchemaName: strings.TrimSpace(v("schema_name")), SchemaDescription: v("schema_description"), Schema: v("schema"), SchemaStrict: v("schema_strict") == "on",
		CodeInterpreter: v("code_interpreter") == "on", FileSearch: v("file_search") == "on",
		CodeFileIDs: strings.Join(validate.Dedupe(append(c.Request().Form["code_file"], splitIDs(v("code_file_ids"))...)), " "), VectorStoreIDs: v("vector_store_ids"), Metadata: v("metadata"), ToolsJSON: v("tools_json")}
	n, _ := strconv.Atoi(v("fn_count"))
	for i := 0; i < min(n, validate.MaxAssistantTools); i++ {
		fn := views.FunctionForm{Index: len(f.Functions), Name: v(fnKey(i, "name")), Description: v(fnKey(i, "description")),
			Parameters: v(fnKey(i, "parameters")), Strict: v(fnKey(i, "strict")) == "on"}
		f.Functions = append(f.Functions, fn)
	}
	return f
}

func fnKey(i int, field string) string { return "fn-" + strconv.Itoa(i) + "-" + field }

var actionIndex = regexp.MustCompile(`^(example|format|remove)-(\d+)$`)

// editorAction performs an editor button other than Save on f, reporting
// whether there was one. These re-render the form without storing
// anything; with htmx only the functions section is swapped in.
func editorAction(c *echo.Context, f *views.AssistantForm) bool {
	action := c.FormValue("action")
	if action == "add-function" {
		// Non-strict, as OpenAI's editor made new functions: strict asks
		// every property to be required, which a first draft rarely is.
		f.Functions = append(f.Functions, views.FunctionForm{Index: len(f.Functions)})
		return true
	}
	if action == "format-schema" {
		f.Schema = prettyJSON(f.Schema)
		return true
	}
	if action == "import" {
		tools, err := parseToolsJSON(f.ToolsJSON)
		if err != nil {
			f.Errors = map[string]string{"tools_json": err.Error()}
			return true
		}
		setTools(f, tools)
		f.ToolsJSON = ""
		checkFunctions(f)
		return true
	}
	m := actionIndex.FindStringSubmatch(action)
	if m == nil {
		return false
	}
	i, _ := strconv.Atoi(m[2])
	if i < 0 || i >= len(f.Functions) {
		return true
	}
	switch m[1] {
	case "remove":
		f.Functions = slices.Delete(f.Functions, i, i+1)
		for j := range f.Functions {
			f.Functions[j].Index = j
		}
	case "format":
		f.Functions[i].Parameters = prettyJSON(f.Functions[i].Parameters)
		checkFunctions(f)
	case "example":
		key := c.FormValue(fnKey(i, "example"))
		for _, ex := range functionExamples {
			if ex.key == key {
				fn := &f.Functions[i]
				fn.Name, fn.Description, fn.Strict = ex.fn.Name, ex.fn.Description, true
				fn.Parameters = prettyJSON(string(ex.fn.Parameters))
				checkFunctions(f)
			}
		}
	}
	return true
}

// parseToolsJSON reads an imported tool list: a JSON array of tools, or an
// object with a "tools" array (an exported assistant), checked as the API
// checks them.
func parseToolsJSON(raw string) ([]db.Tool, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, errors.New("paste a JSON array of tools first")
	}
	var tools []db.Tool
	if strings.HasPrefix(raw, "{") {
		var wrapper struct {
			Tools []db.Tool `json:"tools"`
		}
		if err := json.Unmarshal([]byte(raw), &wrapper); err != nil {
			return nil, fmt.Errorf("not valid tools JSON: %v", err)
		}
		tools = wrapper.Tools
	} else if err := json.Unmarshal([]byte(raw), &tools); err != nil {
		return nil, fmt.Errorf("not valid tools JSON: %v", err)
	}
	if problems, ok := validate.List(validate.Tools(validate.P("tools"), tools, validate.MaxAssistantTools)); ok {
		return nil, problems[0]
	}
	return tools, nil
}

// CheckFunction handles POST /assistants/functions/check?index=N: the
// live validation of one function while it is typed.
func (u *UI) CheckFunction(c *echo.Context) error {
	f := formFromRequest(c)
	i, err := strconv.Atoi(c.QueryParam("index"))
	if err != nil || i < 0 || i >= len(f.Functions) {
		return &respond.Error{Status: http.StatusBadRequest, Message: "No such function in the form."}
	}
	checkFunctions(&f)
	fb := f.Functions[i].Feedback
	return render(c, http.StatusOK, views.FunctionCheck(fb))
}

// CheckSchema handles POST /assistants/schema/check: the live validation
// of the response format's JSON schema.
func (u *UI) CheckSchema(c *echo.Context) error {
	f := formFromRequest(c)
	f.ResponseType = "json_schema"
	_, errs := formResponseFormat(&f)
	return render(c, http.StatusOK, views.SchemaFeedback(errs, strings.TrimSpace(f.Schema) != ""))
}

// CreateAssistant handles POST /assistants/new.
func (u *UI) CreateAssistant(c *echo.Context) error {
	f := formFromRequest(c)
	f.Action = "/assistants/new"
	if editorAction(c, &f) {
		return u.renderEditor(c, http.StatusOK, f)
	}
	var a db.Assistant
	if !u.applyForm(c, &f, &a) {
		return u.renderEditor(c, http.StatusUnprocessableEntity, f)
	}
	a, err := u.store.CreateAssistant(c.Request().Context(), a)
	if err != nil {
		return respond.Internal(err)
	}
	return u.flash(c, "/assistants/"+a.ID, "Assistant created.", false)
}

// UpdateAssistant handles POST /assistants/:assistant_id.
func (u *UI) UpdateAssistant(c *echo.Context) error {
	id := c.Param("assistant_id")
	if _, err := u.store.GetAssistant(c.Request().Context(), id); err != nil {
		return respond.StoreErr(err, "assistant", id)
	}
	f := formFromRequest(c)
	f.ID, f.Action = id, "/assistants/"+id
	if editorAction(c, &f) {
		return u.renderEditor(c, http.StatusOK, f)
	}
	var next db.Assistant
	if !u.applyForm(c, &f, &next) {
		return u.renderEditor(c, http.StatusUnprocessableEntity, f)
	}
	_, err := u.store.UpdateAssistant(c.Request().Context(), id, func(a *db.Assistant) error {
		id, created := a.ID, a.CreatedAt
		effort := a.ReasoningEffort
		// The form has no fields for file_search's options: keep them.
		var fsOptions *db.FileSearchTool
		for _, t := range a.Tools {
			if t.Type == "file_search" {
				fsOptions = t.FileSearch
			}
		}
		*a = next
		a.ID, a.CreatedAt, a.Object, a.ReasoningEffort = id, created, "assistant", effort
		for i := range a.Tools {
			if a.Tools[i].Type == "file_search" {
				a.Tools[i].FileSearch = fsOptions
			}
		}
		return nil
	})
	if err != nil {
		return respond.StoreErr(err, "assistant", id)
	}
	return u.flash(c, "/assistants/"+id, "Changes saved.", false)
}

// applyForm reads the whole form into a request and validates it onto a
// with validate.Assistant, the check POST /v1/assistants runs, recording
// each problem beside its field.
func (u *UI) applyForm(c *echo.Context, f *views.AssistantForm, a *db.Assistant) bool {
	errs := map[string]string{}
	r := validate.AssistantRequest{Model: validate.Some(f.Model), Name: optString(f.Name),
		Description: optString(f.Description), Instructions: optString(f.Instructions)}
	num := func(field, s string, o *validate.Opt[float64]) {
		if s == "" {
			*o = validate.Null[float64]()
			return
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			// ParseFloat accepts "NaN" and "Inf", which no range check
			// catches (NaN compares false) and JSON cannot hold.
			errs[field] = "Enter a number."
			return
		}
		*o = validate.Some(v)
	}
	num("temperature", f.Temperature, &r.Temperature)
	num("top_p", f.TopP, &r.TopP)
	if rf, problems := formResponseFormat(f); len(problems) > 0 {
		errs["response_format"] = strings.Join(problems, " ")
	} else {
		r.ResponseFormat = validate.Some(rf)
	}
	var tools []db.Tool
	if f.CodeInterpreter {
		tools = append(tools, db.Tool{Type: "code_interpreter"})
	}
	if f.FileSearch {
		tools = append(tools, db.Tool{Type: "file_search"})
	}
	offset := len(tools)
	r.Tools = validate.Some(append(tools, formFunctions(f, offset)...))
	r.ToolResources = validate.Some(validate.NewToolResources(splitIDs(f.CodeFileIDs), splitIDs(f.VectorStoreIDs)))
	if meta, err := parseMetadata(f.Metadata); err != nil {
		errs["metadata"] = err.Error()
	} else {
		r.Metadata = validate.Some(meta)
	}

	for field, text := range map[string]string{"name": f.Name, "description": f.Description, "instructions": f.Instructions, "model": f.Model} {
		if hasNul(text) {
			errs[field] = nulRefusal
		}
	}
	if len(errs) > 0 {
		f.Errors = errs
		return false
	}
	err := validate.Assistant(c.Request().Context(), u.store, r, a)
	problems, ok := validate.List(err)
	if err != nil && !ok {
		errs[""] = "Could not save the assistant."
		u.cfg.Log.Error("validate assistant form", "error", err)
	}
	fieldErrors(errs, functionFeedback(f, offset, problems))
	for _, fn := range f.Functions {
		if !fn.Feedback.OK() {
			errs["tools"] = "Fix the functions marked below."
		}
	}
	f.Errors = errs
	return len(errs) == 0
}

func optString(s string) validate.Opt[string] {
	if strings.TrimSpace(s) == "" {
		return validate.Null[string]()
	}
	return validate.Some(s)
}

func splitIDs(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' })
}

// parseMetadata reads "key=value" lines.
func parseMetadata(s string) (db.Metadata, error) {
	m := db.Metadata{}
	for n, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return m, fmt.Errorf("line %d: write key=value", n+1)
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m, nil
}

// DuplicateAssistant handles POST /assistants/:assistant_id/duplicate.
func (u *UI) DuplicateAssistant(c *echo.Context) error {
	id := c.Param("assistant_id")
	a, err := u.store.GetAssistant(c.Request().Context(), id)
	if err != nil {
		return respond.StoreErr(err, "assistant", id)
	}
	name := "Copy of " + deref(a.Name)
	if a.Name == nil {
		name = "Copy of " + a.ID
	}
	if len([]rune(name)) > validate.MaxName {
		name = string([]rune(name)[:validate.MaxName])
	}
	a.Name = &name
	cp, err := u.store.CreateAssistant(c.Request().Context(), a)
	if err != nil {
		return respond.Internal(err)
	}
	return u.flash(c, "/assistants/"+cp.ID, "Duplicated; you are editing the copy.", false)
}

// DeleteAssistant handles POST /assistants/:assistant_id/delete.
func (u *UI) DeleteAssistant(c *echo.Context) error {
	id := c.Param("assistant_id")
	if err := u.store.DeleteAssistant(c.Request().Context(), id); err != nil {
		return respond.StoreErr(err, "assistant", id)
	}
	return u.flash(c, "/assistants", "Assistant deleted.", false)
}

// ExportTools handles GET /assistants/:assistant_id/tools.json.
func (u *UI) ExportTools(c *echo.Context) error {
	id := c.Param("assistant_id")
	a, err := u.store.GetAssistant(c.Request().Context(), id)
	if err != nil {
		return respond.StoreErr(err, "assistant", id)
	}
	b, err := json.MarshalIndent(a.Tools, "", "  ")
	if err != nil {
		return respond.Internal(err)
	}
	c.Response().Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": id + "-tools.json"}))
	return c.Blob(http.StatusOK, "application/json", append(b, '\n'))
}
