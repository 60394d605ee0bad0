package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
)

// maxJSONBody bounds a JSON request body. The largest legitimate bodies
// (instructions of 256,000 characters, 32 messages of 256,000 characters
// each when creating a thread) stay well below it.
const maxJSONBody = 32 << 20

// decodeBody decodes a JSON object request body into v, rejecting unknown
// parameters and wrong types with OpenAI's messages. An empty body decodes
// as {} when allowEmpty (POST /threads, cancel).
func decodeBody(r *http.Request, v any, allowEmpty bool) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxJSONBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &respond.Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error",
				Message: fmt.Sprintf("Request body too large: the limit is %d bytes.", int64(maxJSONBody))}
		}
		return respond.Invalid("", "", "Could not read the request body: %v", err)
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		if allowEmpty {
			return nil
		}
		return respond.Invalid("", "", "We could not parse the JSON body of your request. The API expects a JSON object in the request body, but the body was empty.")
	}
	// The decoder stops after the first value, so check the whole body:
	// `{"model":"m"} x` is malformed, not a create request with junk after it.
	if !json.Valid(body) {
		return decodeError(io.ErrUnexpectedEOF)
	}
	if body[0] != '{' {
		return respond.Invalid("", "invalid_type", "Invalid type for request body: expected a JSON object.")
	}
	if err := validate.Strict(body, v); err != nil {
		return withPath(decodeError(err), body)
	}
	return nil
}

// withPath puts the full JSON path into an unknown_parameter or invalid_type
// error: encoding/json names an unknown key without the object it is in,
// and a mistyped value by its field names without array indices (and with
// the Go names of embedded structs), while OpenAI reports
// 'tools[0].function.name'.
func withPath(err error, body []byte) error {
	ae, ok := err.(*respond.Error)
	if !ok || ae.Param == "" || (ae.Code != "unknown_parameter" && ae.Code != "invalid_type") {
		return err
	}
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return err
	}
	var paths []string
	if ae.Code == "unknown_parameter" {
		findKey(doc, "", ae.Param, &paths)
	} else {
		findValue(doc, "", strings.Split(ae.Param, "."), ae.Kind, &paths)
	}
	if len(paths) != 1 || paths[0] == ae.Param {
		return err // not found, or ambiguous: keep what encoding/json said
	}
	ae.Message = strings.Replace(ae.Message, "'"+ae.Param+"'", "'"+paths[0]+"'", 1)
	ae.Param = paths[0]
	return ae
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// findKey collects the paths of every object key named key.
func findKey(v any, path, key string, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if k == key {
				*out = append(*out, joinPath(path, k))
			}
			findKey(e, joinPath(path, k), key, out)
		}
	case []any:
		for i, e := range v {
			findKey(e, fmt.Sprintf("%s[%d]", path, i), key, out)
		}
	}
}

// findValue follows the field names, trying every element of the arrays on
// the way and skipping names that are not keys (embedded structs), and
// collects the paths that end at a value of JSON kind kind (or at an object
// holding one, for map values).
func findValue(v any, path string, names []string, kind string, out *[]string) {
	if arr, ok := v.([]any); ok && (len(names) > 0 || jsonKind(v) != kind) {
		for i, e := range arr {
			findValue(e, fmt.Sprintf("%s[%d]", path, i), names, kind, out)
		}
		return
	}
	if len(names) == 0 {
		switch {
		case jsonKind(v) == kind:
			*out = append(*out, path)
		case jsonKind(v) == "object":
			// A map value of the wrong kind: name the map, as
			// encoding/json does.
			for _, e := range v.(map[string]any) {
				if jsonKind(e) == kind {
					*out = append(*out, path)
					break
				}
			}
		}
		return
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return
	}
	if e, ok := obj[names[0]]; ok {
		findValue(e, joinPath(path, names[0]), names[1:], kind, out)
	} else {
		findValue(v, path, names[1:], kind, out)
	}
}

// jsonKind names a decoded JSON value's kind as encoding/json does in type
// errors.
func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return "null"
}

// decodeError maps encoding/json's errors to OpenAI's.
func decodeError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case respond.AsError(err) != nil:
		return respond.AsError(err)
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return respond.Invalid("", "", "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The API expects a JSON payload, but what was sent was not valid JSON.)")
	case errors.As(err, &typ):
		param := typ.Field
		e := respond.Invalid(param, "invalid_type", "Invalid type for '%s': expected %s, but got %s instead.",
			param, describeType(typ.Type), article(typ.Value))
		e.Kind, _, _ = strings.Cut(typ.Value, " ")
		return e
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return respond.Invalid(name, "unknown_parameter", "Unknown parameter: '%s'.", name)
	default:
		return respond.Invalid("", "", "We could not parse the JSON body of your request: %v", err)
	}
}

func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a decimal"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a different type"
}

// article turns encoding/json's value description ("string", "number 1.5")
// into "a string", "a number".
func article(v string) string {
	v, _, _ = strings.Cut(v, " ")
	switch v {
	case "object", "array":
		return "an " + v
	case "":
		return "a value of another type"
	}
	return "a " + v
}
