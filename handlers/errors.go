// Package handlers implements what each endpoint does: the /v1 API handlers
// (JSON in, OpenAI's exact shapes out) and, later, the web app's pages. It
// declares the small interfaces it needs from the store and the run engine.
package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/assistantd/assistantd/db"
)

// Error is an error the API reports to the client in OpenAI's envelope:
// {"error": {"message", "type", "param", "code"}}. Err, if set, is the
// underlying cause; it is logged, never shown.
type Error struct {
	Status  int
	Message string
	Type    string
	Param   string // "" serialises as null
	Code    string // "" serialises as null
	Err     error

	kind string // for invalid_type from encoding/json: the JSON kind received
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Status, e.Message, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// StatusCode lets Echo and the error handler read the status.
func (e *Error) StatusCode() int { return e.Status }

// MarshalJSON writes the envelope, with all four keys always present.
func (e *Error) MarshalJSON() ([]byte, error) {
	orNull := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	type body struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	return json.Marshal(struct {
		Error body `json:"error"`
	}{body{e.Message, e.Type, orNull(e.Param), orNull(e.Code)}})
}

// invalid returns a 400 invalid_request_error about param.
func invalid(param, code, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Code: code,
		Message: fmt.Sprintf(format, args...)}
}

// notFound returns OpenAI's 404 for an object kind ("assistant", "thread" …).
func notFound(kind, id string) *Error {
	return &Error{Status: http.StatusNotFound, Type: "invalid_request_error",
		Message: fmt.Sprintf("No %s found with id '%s'.", kind, id)}
}

// fileNotFound is OpenAI's own wording for a missing file.
func fileNotFound(id string) *Error {
	return &Error{Status: http.StatusNotFound, Type: "invalid_request_error", Param: "id",
		Message: "No such File object: " + id}
}

// Internal wraps an unexpected failure as a 500; the cause is logged with
// the request id and not shown to the client.
func Internal(err error) *Error {
	if db.IsInvalidText(err) {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error",
			Message: "Invalid text: a value contains a NUL character (\\u0000), which this server's database cannot store.", Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Type: "server_error",
		Message: "The server had an error while processing your request. Sorry about that!", Err: err}
}

// storeErr turns a store error into an API error: ErrNotFound becomes the
// 404 for kind/id, a bad cursor a 400, anything else a 500.
func storeErr(err error, kind, id string) error {
	var ce *db.CursorError
	switch {
	case err == nil:
		return nil
	case AsError(err) != nil:
		return AsError(err)
	case errors.Is(err, db.ErrNotFound):
		if kind == "file" {
			return fileNotFound(id)
		}
		return notFound(kind, id)
	case errors.As(err, &ce):
		return invalid(ce.Param, "invalid_value", "Invalid '%s': no object with id '%s' exists in this list.", ce.Param, ce.ID)
	default:
		return Internal(err)
	}
}
