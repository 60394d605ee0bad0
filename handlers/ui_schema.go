package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/views"
)

// functionExamples are the editor's Examples picker: a weather lookup,
// a lookup by id, and a function without parameters. All follow the strict
// rules, so they work with Strict on.
var functionExamples = []struct {
	key, label string
	fn         db.FunctionDef
}{
	{"weather", "Weather (location + unit)", db.FunctionDef{Name: "get_weather",
		Description: "Get the current weather for a location.",
		Parameters: json.RawMessage(`{"type":"object","properties":{"location":{"type":"string","description":"City and country, e.g. Paris, France"},` +
			`"unit":{"type":"string","enum":["celsius","fahrenheit"],"description":"Temperature unit"}},"required":["location","unit"],"additionalProperties":false}`)}},
	{"lookup", "Lookup by id", db.FunctionDef{Name: "get_order",
		Description: "Look up an order by its id.",
		Parameters: json.RawMessage(`{"type":"object","properties":{"order_id":{"type":"string","description":"The order id, e.g. ord_123","pattern":"^ord_[A-Za-z0-9]+$"}},` +
			`"required":["order_id"],"additionalProperties":false}`)}},
	{"none", "No parameters", db.FunctionDef{Name: "get_current_time",
		Description: "Get the current date and time.",
		Parameters:  json.RawMessage(`{"type":"object","properties":{},"required":[],"additionalProperties":false}`)}},
}

func exampleOptions() []views.Example {
	out := make([]views.Example, 0, len(functionExamples))
	for _, e := range functionExamples {
		out = append(out, views.Example{Key: e.key, Label: e.label})
	}
	return out
}

// prettyJSON indents raw JSON with two spaces; invalid JSON is returned
// unchanged (the validation says what is wrong with it).
func prettyJSON(raw string) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(strings.TrimSpace(raw)), "", "  "); err != nil {
		return raw
	}
	return buf.String()
}

var printer = message.NewPrinter(language.English)

// checkSchema reports what is wrong with a JSON Schema document: its JSON
// syntax (with line and column), then its validity against the JSON Schema
// 2020-12 metaschema, compiled by a JSON Schema library. It returns the
// decoded document when valid.
func checkSchema(raw string) (map[string]any, []string) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	var syntax map[string]any
	if err := json.Unmarshal([]byte(raw), &syntax); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			line, col := lineCol(raw, se.Offset)
			return nil, []string{fmt.Sprintf("Invalid JSON at line %d, column %d: %s.", line, col, se.Error())}
		case errors.As(err, &te):
			return nil, []string{"The schema must be a JSON object ({…}), not " + article(te.Value) + "."}
		default:
			return nil, []string{"Invalid JSON: " + err.Error() + "."}
		}
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(raw))
	if err != nil {
		return nil, []string{"Invalid JSON: " + err.Error()}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// Remote references would make the server fetch URLs: refuse them.
	c.UseLoader(noLoader{})
	const url = "urn:assistantd:parameters"
	if err := c.AddResource(url, doc); err != nil {
		return nil, []string{"Not a valid JSON Schema: " + err.Error()}
	}
	if _, err := c.Compile(url); err != nil {
		return nil, schemaErrors(err)
	}
	return syntax, nil
}

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("references to other documents (%s) are not allowed", url)
}

// schemaErrors flattens the library's error tree into one line per
// failing keyword, located by JSON pointer.
func schemaErrors(err error) []string {
	var sve *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &sve) && errors.As(sve.Err, &ve) {
		byLoc := map[string][]string{}
		var walk func(e *jsonschema.ValidationError)
		walk = func(e *jsonschema.ValidationError) {
			if len(e.Causes) == 0 {
				loc := "/" + strings.Join(e.InstanceLocation, "/")
				byLoc[loc] = append(byLoc[loc], e.ErrorKind.LocalizedString(printer))
				return
			}
			for _, c := range e.Causes {
				walk(c)
			}
		}
		walk(ve)
		var out []string
		for loc, msgs := range byLoc {
			// The metaschema's anyOf alternatives (a type name or an array
			// of them) each fail; the type mismatch against the alternative
			// the author did not mean is noise when another reason exists.
			var kept []string
			for _, m := range msgs {
				if len(msgs) == 1 || !strings.HasPrefix(m, "got ") {
					kept = append(kept, m)
				}
			}
			if len(kept) == 0 {
				kept = msgs[:1]
			}
			for _, m := range kept {
				out = append(out, fmt.Sprintf("Not a valid JSON Schema (2020-12) at %s: %s.", loc, m))
			}
		}
		sort.Strings(out)
		return dedupeStrings(out)
	}
	msg := err.Error()
	if i := strings.Index(msg, "urn:assistantd:parameters"); i >= 0 {
		msg = strings.ReplaceAll(msg, `"urn:assistantd:parameters"`, "the schema")
		msg = strings.ReplaceAll(msg, "urn:assistantd:parameters", "")
	}
	return []string{"Not a valid JSON Schema: " + msg}
}

