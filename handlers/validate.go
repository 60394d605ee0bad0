package handlers

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/assistantd/assistantd/db"
)

// Limits of the Assistants API (shared/spec/assistants-api.md §1.2, §5).
const (
	maxMetadataPairs    = 16
	maxMetadataKey      = 64
	maxMetadataValue    = 512
	maxName             = 256
	maxDescription      = 512
	maxInstructions     = 256000
	maxAssistantTools   = 128
	maxCodeFiles        = 20
	maxVectorStores     = 1
	maxMessageContent   = 256000
	maxThreadMessages   = 32
	maxAttachments      = 10
	maxFunctionNameLen  = 64
	maxFileSearchResult = 50
)

var functionName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// checkLen rejects a string longer than max characters.
func checkLen(param string, s *string, max int) error {
	if s == nil {
		return nil
	}
	if n := utf8.RuneCountInString(*s); n > max {
		return invalid(param, "string_above_max_length",
			"Invalid '%s': string too long. Expected a string with maximum length %d, but got a string with length %d instead.", param, max, n)
	}
	return nil
}

// checkRange rejects a number outside [lo, hi].
func checkRange(param string, v *float64, lo, hi float64) error {
	if v == nil {
		return nil
	}
	if *v < lo {
		return invalid(param, "decimal_below_min_value",
			"Invalid '%s': decimal below minimum value. Expected a value >= %g, but got %g instead.", param, lo, *v)
	}
	if *v > hi {
		return invalid(param, "decimal_above_max_value",
			"Invalid '%s': decimal above maximum value. Expected a value <= %g, but got %g instead.", param, hi, *v)
	}
	return nil
}

// checkArrayLen rejects an array longer than max.
func checkArrayLen(param string, n, max int) error {
	if n > max {
		return invalid(param, "array_above_max_length",
			"Invalid '%s': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", param, max, n)
	}
	return nil
}

