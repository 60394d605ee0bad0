package validate

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
)

// ParseJSON reads a JSON object typed by a person (a schema in a form): a
// syntax error names its line and column, and anything but an object is
// refused. The API gets the same from its body decoder.
func ParseJSON(p Path, raw string) (json.RawMessage, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(raw), &obj); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			line, col := lineCol(raw, se.Offset)
			msg := fmt.Sprintf("Invalid JSON at line %d, column %d: %s.", line, col, se.Error())
			return nil, New(p, "invalid_json", "Invalid '%s': %s", p, msg).withHint("%s", msg)
		case errors.As(err, &te):
			return nil, notObject(p, te.Value)
		default:
			return nil, New(p, "invalid_json", "Invalid '%s': %v.", p, err).withHint("Invalid JSON: %v.", err)
		}
	}
	var buf bytes.Buffer
	_ = json.Compact(&buf, []byte(raw))
	return buf.Bytes(), nil
}

func notObject(p Path, kind string) *Error {
	kind, _, _ = strings.Cut(kind, " ")
	a := "a "
	if kind == "array" || kind == "object" {
		a = "an "
	}
	return New(p, "invalid_type", "Invalid type for '%s': expected an object (a JSON Schema).", p).
		withHint("The schema must be a JSON object ({…}), not %s%s.", a, kind)
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

// decodeSchema decodes raw as a JSON object, or says what it is instead.
func decodeSchema(raw json.RawMessage) (map[string]any, string) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, "value"
	}
	switch v := v.(type) {
	case map[string]any:
		return v, ""
	case []any:
		return nil, "array"
	case string:
		return nil, "string"
	case float64:
		return nil, "number"
	case bool:
		return nil, "bool"
	}
	return nil, "null"
}

var printer = message.NewPrinter(language.English)

// schemaProblems checks a JSON Schema document against the JSON Schema
// 2020-12 metaschema with a JSON Schema library, one line per failing
// keyword located by JSON pointer. References to other documents are
// refused: following them would make the server fetch URLs.
func schemaProblems(raw json.RawMessage) []string {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return []string{"Invalid JSON: " + err.Error()}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	const url = "urn:assistantd:schema"
	if err := c.AddResource(url, doc); err != nil {
		return []string{"Not a valid JSON Schema: " + err.Error()}
	}
	if _, err := c.Compile(url); err != nil {
		return compileProblems(err, url)
	}
	return nil
}

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("references to other documents (%s) are not allowed", url)
}

// compileProblems flattens the library's error tree into one line per
// failing keyword, located by JSON pointer.
func compileProblems(err error, url string) []string {
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
		return dedupeSorted(out)
	}
	msg := strings.ReplaceAll(err.Error(), `"`+url+`"`, "the schema")
	msg = strings.ReplaceAll(msg, url, "")
	return []string{"Not a valid JSON Schema: " + msg}
}

func dedupeSorted(in []string) []string {
	var out []string
	for i, s := range in {
		if i == 0 || in[i-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// strictProblems applies OpenAI's strict-mode rules to a schema: every
// object sets additionalProperties to false and lists every one of its
// properties in required, all the way down.
func strictProblems(schema map[string]any) []string {
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
		for _, k := range sortedKeys(props) {
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
				for _, k := range sortedKeys(defs) {
					walk(defs[k], path+"/"+kw+"/"+k)
				}
			}
		}
	}
	walk(schema, "")
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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
