package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/validate"
)

// The rules of request objects live in package validate, which the web
// app's forms call too. These adapters name a top-level parameter by a
// plain string, for the API's path and query parameters.

func checkLen(param string, s *string, max int) error {
	return validate.Len(validate.P(param), s, max)
}

func checkArrayLen(param string, n, max int) error {
	return validate.ArrayLen(validate.P(param), n, max)
}

func checkMetadata(param string, m db.Metadata) error {
	return validate.Metadata(validate.P(param), m)
}

func checkID(param, id, prefix string) error {
	return validate.ID(validate.P(param), id, prefix)
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

// checkFiles reports the first of ids that is malformed or names no file.
func (h *API) checkFiles(c *echo.Context, param string, ids []string) error {
	return validate.FileIDs(c.Request().Context(), h.store, pathOf(param), ids)
}

// checkFile is checkFiles for one id that param names by itself.
func (h *API) checkFile(c *echo.Context, param, id string) error {
	return validate.FileID(c.Request().Context(), h.store, pathOf(param), id)
}
