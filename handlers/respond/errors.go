// Package respond holds what the API and the web app both send back: the
// typed error every handler returns (which web's error handler renders as
// OpenAI's envelope under /v1 and as a page or fragment elsewhere), the
// mapping of store, engine and validation errors onto it, and the
// Server-Sent Events writer both surfaces stream with.
package respond

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/validate"
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

	// Kind is, for invalid_type from encoding/json, the JSON kind
	// received; never shown.
	Kind string
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

// Invalid returns a 400 invalid_request_error about param.
func Invalid(param, code, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Code: code,
		Message: fmt.Sprintf(format, args...)}
}

// NotFound returns OpenAI's 404 for an object kind ("assistant", "thread" …).
func NotFound(kind, id string) *Error {
	return &Error{Status: http.StatusNotFound, Type: "invalid_request_error",
		Message: fmt.Sprintf("No %s found with id '%s'.", kind, id)}
}

// FileNotFound is OpenAI's own wording for a missing file.
func FileNotFound(id string) *Error {
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

// StoreErr turns a store error into an API error: ErrNotFound becomes the
// 404 for kind/id, a bad cursor a 400, anything else a 500.
func StoreErr(err error, kind, id string) error {
	var ce *db.CursorError
	switch {
	case err == nil:
		return nil
	case AsError(err) != nil:
		return AsError(err)
	case errors.Is(err, db.ErrNotFound):
		if kind == "file" {
			return FileNotFound(id)
		}
		return NotFound(kind, id)
	case errors.As(err, &ce):
		return Invalid(ce.Param, "invalid_value", "Invalid '%s': no object with id '%s' exists in this list.", ce.Param, ce.ID)
	default:
		return Internal(err)
	}
}

// RunErr maps engine and store errors of run operations: a request the
// engine refused, a thread's active run, a run that changed status under
// the request, else as StoreErr for the run.
func RunErr(err error, runID string) error {
	var re *agent.RequestError
	var ar *db.ActiveRunError
	var rl *agent.RateLimitError
	switch {
	case errors.As(err, &rl):
		return &Error{Status: http.StatusTooManyRequests, Type: rl.State.Refused, Code: "rate_limit_exceeded", Message: rl.Error()}
	case errors.As(err, &re):
		return Invalid(re.Param, re.Code, "%s", re.Message)
	case errors.As(err, &ar):
		if ar.RunID == "" {
			return Invalid("", "", "Thread %s already has an active run.", ar.ThreadID)
		}
		return Invalid("", "", "Thread %s already has an active run %s.", ar.ThreadID, ar.RunID)
	case errors.Is(err, db.ErrIllegalTransition):
		return Invalid("", "invalid_state", "The run changed status while the request was processed; retrieve it and try again.")
	}
	return StoreErr(err, "run", runID)
}

// fromValidation turns validation's problems into the API's 400: the
// first problem, as OpenAI reported one, with its path as the param.
func fromValidation(err error) (*Error, bool) {
	es, ok := validate.List(err)
	if !ok {
		return nil, false
	}
	e := es[0]
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: e.Path.String(), Code: e.Code,
		Message: e.Message, Err: err}, true
}

// AsError returns err as the API's error when it is one (an *Error or a
// validation problem), else nil.
func AsError(err error) *Error {
	if ae, ok := fromValidation(err); ok {
		return ae
	}
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	return nil
}