// checkMetadata enforces the 16 pairs / 64-character keys / 512-character
// values limits.
func checkMetadata(param string, m db.Metadata) error {
	if len(m) > maxMetadataPairs {
		return invalid(param, "object_above_max_properties",
			"Invalid '%s': too many properties. Expected an object with at most %d properties, but got an object with %d properties instead.",
			param, maxMetadataPairs, len(m))
	}
	for k, v := range m {
		if n := utf8.RuneCountInString(k); n > maxMetadataKey {
			return invalid(param, "string_above_max_length",
				"Invalid '%s': metadata key '%s…' is too long. Expected a key with maximum length %d, but got a key with length %d instead.",
				param, truncate(k, 16), maxMetadataKey, n)
		}
		if n := utf8.RuneCountInString(v); n > maxMetadataValue {
			return invalid(param+"."+k, "string_above_max_length",
				"Invalid '%s.%s': string too long. Expected a string with maximum length %d, but got a string with length %d instead.",
				param, k, maxMetadataValue, n)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// checkID rejects an id that lacks its object's prefix, as OpenAI did:
// "Invalid 'thread_id': 'x'. Expected an ID that begins with 'thread'."
func checkID(param, id, prefix string) error {
	if !strings.HasPrefix(id, prefix) || len(id) == len(prefix) {
		return invalid(param, "invalid_value", "Invalid '%s': '%s'. Expected an ID that begins with '%s'.",
			param, id, strings.TrimRight(prefix, "_-"))
	}
	return nil
}

// checkTools validates a tools array: the union discriminated by type, the
// function name pattern, unique function names, and file_search options.
func checkTools(param string, tools []db.Tool, max int) error {
	if err := checkArrayLen(param, len(tools), max); err != nil {
		return err
	}
	names := map[string]bool{}
	for i, t := range tools {
		p := fmt.Sprintf("%s[%d]", param, i)
		switch t.Type {
		case "function":
			if t.FileSearch != nil {
				return invalid(p+".file_search", "unknown_parameter", "Unknown parameter: '%s.file_search'.", p)
			}
			if t.Function == nil {
				return invalid(p+".function", "missing_required_parameter", "Missing required parameter: '%s.function'.", p)
			}
			if err := checkFunction(p+".function", t.Function); err != nil {
				return err
			}
			if names[t.Function.Name] {
				return invalid(p+".function.name", "invalid_value",
					"Invalid '%s.function.name': the function name '%s' is used more than once.", p, t.Function.Name)
			}
			names[t.Function.Name] = true
		case "file_search":
			if t.Function != nil {
				return invalid(p+".function", "unknown_parameter", "Unknown parameter: '%s.function'.", p)
			}
			if fs := t.FileSearch; fs != nil {
				if fs.MaxNumResults != nil && (*fs.MaxNumResults < 1 || *fs.MaxNumResults > maxFileSearchResult) {
					return invalid(p+".file_search.max_num_results", "invalid_value",
						"Invalid '%s.file_search.max_num_results': expected a value between 1 and %d, but got %d instead.",
						p, maxFileSearchResult, *fs.MaxNumResults)
				}
				if ro := fs.RankingOptions; ro != nil {
					if ro.Ranker != "" && ro.Ranker != "auto" && ro.Ranker != "default_2024_08_21" {
						return invalid(p+".file_search.ranking_options.ranker", "invalid_value",
							"Invalid value: '%s'. Supported values are: 'auto' and 'default_2024_08_21'.", ro.Ranker)
					}
					if ro.ScoreThreshold == nil {
						return invalid(p+".file_search.ranking_options.score_threshold", "missing_required_parameter",
							"Missing required parameter: '%s.file_search.ranking_options.score_threshold'.", p)
					}
					if err := checkRange(p+".file_search.ranking_options.score_threshold", ro.ScoreThreshold, 0, 1); err != nil {
						return err
					}
				}
			}
		case "code_interpreter":
			if t.Function != nil || t.FileSearch != nil {
				return invalid(p, "unknown_parameter", "Invalid '%s': a code_interpreter tool takes no options.", p)
			}
		case "":
			return invalid(p+".type", "missing_required_parameter", "Missing required parameter: '%s.type'.", p)
		default:
			return invalid(p+".type", "invalid_value",
				"Invalid value: '%s'. Supported values are: 'code_interpreter', 'function', and 'file_search'.", t.Type)
		}
	}
	return nil
}

// checkFunction validates one function definition: the name pattern, and
// that parameters, when given, is a JSON object (a JSON Schema).
func checkFunction(p string, f *db.FunctionDef) error {
	if f.Name == "" {
		return invalid(p+".name", "missing_required_parameter", "Missing required parameter: '%s.name'.", p)
	}
	if !functionName.MatchString(f.Name) {
		return invalid(p+".name", "invalid_value",
			"Invalid '%s.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.", p)
	}
	if len(f.Parameters) > 0 && string(f.Parameters) != "null" {
		var obj map[string]any
		if err := json.Unmarshal(f.Parameters, &obj); err != nil {
			return invalid(p+".parameters", "invalid_type", "Invalid type for '%s.parameters': expected an object (a JSON Schema).", p)
		}
	} else {
		f.Parameters = nil
	}
	return nil
}

// checkResponseFormat validates "auto" or {"type": "text" | "json_object" |
// "json_schema", ...} and returns its canonical JSON.
func checkResponseFormat(param string, raw json.RawMessage) (json.RawMessage, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s != "auto" {
			return nil, invalid(param, "invalid_value", "Invalid value: '%s'. Supported values are: 'auto'.", s)
		}
		return json.RawMessage(`"auto"`), nil
	}
	var rf struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name        string          `json:"name"`
			Description string          `json:"description,omitempty"`
			Schema      json.RawMessage `json:"schema,omitempty"`
			Strict      *bool           `json:"strict,omitempty"`
		} `json:"json_schema,omitempty"`
	}
	if err := strictUnmarshal(raw, &rf); err != nil {
		if ae, ok := decodeError(err).(*Error); ok && ae.Code == "unknown_parameter" {
			ae.Param = param + "." + ae.Param
			ae.Message = fmt.Sprintf("Unknown parameter: '%s'.", ae.Param)
			return nil, ae
		}
		return nil, invalid(param, "invalid_type", "Invalid type for '%s': expected 'auto' or an object with a 'type'.", param)
	}
	switch rf.Type {
	case "text", "json_object":
		if rf.JSONSchema != nil {
			return nil, invalid(param+".json_schema", "unknown_parameter", "Unknown parameter: '%s.json_schema'.", param)
		}
	case "json_schema":
		js := rf.JSONSchema
		if js == nil {
			return nil, invalid(param+".json_schema", "missing_required_parameter", "Missing required parameter: '%s.json_schema'.", param)
		}
		if !functionName.MatchString(js.Name) {
			return nil, invalid(param+".json_schema.name", "invalid_value",
				"Invalid '%s.json_schema.name': expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.", param)
		}
		if len(js.Schema) > 0 {
			var obj map[string]any
			if json.Unmarshal(js.Schema, &obj) != nil {
				return nil, invalid(param+".json_schema.schema", "invalid_type", "Invalid type for '%s.json_schema.schema': expected an object.", param)
			}
		}
	case "":
		return nil, invalid(param+".type", "missing_required_parameter", "Missing required parameter: '%s.type'.", param)
	default:
		return nil, invalid(param+".type", "invalid_value",
			"Invalid value: '%s'. Supported values are: 'text', 'json_object', and 'json_schema'.", rf.Type)
	}
	out, err := json.Marshal(rf)
	return out, err
}
