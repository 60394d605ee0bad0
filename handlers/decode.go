package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// maxJSONBody bounds a JSON request body. The largest legitimate bodies
// (instructions of 256,000 characters, 32 messages of 256,000 characters
// each when creating a thread) stay well below it.
const maxJSONBody = 32 << 20

// Opt is a request field that distinguishes absent, null and a value, which
// modify endpoints need ("name": null clears the name; no "name" keeps it).
type Opt[T any] struct {
	Set  bool // the field was present
	Null bool // it was JSON null
	V    T
}

// UnmarshalJSON records presence and decodes strictly (unknown nested
// fields are errors, as they are at the top level).
func (o *Opt[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Null = true
		var zero T
		o.V = zero
		return nil
	}
	return strictUnmarshal(b, &o.V)
}

// Ptr returns the value's address, or nil when absent or null.
func (o Opt[T]) Ptr() *T {
	if !o.Set || o.Null {
		return nil
	}
	v := o.V
	return &v
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// decodeBody decodes a JSON object request body into v, rejecting unknown
// parameters and wrong types with OpenAI's messages. An empty body decodes
// as {} when allowEmpty (POST /threads, cancel).
func decodeBody(r *http.Request, v any, allowEmpty bool) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxJSONBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error",
				Message: fmt.Sprintf("Request body too large: the limit is %d bytes.", int64(maxJSONBody))}
		}
		return invalid("", "", "Could not read the request body: %v", err)
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		if allowEmpty {
			return nil
		}
		return invalid("", "", "We could not parse the JSON body of your request. The API expects a JSON object in the request body, but the body was empty.")
	}
	// The decoder stops after the first value, so check the whole body:
	// `{"model":"m"} x` is malformed, not a create request with junk after it.
	if !json.Valid(body) {
		return decodeError(io.ErrUnexpectedEOF)
	}
	if body[0] != '{' {
		return invalid("", "invalid_type", "Invalid type for request body: expected a JSON object.")
	}
	if err := strictUnmarshal(body, v); err != nil {
		return decodeError(err)
	}
	return nil
}

// decodeError maps encoding/json's errors to OpenAI's.
func decodeError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		ae  *Error
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "", "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The API expects a JSON payload, but what was sent was not valid JSON.)")
	case errors.As(err, &typ):
		param := typ.Field
		return invalid(param, "invalid_type", "Invalid type for '%s': expected %s, but got %s instead.",
			param, describeType(typ.Type), article(typ.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return invalid(name, "unknown_parameter", "Unknown parameter: '%s'.", name)
	default:
		return invalid("", "", "We could not parse the JSON body of your request: %v", err)
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
