package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/labstack/echo/v5"
	"go.opentelemetry.io/otel/trace"
)

const requestIDKey = "request_id"

// requestID gives every response an x-request-id (req_ + 32 hex digits),
// which the SDKs surface as _request_id / error.requestID, and which every
// log line about the request carries.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		id := newRequestID()
		c.Set(requestIDKey, id)
		c.Response().Header().Set("X-Request-Id", id)
		return next(c)
	}
}

// newRequestID returns req_ and 32 random hex digits.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

// recoverPanics turns a panic in a handler into a logged 500.
func recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				err = respond.Internal(fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
			}
		}()
		return next(c)
	}
}

// logRequests logs one line per request. Errors are rendered here, inside
// the chain, so the logged status is the one the client saw.
func logRequests(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			start := time.Now()
			logRequest(log, c, start, next(c))
			return nil
		}
	}
}

// logRequest renders err, if any, and logs the request. It is a function
// of its own so that the middleware's frame, beneath every open stream,
// stays small.
func logRequest(log *slog.Logger, c *echo.Context, start time.Time, err error) {
	if err != nil {
		c.Echo().HTTPErrorHandler(c, err)
	}
	status := 0
	if r, _ := echo.UnwrapResponse(c.Response()); r != nil {
		status = r.Status
	}
	req := c.Request()
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	attrs := []any{"method", req.Method, "path", req.URL.Path, "status", status,
		"duration_ms", int64(0), "request_id", c.Get(requestIDKey)}
	if err != nil && status >= 500 {
		attrs = append(attrs, "error", err.Error())
	}
	// The log line keeps the request's span, not its context: a detached
	// stream's line is written later, and the request (its connection's
	// buffers included) must not stay reachable until then.
	ctx := trace.ContextWithSpanContext(context.Background(), trace.SpanContextFromContext(req.Context()))
	done := func() {
		attrs[7] = time.Since(start).Milliseconds()
		log.Log(ctx, level, "request", attrs...)
	}
	// A stream detached from net/http is logged when it ends.
	if d := respond.DetachedOf(c); d != nil {
		d.OnEnd(done)
		return
	}
	done()
}

// hstsValue keeps browsers on https for a year once they have seen it
// there. It leaves out includeSubDomains: other sites on the same domain
// are not ours to move to https.
const hstsValue = "max-age=31536000"

// hsts sends Strict-Transport-Security on every response that reached us
// over TLS: directly, or through a trusted proxy (--trust-proxy) that says
// X-Forwarded-Proto: https. Over plain HTTP it is never sent (browsers
// ignore it there, and it would be wrong for a local http:// server).
func hsts(trustProxy bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			r := c.Request()
			if r.TLS != nil || trustProxy && strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https") {
				c.Response().Header().Set("Strict-Transport-Security", hstsValue)
			}
			return next(c)
		}
	}
}

// apiHeaders marks /v1 responses as not cacheable.
func apiHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-store")
		return next(c)
	}
}

// requireAPIKey demands "Authorization: Bearer <key>" on /v1.
func requireAPIKey(check KeyChecker) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			key, err := bearerKey(c)
			if err != nil {
				return err
			}
			who, valid, err := check(c.Request().Context(), key)
			if err != nil {
				return respond.Internal(err)
			}
			if !valid {
				return authError("Incorrect API key provided: " + redactKey(key) + ".")
			}
			// The SDKs send OpenAI-Project from OPENAI_PROJECT_ID; a key
			// only ever speaks for its own project. OpenAI-Organization is
			// accepted and ignored: one deployment is one organization.
			if want := strings.TrimSpace(c.Request().Header.Get("OpenAI-Project")); want != "" && want != who.ProjectID {
				return &respond.Error{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "mismatched_project",
					Message: "OpenAI-Project header should match project for API key"}
			}
			c.SetRequest(c.Request().WithContext(db.WithPrincipal(c.Request().Context(), who)))
			return next(c)
		}
	}
}

// bearerKey returns the key of "Authorization: Bearer <key>", or the
// 401 for a missing or malformed header.
func bearerKey(c *echo.Context) (string, error) {
	auth := c.Request().Header.Get("Authorization")
	scheme, key, ok := strings.Cut(auth, " ")
	key = strings.TrimSpace(key)
	if auth == "" {
		return "", authError("You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
		return "", authError("Malformed Authorization header: expected 'Bearer YOUR_KEY'.")
	}
	return key, nil
}

func authError(msg string) error {
	return &respond.Error{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key", Message: msg}
}

// redactKey shows only the ends of a key, as OpenAI did.
func redactKey(k string) string {
	if len(k) <= 8 {
		return strings.Repeat("*", len(k))
	}
	return k[:3] + strings.Repeat("*", min(len(k)-7, 20)) + k[len(k)-4:]
}

// checkBeta rejects the retired v1 Assistants beta. The SDKs send
// "OpenAI-Beta: assistants=v2" on /assistants, /threads and /vector_stores;
// a request without the header (curl, say) is served as v2.
func checkBeta(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if err := betaErr(c.Request().Header); err != nil {
			return err
		}
		return next(c)
	}
}

// betaErr checks the OpenAI-Beta header (apart from checkBeta, whose
// frame stays beneath every open stream).
func betaErr(h http.Header) error {
	for _, v := range h.Values("OpenAI-Beta") {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if strings.HasPrefix(part, "assistants=") && part != "assistants=v2" {
				return &respond.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_beta",
					Message: fmt.Sprintf("Invalid 'OpenAI-Beta' header value '%s': this server implements the Assistants API v2. Set 'OpenAI-Beta: assistants=v2'.", part)}
			}
		}
	}
	return nil
}
