package handlers

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
		return Internal(err)
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

// models returns the upstream's model names, or none when it cannot say.
func (u *UI) models(ctx context.Context) []string {
	if u.cfg.Models == nil {
		return nil
	}
	m, err := u.cfg.Models(ctx)
	if err != nil {
		u.cfg.Log.Debug("list upstream models", "error", err)
		return nil
	}
	return m
}

// NewAssistant handles GET /assistants/new.
func (u *UI) NewAssistant(c *echo.Context) error {
	f := views.AssistantForm{Action: "/assistants/new", ResponseType: "auto", Model: "gpt-4o-mini"}
	return u.renderEditor(c, http.StatusOK, f)
}

// ShowAssistant handles GET /assistants/:assistant_id: the editor, or a
// read-only view for viewers.
func (u *UI) ShowAssistant(c *echo.Context) error {
	id := c.Param("assistant_id")
	a, err := u.store.GetAssistant(c.Request().Context(), id)
	if err != nil {
		return storeErr(err, "assistant", id)
	}
	f := formFromAssistant(a)
	usr := currentUser(c)
	f.ReadOnly = usr == nil || roleRank[usr.Role] < roleRank[db.RoleEditor]
	return u.renderEditor(c, http.StatusOK, f)
}

func (u *UI) renderEditor(c *echo.Context, status int, f views.AssistantForm) error {
	f.Models = u.models(c.Request().Context())
	files, err := u.store.ListFiles(c.Request().Context(), "assistants", db.ListParams{Limit: 100, Order: "desc"})
	if err != nil {
		return Internal(err)
	}
	for _, fl := range files.Data {
		f.Files = append(f.Files, views.FileOption{ID: fl.ID, Name: fl.Filename})
	}
	f.Examples = exampleOptions()
	if err := u.attachWebhooks(c.Request().Context(), &f); err != nil {
		return storeErr(err, "assistant", f.ID)
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
	var rf struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Schema      json.RawMessage `json:"schema"`
			Strict      *bool           `json:"strict"`
		} `json:"json_schema"`
	}
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
	f := views.AssistantForm{Name: v("name"), Description: v("description"), Model: strings.TrimSpace(v("model")),
		Instructions: v("instructions"), Temperature: strings.TrimSpace(v("temperature")), TopP: strings.TrimSpace(v("top_p")),
		ResponseType: v("response_type"), SchemaName: strings.TrimSpace(v("schema_name")), SchemaDescription: v("schema_description"), Schema: v("schema"), SchemaStrict: v("schema_strict") == "on",
		CodeInterpreter: v("code_interpreter") == "on", FileSearch: v("file_search") == "on",
		CodeFileIDs: strings.Join(dedupe(append(c.Request().Form["code_file"], splitIDs(v("code_file_ids"))...)), " "), VectorStoreIDs: v("vector_store_ids"), Metadata: v("metadata"), ToolsJSON: v("tools_json")}
	n, _ := strconv.Atoi(v("fn_count"))
	for i := 0; i < min(n, maxAssistantTools); i++ {
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
		f.Functions = append(f.Functions, views.FunctionForm{Index: len(f.Functions), Strict: true})
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
		for i := range f.Functions {
			f.Functions[i].Feedback, _ = checkFunctionForm(f.Functions[i])
		}
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
		f.Functions[i].Feedback, _ = checkFunctionForm(f.Functions[i])
	case "example":
		key := c.FormValue(fnKey(i, "example"))
		for _, ex := range functionExamples {
			if ex.key == key {
				fn := &f.Functions[i]
				fn.Name, fn.Description, fn.Strict = ex.fn.Name, ex.fn.Description, true
				fn.Parameters = prettyJSON(string(ex.fn.Parameters))
				fn.Feedback, _ = checkFunctionForm(*fn)
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
	if err := checkTools("tools", tools, maxAssistantTools); err != nil {
		var ae *Error
		if errors.As(err, &ae) {
			return nil, errors.New(ae.Message)
		}
		return nil, err
	}
	return tools, nil
}

// CheckFunction handles POST /assistants/functions/check?index=N: the
// live validation of one function while it is typed.
func (u *UI) CheckFunction(c *echo.Context) error {
	f := formFromRequest(c)
	i, err := strconv.Atoi(c.QueryParam("index"))
	if err != nil || i < 0 || i >= len(f.Functions) {
		return &Error{Status: http.StatusBadRequest, Message: "No such function in the form."}
	}
	fb, _ := checkFunctionForm(f.Functions[i])
	for j, other := range f.Functions {
		if j != i && strings.TrimSpace(other.Name) != "" && strings.TrimSpace(other.Name) == strings.TrimSpace(f.Functions[i].Name) {
			fb.Name = append(fb.Name, fmt.Sprintf("Function %d already uses this name.", j+1))
			break
		}
	}
	return render(c, http.StatusOK, views.FunctionCheck(fb))
}

// CheckSchema handles POST /assistants/schema/check: the live validation
// of the response format's JSON schema.
func (u *UI) CheckSchema(c *echo.Context) error {
	f := formFromRequest(c)
	schema, errs := checkSchema(f.Schema)
	if schema != nil && f.SchemaStrict {
		errs = append(errs, strictErrors(schema)...)
	}
	if strings.TrimSpace(f.Schema) != "" && f.SchemaName != "" && !functionName.MatchString(f.SchemaName) {
		errs = append(errs, "The schema name may use 1 to 64 letters, digits, underscores or hyphens.")
	}
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
		return Internal(err)
	}
	return u.flash(c, "/assistants/"+a.ID, "Assistant created.", false)
}

// UpdateAssistant handles POST /assistants/:assistant_id.
func (u *UI) UpdateAssistant(c *echo.Context) error {
	id := c.Param("assistant_id")
	if _, err := u.store.GetAssistant(c.Request().Context(), id); err != nil {
		return storeErr(err, "assistant", id)
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
		return storeErr(err, "assistant", id)
	}
	return u.flash(c, "/assistants/"+id, "Changes saved.", false)
}

// applyForm validates the whole form into a, recording errors on f. The
// fields go through the same checks as POST /v1/assistants.
func (u *UI) applyForm(c *echo.Context, f *views.AssistantForm, a *db.Assistant) bool {
	errs := map[string]string{}
	r := assistantRequest{}
	r.Model = Opt[string]{Set: true, V: f.Model}
	r.Name = optString(f.Name)
	r.Description = optString(f.Description)
	r.Instructions = optString(f.Instructions)
	if f.Model == "" {
		errs["model"] = "Choose a model."
	}
	num := func(field, s string, o *Opt[float64]) {
		if s == "" {
			*o = Opt[float64]{Set: true, Null: true}
			return
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			// ParseFloat accepts "NaN" and "Inf", which no range check
			// catches (NaN compares false) and JSON cannot hold.
			errs[field] = "Enter a number."
			return
		}
		*o = Opt[float64]{Set: true, V: v}
	}
	num("temperature", f.Temperature, &r.Temperature)
	num("top_p", f.TopP, &r.TopP)

	switch f.ResponseType {
	case "", "auto":
		r.ResponseFormat = Opt[json.RawMessage]{Set: true, V: json.RawMessage(`"auto"`)}
	case "text", "json_object":
		r.ResponseFormat = Opt[json.RawMessage]{Set: true, V: json.RawMessage(`{"type":"` + f.ResponseType + `"}`)}
	case "json_schema":
		schema, serrs := checkSchema(f.Schema)
		if len(serrs) > 0 {
			errs["response_format"] = strings.Join(serrs, " ")
			break
		}
		js := map[string]any{"name": f.SchemaName}
		if f.SchemaDescription != "" {
			js["description"] = f.SchemaDescription
		}
		if schema != nil {
			js["schema"] = schema
		}
		if f.SchemaStrict {
			js["strict"] = true
			if schema != nil {
				if se := strictErrors(schema); len(se) > 0 {
					errs["response_format"] = strings.Join(se, " ")
				}
			}
		}
		raw, _ := json.Marshal(map[string]any{"type": "json_schema", "json_schema": js})
		r.ResponseFormat = Opt[json.RawMessage]{Set: true, V: raw}
	default:
		errs["response_format"] = "Choose a response format."
	}

	var tools []db.Tool
	if f.CodeInterpreter {
		tools = append(tools, db.Tool{Type: "code_interpreter"})
	}
	if f.FileSearch {
		tools = append(tools, db.Tool{Type: "file_search"})
	}
	fnOffset := len(tools)
	fnOK := true
	names := map[string]int{}
	for i := range f.Functions {
		fb, def := checkFunctionForm(f.Functions[i])
		if j, dup := names[def.Name]; dup && def.Name != "" {
			fb.Name = append(fb.Name, fmt.Sprintf("Function %d already uses this name.", j+1))
		}
		names[def.Name] = i
		f.Functions[i].Feedback = fb
		if !fb.OK() {
			fnOK = false
		}
		tools = append(tools, db.Tool{Type: "function", Function: &def})
	}
	if !fnOK {
		errs["tools"] = "Fix the functions marked below."
	}
	r.Tools = Opt[[]db.Tool]{Set: true, V: tools}

	var tr toolResourcesRequest
	if ids := splitIDs(f.CodeFileIDs); len(ids) > 0 {
		tr.CodeInterpreter = &struct {
			FileIDs []string `json:"file_ids"`
		}{FileIDs: ids}
	}
	if ids := splitIDs(f.VectorStoreIDs); len(ids) > 0 {
		tr.FileSearch = &struct {
			VectorStoreIDs []string          `json:"vector_store_ids"`
			VectorStores   []json.RawMessage `json:"vector_stores"`
		}{VectorStoreIDs: ids}
	}
	r.ToolResources = Opt[toolResourcesRequest]{Set: true, V: tr}

	meta, err := parseMetadata(f.Metadata)
	if err != nil {
		errs["metadata"] = err.Error()
	}
	r.Metadata = Opt[db.Metadata]{Set: true, V: meta}

	if len(errs) == 0 {
		if err := u.api.applyAssistant(c, r, a); err != nil {
			var ae *Error
			if !errors.As(err, &ae) {
				errs[""] = "Could not save the assistant."
				u.cfg.Log.Error("apply assistant form", "error", err)
			} else {
				errs[formField(ae.Param, fnOffset, f)] = ae.Message
			}
		}
	}
	f.Errors = errs
	return len(errs) == 0
}

// formField maps an API error's param ("tools[2].function.name",
// "tool_resources.code_interpreter.file_ids") to the editor's field.
func formField(param string, fnOffset int, f *views.AssistantForm) string {
	top, _, _ := strings.Cut(param, ".")
	top, _, _ = strings.Cut(top, "[")
	switch top {
	case "name", "description", "model", "instructions", "temperature", "top_p", "response_format", "metadata", "tool_resources", "tools":
		return top
	}
	return ""
}

func optString(s string) Opt[string] {
	if strings.TrimSpace(s) == "" {
		return Opt[string]{Set: true, Null: true}
	}
	return Opt[string]{Set: true, V: s}
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
		return storeErr(err, "assistant", id)
	}
	name := "Copy of " + deref(a.Name)
	if a.Name == nil {
		name = "Copy of " + a.ID
	}
	if len([]rune(name)) > maxName {
		name = string([]rune(name)[:maxName])
	}
	a.Name = &name
	cp, err := u.store.CreateAssistant(c.Request().Context(), a)
	if err != nil {
		return Internal(err)
	}
	return u.flash(c, "/assistants/"+cp.ID, "Duplicated; you are editing the copy.", false)
}

// DeleteAssistant handles POST /assistants/:assistant_id/delete.
func (u *UI) DeleteAssistant(c *echo.Context) error {
	id := c.Param("assistant_id")
	if err := u.store.DeleteAssistant(c.Request().Context(), id); err != nil {
		return storeErr(err, "assistant", id)
	}
	return u.flash(c, "/assistants", "Assistant deleted.", false)
}

// ExportTools handles GET /assistants/:assistant_id/tools.json.
func (u *UI) ExportTools(c *echo.Context) error {
	id := c.Param("assistant_id")
	a, err := u.store.GetAssistant(c.Request().Context(), id)
	if err != nil {
		return storeErr(err, "assistant", id)
	}
	b, err := json.MarshalIndent(a.Tools, "", "  ")
	if err != nil {
		return Internal(err)
	}
	c.Response().Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": id + "-tools.json"}))
	return c.Blob(http.StatusOK, "application/json", append(b, '\n'))
}
