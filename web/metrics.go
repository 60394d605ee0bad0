package web

import (
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/telemetry"
)

// observe reports every request's duration by route template (never the
// path, which holds ids), method and status, and counts the event streams
// open (a response whose Content-Type is text/event-stream).
func observe(m *telemetry.Metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			start := time.Now()
			streaming := false
			r, _ := echo.UnwrapResponse(c.Response())
			if r != nil {
				r.Before(func() {
					if strings.HasPrefix(r.Header().Get("Content-Type"), "text/event-stream") {
						streaming = true
						m.SSEOpened()
					}
				})
			}
			err := next(c)
			status := 0
			if r != nil {
				status = r.Status
			}
			route, method := c.Path(), c.Request().Method
			done := func() {
				if streaming {
					m.SSEClosed()
				}
				m.HTTPRequest(route, method, status, time.Since(start))
			}
			// A stream detached from net/http counts until it ends.
			if d := respond.DetachedOf(c); d != nil {
				d.OnEnd(done)
			} else {
				done()
			}
			return err
		}
	}
}
