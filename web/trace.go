package web

import (
	"strconv"

	"github.com/labstack/echo/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/telemetry"
)

// traceRequests gives every request a server span named by its method and
// route template, continuing the caller's trace when it sends a
// traceparent. The span is in the request's context, so a run created by
// the request keeps it as its trace. No header, query or body is recorded.
func traceRequests(tp trace.TracerProvider) echo.MiddlewareFunc {
	tracer := tp.Tracer("github.com/assistantd/assistantd/web")
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			req := c.Request()
			ctx := telemetry.Propagator.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
			ctx, span := tracer.Start(ctx, req.Method, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.request.method", req.Method), attribute.String("url.path", req.URL.Path)))
			defer func() {
				// A stream detached from net/http ends its span when it ends.
				if d := respond.DetachedOf(c); d != nil {
					d.OnEnd(func() { span.End() })
				} else {
					span.End()
				}
			}()
			c.SetRequest(req.WithContext(ctx))
			err := next(c)
			if route := c.Path(); route != "" {
				span.SetName(req.Method + " " + route)
				span.SetAttributes(attribute.String("http.route", route))
			}
			if r, _ := echo.UnwrapResponse(c.Response()); r != nil {
				span.SetAttributes(attribute.Int("http.response.status_code", r.Status))
				if r.Status >= 500 {
					span.SetAttributes(attribute.String("error.type", strconv.Itoa(r.Status)))
					span.SetStatus(codes.Error, "")
				}
			}
			return err
		}
	}
}
