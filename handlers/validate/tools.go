package validate

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"

	"github.com/assistantd/assistantd/db"
)

// FunctionName is the pattern of function and schema names.
var FunctionName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

const namePattern = "^[a-zA-Z0-9_-]{1,64}$"

// Tools validates a tools array: the union discriminated by type, every
// function (see Function), unique function names, and file_search options.
func Tools(p Path, tools []db.Tool, max int) error {
	if err := ArrayLen(p, len(tools), max); err != nil {
		return err
	}
	var es Errors
	first := map[string]int{} // function name → its ordinal among functions
	fn := 0
	for i := range tools {
		t := &tools[i]
		tp := p.Index(i)
		switch t.Type {
		case "function":
			fn++
			if t.FileSearch != nil {
				es = append(es, New(tp.Key("file_search"), "unknown_parameter", "Unknown parameter: '%s'.", tp.Key("file_search")))
				continue
			}
			if t.Function == nil {
				es = append(es, Missing(tp.Key("function")))
				continue
			}
			es = append(es, Function(tp.Key("function"), t.Function)...)
			name := t.Function.Name
			if j, dup := first[name]; dup && name != "" {
				np := tp.Key("function").Key("name")
				es = append(es, New(np, "invalid_value",
					"Invalid '%s': the function name '%s' is used more than once.", np, name).
					withHint("Function %d already uses this name.", j))
			} else if name != "" {
				first[name] = fn
			}
		case "file_search":
			if t.Function != nil {
				es = append(es, New(tp.Key("function"), "unknown_parameter", "Unknown parameter: '%s'.", tp.Key("function")))
				continue
			}
			if err := fileSearchOptions(tp.Key("file_search"), t.FileSearch); err != nil {
				es = append(es, err.(*Error))
			}
		case "code_interpreter":
			if t.Function != nil || t.FileSearch != nil {
				es = append(es, New(tp, "unknown_parameter", "Invalid '%s': a code_interpreter tool takes no options.", tp))
			}
		case "":
			es = append(es, Missing(tp.Key("type")))
		default:
			es = append(es, New(tp.Key("type"), "invalid_value",
				"Invalid value: '%s'. Supported values are: 'code_interpreter', 'function', and 'file_search'.", t.Type))
		}
	}
	return es.Err()
}

func fileSearchOptions(p Path, fs *db.FileSearchTool) error {
	if fs == nil {
		return nil
	}
	if n := fs.MaxNumResults; n != nil && (*n < 1 || *n > MaxFileSearchResult) {
		mp := p.Key("max_num_results")
		return New(mp, "invalid_value", "Invalid '%s': expected a value between 1 and %d, but got %d instead.", mp, MaxFileSearchResult, *n)
	}
	ro := fs.RankingOptions
	if ro == nil {
		return nil
	}
	rp := p.Key("ranking_options")
	if ro.Ranker != "" && ro.Ranker != "auto" && ro.Ranker != "default_2024_08_21" {
		return New(rp.Key("ranker"), "invalid_value", "Invalid value: '%s'. Supported values are: 'auto' and 'default_2024_08_21'.", ro.Ranker)
	}
	if ro.ScoreThreshold == nil {
		return Missing(rp.Key("score_threshold"))
	}
	return Range(rp.Key("score_threshold"), ro.ScoreThreshold, 0, 1)
}

// Function validates one function definition at p (tools[i].function): the
// name pattern; parameters, when given, as a JSON Schema (2020-12, no
// references to other documents) whose top level describes an object; and,
// when strict, OpenAI's strict rules. A null parameters is dropped.
func Function(p Path, f *db.FunctionDef) Errors {
	var es Errors
	np := p.Key("name")
	switch {
	case f.Name == "":
		es = append(es, Missing(np).withHint("Give the function a name."))
	case !FunctionName.MatchString(f.Name):
		es = append(es, New(np, "invalid_value",
			"Invalid '%s': string does not match pattern. Expected a string that matches the pattern '%s'.", np, namePattern).
			withHint("Use 1 to 64 letters, digits, underscores or hyphens (pattern %s).", namePattern))
	}
	if len(f.Parameters) == 0 || string(f.Parameters) == "null" {
		f.Parameters = nil
		return es
	}
	pp := p.Key("parameters")
	schema, kind := decodeSchema(f.Parameters)
	if schema == nil {
		return append(es, notObject(pp, kind))
	}
	bad := func(msg string) *Error {
		return New(pp, "invalid_function_parameters", "Invalid schema for function '%s': %s", f.Name, msg).withHint("%s", msg)
	}
	problems := schemaProblems(f.Parameters)
	for _, msg := range problems {
		es = append(es, bad(msg))
	}
	if len(problems) > 0 {
		return es
	}
	if _, ok := schema["type"]; ok && !isObjectSchema(schema) {
		es = append(es, bad(`The parameters must describe an object: set "type": "object" at the top level.`))
	}
	if f.Strict != nil && *f.Strict {
		for _, msg := range strictProblems(schema) {
			es = append(es, bad(msg))
		}
	}
	return es
}

// ResponseFormatObject is response_format in its object form.
type ResponseFormatObject struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Schema      json.RawMessage `json:"schema,omitempty"`
		Strict      *bool           `json:"strict,omitempty"`
	} `json:"json_schema,omitempty"`
}

