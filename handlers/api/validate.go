package api

import (
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

// checkFiles reports the first of ids that is malformed or names no file.
func (h *API) checkFiles(c *echo.Context, param string, ids []string) error {
	return validate.FileIDs(c.Request().Context(), h.store, pathOf(param), ids)
}

// checkFile is checkFiles for one id that param names by itself.
func (h *API) checkFile(c *echo.Context, param, id string) error {
	return validate.FileID(c.Request().Context(), h.store, pathOf(param), id)
}
