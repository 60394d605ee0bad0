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
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
)

// maxBody bounds a JSON request body.
const maxBody = 32 << 20

// badRequest is a 400 invalid_request_error about param.
func badRequest(param, code, format string, args ...any) *respond.Error {
	return &respond.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Code: code,
		Message: fmt.Sprintf(format, args...)}
}

// notFoundError is a 404 in OpenAI's words for an object kind.
func notFoundError(kind, id string) *respond.Error {
	return &respond.Error{Status: http.StatusNotFound, Type: "invalid_request_error",
		Message: fmt.Sprintf("No %s found with id '%s'.", kind, id)}
}

// fromStore maps store errors: not found → 404 for kind/id, a bad cursor
// → 400, anything else → 500.
func fromStore(err error, kind, id string) error {
	var ce *db.CursorError
	switch {
	case err == nil:
		return nil
	case respond.AsError(err) != nil:
		return respond.AsError(err)
	case errors.Is(err, db.ErrNotFound):
		return notFoundError(kind, id)
	case errors.As(err, &ce):
		return badRequest(ce.Param, "invalid_value", "Invalid '%s': no object with id '%s' exists in this list.", ce.Param, ce.ID)
	}
	return respond.Internal(err)
}

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
		return nil, badRequest("", "", "Could not read the request body: %v", err)
	}
	body = bytes.TrimSpace(body)
	fields := map[string]json.RawMessage{}
	if len(body) == 0 {
		if allowEmpty {
			return fields, nil
		}
		return nil, badRequest("", "", "We could not parse the JSON body of your request. The API expects a JSON object in the request body, but the body was empty.")
	}
	if !json.Valid(body) {
		return nil, badRequest("", "", "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)")
	}
	if body[0] != '{' {
		return nil, badRequest("", "invalid_type", "Invalid type for request body: expected a JSON object.")
	}
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, badRequest("", "", "We could not parse the JSON body of your request.")
	}
	known := map[string]bool{}
	for _, k := range allowed {
		known[k] = true
	}
	for k := range fields {
		if !known[k] {
			return nil, badRequest(k, "unknown_parameter", "Unknown parameter: '%s'.", k)
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
		return badRequest(p, "invalid_type", "Invalid type for '%s': expected %s.", p, describe(te.Type.String()))
	}
	if got := valueKind(raw); !strings.HasPrefix(want, got) {
		return badRequest(path, "invalid_type", "Invalid type for '%s': expected %s, but got %s instead.", path, want, got)
	}
	return badRequest(path, "invalid_type", "Invalid type for '%s': expected %s.", path, want)
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

// pageParams reads limit (1–100, default 20), order (default desc) and
// after.
func pageParams(c *echo.Context) (db.ListParams, error) {
	p := db.ListParams{Limit: 20, Order: "desc", After: c.QueryParam("after")}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return p, badRequest("limit", "invalid_type", "Invalid 'limit': expected an integer, but got '%s' instead.", v)
		}
		if n < 1 || n > 100 {
			return p, badRequest("limit", "invalid_value", "Invalid 'limit': expected a value between 1 and 100, but got %d instead.", n)
		}
		p.Limit = n
	}
	switch o := c.QueryParam("order"); o {
	case "", "desc":
	case "asc":
		p.Order = "asc"
	default:
		return p, badRequest("order", "invalid_value", "Invalid value: '%s'. Supported values are: 'asc' and 'desc'.", o)
	}
	return p, nil
}