// ResponseFormat validates "auto" or {"type": "text" | "json_object" |
// "json_schema", ...} and returns its canonical JSON. A json_schema's schema
// must be a valid JSON Schema, and, when strict, follow the strict rules.
func ResponseFormat(p Path, raw json.RawMessage) (json.RawMessage, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s != "auto" {
			return nil, New(p, "invalid_value", "Invalid value: '%s'. Supported values are: 'auto'.", s)
		}
		return json.RawMessage(`"auto"`), nil
	}
	var rf ResponseFormatObject
	if err := Strict(raw, &rf); err != nil {
		if name, ok := unknownField(err); ok {
			up := p.Key(name)
			return nil, New(up, "unknown_parameter", "Unknown parameter: '%s'.", up)
		}
		return nil, New(p, "invalid_type", "Invalid type for '%s': expected 'auto' or an object with a 'type'.", p)
	}
	switch rf.Type {
	case "text", "json_object":
		if rf.JSONSchema != nil {
			return nil, New(p.Key("json_schema"), "unknown_parameter", "Unknown parameter: '%s'.", p.Key("json_schema"))
		}
	case "json_schema":
		jp := p.Key("json_schema")
		js := rf.JSONSchema
		if js == nil {
			return nil, Missing(jp)
		}
		var es Errors
		if !FunctionName.MatchString(js.Name) {
			np := jp.Key("name")
			es = append(es, New(np, "invalid_value", "Invalid '%s': expected a string that matches the pattern '%s'.", np, namePattern).
				withHint("The schema name may use 1 to 64 letters, digits, underscores or hyphens."))
		}
		if len(js.Schema) > 0 {
			sp := jp.Key("schema")
			schema, kind := decodeSchema(js.Schema)
			if schema == nil {
				return nil, append(es, notObject(sp, kind))
			}
			problems := schemaProblems(js.Schema)
			if js.Strict != nil && *js.Strict && len(problems) == 0 {
				problems = strictProblems(schema)
			}
			for _, msg := range problems {
				es = append(es, New(sp, "invalid_value", "Invalid '%s': %s", sp, msg).withHint("%s", msg))
			}
		}
		if len(es) > 0 {
			return nil, es
		}
	case "":
		return nil, Missing(p.Key("type"))
	default:
		return nil, New(p.Key("type"), "invalid_value",
			"Invalid value: '%s'. Supported values are: 'text', 'json_object', and 'json_schema'.", rf.Type)
	}
	return json.Marshal(rf)
}

// unknownField reads the field name out of encoding/json's unknown field
// error, the only way it reports one.
func unknownField(err error) (string, bool) {
	var name string
	if _, scanErr := fmt.Sscanf(err.Error(), "json: unknown field %q", &name); scanErr == nil {
		return name, true
	}
	return "", false
}

// ToolChoice validates tool_choice against the run's tools and returns its
// canonical JSON.
func ToolChoice(p Path, raw json.RawMessage, tools []db.Tool) (json.RawMessage, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "none", "auto":
		case "required":
			if len(tools) == 0 {
				return nil, New(p, "invalid_value", "Invalid '%s': 'required' needs at least one tool.", p)
			}
		default:
			return nil, New(p, "invalid_value", "Invalid value: '%s'. Supported values are: 'none', 'auto', and 'required'.", s)
		}
		return json.Marshal(s)
	}
	var obj struct {
		Type     string `json:"type"`
		Function *struct {
			Name string `json:"name"`
		} `json:"function,omitempty"`
	}
	if err := Strict(raw, &obj); err != nil {
		return nil, New(p, "invalid_type", "Invalid type for '%s': expected a string or an object with a 'type'.", p)
	}
	switch obj.Type {
	case "function":
		np := p.Key("function").Key("name")
		if obj.Function == nil || obj.Function.Name == "" {
			return nil, Missing(np)
		}
		if !slices.ContainsFunc(tools, func(t db.Tool) bool { return t.Function != nil && t.Function.Name == obj.Function.Name }) {
			return nil, New(np, "invalid_value", "Invalid '%s': no function named '%s' is among the run's tools.", np, obj.Function.Name)
		}
	case "code_interpreter", "file_search":
		if obj.Function != nil {
			return nil, New(p.Key("function"), "unknown_parameter", "Unknown parameter: '%s'.", p.Key("function"))
		}
		if !slices.ContainsFunc(tools, func(t db.Tool) bool { return t.Type == obj.Type }) {
			return nil, New(p.Key("type"), "invalid_value", "Invalid '%s': the run has no '%s' tool.", p, obj.Type)
		}
	default:
		return nil, New(p.Key("type"), "invalid_value",
			"Invalid value: '%s'. Supported values are: 'function', 'code_interpreter', and 'file_search'.", obj.Type)
	}
	return json.Marshal(obj)
}

// ReasoningEfforts are the accepted reasoning_effort values.
var ReasoningEfforts = []string{"none", "minimal", "low", "medium", "high", "xhigh", "max"}

// ReasoningEffort validates reasoning_effort.
func ReasoningEffort(p Path, e *string) error {
	if e != nil && !slices.Contains(ReasoningEfforts, *e) {
		return New(p, "invalid_value",
			"Invalid value: '%s'. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', 'xhigh', and 'max'.", *e)
	}
	return nil
}
