// Package api serves the Responses and Conversations APIs under /v1, on
// the same engine and store as the Assistants API: a response is a run
// with its own wire format (see ../../../shared/design/RESPONSES.md).
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
)

// maxBody bounds a JSON request body.
const maxBody = 32 << 20

// readObject reads a JSON object body into fields by key, refusing keys
// not in allowed (OpenAI's unknown_parameter). An empty body is {} when
// allowEmpty.
func readObject(r *http.Request, allowed []string, allowEmpty bool) (map[string]json.RawMessage, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &respond.Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error",
				Message: fmt.Sprintf("Request body too large: the limit is %d bytes.", int64(maxBody))}
		}
		return nil, respond.Invalid("", "", "Could not read the request body: %v", err)
	}
	body = bytes.TrimSpace(body)
	fields := map[string]json.RawMessage{}
	if len(body) == 0 {
		if allowEmpty {
			return fields, nil
		}
		return nil, respond.Invalid("", "", "We could not parse the JSON body of your request. The API expects a JSON object in the request body, but the body was empty.")
	}
	if !json.Valid(body) {
		return nil, respond.Invalid("", "", "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)")
	}
	if body[0] != '{' {
		return nil, respond.Invalid("", "invalid_type", "Invalid type for request body: expected a JSON object.")
	}
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, respond.Invalid("", "", "We could not parse the JSON body of your request.")
	}
	known := map[string]bool{}
	for _, k := range allowed {
		known[k] = true
	}
	for k := range fields {
		if !known[k] {
			return nil, respond.Invalid(k, "unknown_parameter", "Unknown parameter: '%s'.", k)
		}
	}
	// JSON null is the same as leaving a field out.
	for k, v := range fields {
		if string(v) == "null" {
			delete(fields, k)
		}
	}
	return fields, nil
}

// field decodes fields[key] into v, if present; a value of the wrong type
// is OpenAI's invalid_type about key. It reports whether the key was set.
func field(fields map[string]json.RawMessage, key string, v any, want string) (bool, error) {
	raw, ok := fields[key]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, typeError(key, want, raw, err)
	}
	return true, nil
}

// typeError is OpenAI's invalid_type error for a value at path that did
// not decode: it names the member whose type is wrong when there is one.
func typeError(path, want string, raw json.RawMessage, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		p := path + "." + te.Field
		return respond.Invalid(p, "invalid_type", "Invalid type for '%s': expected %s.", p, describe(te.Type.String()))
	}
	if got := valueKind(raw); !strings.HasPrefix(want, got) {
		return respond.Invalid(path, "invalid_type", "Invalid type for '%s': expected %s, but got %s instead.", path, want, got)
	}
	return respond.Invalid(path, "invalid_type", "Invalid type for '%s': expected %s.", path, want)
}

// describe names a Go type as the JSON it decodes from.
func describe(goType string) string {
	switch {
	case goType == "string" || goType == "*string":
		return "a string"
	case goType == "bool" || goType == "*bool":
		return "a boolean"
	case strings.Contains(goType, "int") || strings.Contains(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return "an object"
}

// valueKind names a JSON value's type as OpenAI's messages do.
func valueKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// itemPage is a cursor list as the Responses and Conversations APIs return it.
type itemPage struct {
	Object  string            `json:"object"`
	Data    []json.RawMessage `json:"data"`
	FirstID *string           `json:"first_id"`
	LastID  *string           `json:"last_id"`
	HasMore bool              `json:"has_more"`
}

func newPage(p db.Page[json.RawMessage]) itemPage {
	out := itemPage{Object: "list", Data: p.Data, HasMore: p.HasMore}
	if out.Data == nil {
		out.Data = []json.RawMessage{}
	}
	if n := len(out.Data); n > 0 {
		first, last := itemIDOf(out.Data[0]), itemIDOf(out.Data[n-1])
		out.FirstID, out.LastID = &first, &last
	}
	return out
}

func itemIDOf(raw json.RawMessage) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &v)
	return v.ID
}