func dedupeStrings(in []string) []string {
	var out []string
	for i, s := range in {
		if i == 0 || in[i-1] != s {
			out = append(out, s)
		}
	}
	return out
}

func lineCol(s string, offset int64) (int, int) {
	line, col := 1, 1
	for i, r := range s {
		if int64(i) >= offset-1 {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// strictErrors applies OpenAI's strict-mode rules to a parameters schema:
// every object sets additionalProperties to false and lists every one of
// its properties in required, all the way down.
func strictErrors(schema map[string]any) []string {
	var out []string
	var walk func(node any, path string)
	walk = func(node any, path string) {
		obj, ok := node.(map[string]any)
		if !ok {
			return
		}
		props, hasProps := obj["properties"].(map[string]any)
		if isObjectSchema(obj) || hasProps {
			loc := path
			if loc == "" {
				loc = "the top level"
			}
			if ap, ok := obj["additionalProperties"].(bool); !ok || ap {
				out = append(out, fmt.Sprintf("Strict: at %s, set \"additionalProperties\": false.", loc))
			}
			required := map[string]bool{}
			if req, ok := obj["required"].([]any); ok {
				for _, r := range req {
					if s, ok := r.(string); ok {
						required[s] = true
					}
				}
			}
			var missing []string
			for name := range props {
				if !required[name] {
					missing = append(missing, name)
				}
			}
			sort.Strings(missing)
			if len(missing) > 0 {
				out = append(out, fmt.Sprintf("Strict: at %s, every property must be required; add %s to \"required\" (use a \"null\" type for optional values).",
					loc, quoteList(missing)))
			}
		}
		keys := make([]string, 0, len(props))
		for k := range props {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walk(props[k], path+"/properties/"+k)
		}
		walk(obj["items"], path+"/items")
		for _, kw := range []string{"anyOf", "allOf", "oneOf"} {
			if arr, ok := obj[kw].([]any); ok {
				for i, sub := range arr {
					walk(sub, fmt.Sprintf("%s/%s/%d", path, kw, i))
				}
			}
		}
		for _, kw := range []string{"$defs", "definitions"} {
			if defs, ok := obj[kw].(map[string]any); ok {
				names := make([]string, 0, len(defs))
				for k := range defs {
					names = append(names, k)
				}
				sort.Strings(names)
				for _, k := range names {
					walk(defs[k], path+"/"+kw+"/"+k)
				}
			}
		}
	}
	walk(schema, "")
	return out
}

func isObjectSchema(obj map[string]any) bool {
	switch t := obj["type"].(type) {
	case string:
		return t == "object"
	case []any:
		for _, v := range t {
			if v == "object" {
				return true
			}
		}
	}
	return false
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = `"` + n + `"`
	}
	return strings.Join(q, ", ")
}

// checkFunctionForm validates one function of the editor: the name
// pattern, the parameters as a JSON Schema whose top level is an object,
// and, when strict, the strict rules. It returns the feedback and, when
// valid, the function definition.
func checkFunctionForm(fn views.FunctionForm) (views.FunctionFeedback, db.FunctionDef) {
	fb := views.FunctionFeedback{Index: fn.Index, Checked: true}
	def := db.FunctionDef{Name: strings.TrimSpace(fn.Name), Description: fn.Description}
	switch {
	case def.Name == "":
		fb.Name = append(fb.Name, "Give the function a name.")
	case !functionName.MatchString(def.Name):
		fb.Name = append(fb.Name, "Use 1 to 64 letters, digits, underscores or hyphens (pattern ^[a-zA-Z0-9_-]{1,64}$).")
	}
	schema, errs := checkSchema(fn.Parameters)
	fb.Parameters = append(fb.Parameters, errs...)
	if len(errs) == 0 && schema != nil {
		if t, ok := schema["type"]; !ok || t != "object" {
			fb.Parameters = append(fb.Parameters, `The parameters must describe an object: set "type": "object" at the top level.`)
		}
		var buf bytes.Buffer
		_ = json.Compact(&buf, []byte(fn.Parameters))
		def.Parameters = json.RawMessage(buf.Bytes())
	}
	if fn.Strict {
		t := true
		def.Strict = &t
		if schema == nil && len(errs) == 0 {
			fb.Parameters = append(fb.Parameters, `Strict functions need parameters; for none, use {"type": "object", "properties": {}, "required": [], "additionalProperties": false}.`)
		}
		if schema != nil {
			fb.Parameters = append(fb.Parameters, strictErrors(schema)...)
		}
	}
	return fb, def
}
