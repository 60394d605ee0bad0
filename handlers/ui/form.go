package ui

import (
	"encoding/json"
	"strings"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/validate"
	"github.com/assistantd/assistantd/views"
)

// The web app's forms go through package validate, the checks the /v1
// handlers run. A form only reads its fields into a request (a number
// typed as text, a schema typed as JSON: what the API's JSON decoder does
// for a body) and puts each problem validation reports beside the field
// its Path names.

// fieldErrors puts each problem under its request's top-level field, which
// is the form field of the same name; several problems of one field are
// joined.
func fieldErrors(errs map[string]string, problems validate.Errors) {
	for _, e := range problems {
		field := e.Path.At(0)
		switch have := errs[field]; {
		case have == "":
			errs[field] = e.Text()
		case !strings.Contains(have, e.Text()):
			errs[field] = have + " " + e.Text()
		}
	}
}

// formFunctions reads the editor's functions as tools that follow offset
// other tools: each function's parameters are read as JSON, a syntax
// error going on the function's feedback.
func formFunctions(f *views.AssistantForm, offset int) []db.Tool {
	tools := make([]db.Tool, 0, len(f.Functions))
	for i := range f.Functions {
		fn := &f.Functions[i]
		fn.Feedback = views.FunctionFeedback{Index: fn.Index, Checked: true}
		def := db.FunctionDef{Name: strings.TrimSpace(fn.Name), Description: fn.Description}
		if fn.Strict {
			t := true
			def.Strict = &t
		}
		raw, err := validate.ParseJSON(validate.P("tools", offset+i, "function", "parameters"), fn.Parameters)
		if problems, ok := validate.List(err); ok {
			fn.Feedback.Parameters = append(fn.Feedback.Parameters, problems[0].Text())
		} else {
			def.Parameters = raw
		}
		tools = append(tools, db.Tool{Type: "function", Function: &def})
	}
	return tools
}

// functionFeedback puts the problems of tools[offset+i].function beside
// function i of the editor — its name or its parameters — and returns the
// problems that belong elsewhere.
func functionFeedback(f *views.AssistantForm, offset int, problems validate.Errors) validate.Errors {
	var rest validate.Errors
	for _, e := range problems {
		i, ok := e.Path.IndexAt(1)
		i -= offset
		if e.Path.At(0) != "tools" || !ok || i < 0 || i >= len(f.Functions) {
			rest = append(rest, e)
			continue
		}
		fb := &f.Functions[i].Feedback
		if e.Path.At(3) == "name" {
			fb.Name = append(fb.Name, e.Text())
		} else {
			fb.Parameters = append(fb.Parameters, e.Text())
		}
	}
	return rest
}

// checkFunctions validates the editor's functions alone, as the live
// check does while one is typed.
func checkFunctions(f *views.AssistantForm) {
	tools := formFunctions(f, 0)
	problems, _ := validate.List(validate.Tools(validate.P("tools"), tools, validate.MaxAssistantTools))
	functionFeedback(f, 0, problems)
}

// formResponseFormat reads the editor's response format. For a JSON
// schema it returns the problems validation finds (its JSON syntax first),
// as texts for the field.
func formResponseFormat(f *views.AssistantForm) (json.RawMessage, []string) {
	switch f.ResponseType {
	case "", "auto":
		return json.RawMessage(`"auto"`), nil
	case "text", "json_object":
		return json.RawMessage(`{"type":"` + f.ResponseType + `"}`), nil
	case "json_schema":
	default:
		return nil, []string{"Choose a response format."}
	}
	p := validate.P("response_format")
	schema, err := validate.ParseJSON(p.Key("json_schema").Key("schema"), f.Schema)
	if problems, ok := validate.List(err); ok {
		return nil, []string{problems[0].Text()}
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
	}
	raw, _ := json.Marshal(map[string]any{"type": "json_schema", "json_schema": js})
	rf, err := validate.ResponseFormat(p, raw)
	if problems, ok := validate.List(err); ok {
		texts := make([]string, len(problems))
		for i, e := range problems {
			texts[i] = e.Text()
		}
		return nil, texts
	}
	return rf, nil
}

// nulRefusal is the message beside a field holding a NUL character, which
// PostgreSQL's text cannot store (the API answers 400 for it); the web app
// refuses it on both stores so a form behaves the same on either.
const nulRefusal = "Remove the NUL character (\\0): it cannot be stored."

// hasNul reports whether s holds a NUL character.
func hasNul(s string) bool { return strings.IndexByte(s, 0) >= 0 }
