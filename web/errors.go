package web

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/ui"
	"github.com/labstack/echo/v5"
)

// errorHandler renders every error a handler or middleware returns. Under
// /v1 that is OpenAI's envelope with the right status; a stream that has
// already started (committed response) cannot change its status, so the
// error is only logged.
//
// Elsewhere the web app renders the error: a page, or for htmx requests a
// fragment (ui is nil when only the API is served: then plain text).
//
// 5xx are logged once, with the request, by logRequests.
func errorHandler(log *slog.Logger, ui *ui.UI) echo.HTTPErrorHandler {
	return func(c *echo.Context, err error) {
		if r, _ := echo.UnwrapResponse(c.Response()); r != nil && r.Committed {
			log.Warn("error after response was committed", "error", err, "request_id", c.Get(requestIDKey))
			return
		}
		// A body cut off for arriving too slowly is the answer, whatever
		// the handler made of the short read. With a body left unread (a
		// 401 before the upload, say) the connection closes after this
		// response: the answer goes out at once instead of after net/http
		// has read the body, so a client cannot stall it by declaring a
		// body it never sends (withLimits bounds what is read after).
		unread, slow := bodyState(c.Request())
		if slow {
			err = slowBodyError()
		}
		if unread {
			c.Response().Header().Set("Connection", "close")
		}
		ae, noRoute := apiError(c, err)
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(ae.Status)
			return
		}
		if !isAPIPath(c.Request().URL.Path) {
			if ui == nil {
				_ = c.String(ae.Status, ae.Message)
				return
			}
			msg := ae.Message
			if noRoute {
				msg = "There is no page at " + c.Request().URL.Path + "."
			}
			id, _ := c.Get(requestIDKey).(string)
			if err := ui.RenderError(c, ae.Status, msg, id); err != nil {
				log.Warn("render error page", "error", err)
			}
			return
		}
		_ = c.JSON(ae.Status, ae)
	}
}

func isAPIPath(p string) bool { return p == "/v1" || strings.HasPrefix(p, "/v1/") }

// apiError converts any error into the API's typed error; noRoute reports
// that no route matched (OpenAI's "Invalid URL").
func apiError(c *echo.Context, err error) (ae *respond.Error, noRoute bool) {
	if ae := respond.AsError(err); ae != nil {
		return ae, false
	}
	req := c.Request()
	var he *echo.HTTPError
	status := http.StatusInternalServerError
	var sc echo.HTTPStatusCoder
	if errors.As(err, &sc) && sc.StatusCode() != 0 {
		status = sc.StatusCode()
	}
	switch {
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		return &respond.Error{Status: http.StatusNotFound, Type: "invalid_request_error",
			Message: "Invalid URL (" + req.Method + " " + req.URL.Path + ")"}, true
	case status >= 500:
		return respond.Internal(err), false
	case errors.As(err, &he):
		return &respond.Error{Status: status, Type: "invalid_request_error", Message: he.Message}, false
	default:
		return &respond.Error{Status: status, Type: "invalid_request_error", Message: http.StatusText(status)}, false
	}
}
