// Package web is assistantd's HTTP plumbing: the Echo server, the one route
// table, middleware (request ids, logging, panic recovery, API-key auth),
// and the single place where errors become responses.
package web

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/assistantd/assistantd/db"

	"github.com/assistantd/assistantd/handlers/api"
	"github.com/assistantd/assistantd/handlers/ui"
	"github.com/labstack/echo/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/assistantd/assistantd/telemetry"
)

// KeyChecker reports whether an API key may use /v1, and whom it speaks
// for.
type KeyChecker func(ctx context.Context, key string) (db.Principal, bool, error)

// Config holds what the server is built from.
type Config struct {
	API *api.API
	UI  *ui.UI // the web app; nil serves the API only
	// Webhooks serves the webhook extension under /v1/assistants; nil
	// leaves it out.
	Webhooks *api.Webhooks
	// Responses serves the Responses and Conversations APIs; nil leaves
	// them out.
	Responses *api.Responses
	// Containers serves /v1/containers; nil leaves them out.
	Containers *api.Containers
	CheckKey   KeyChecker
	// Organization serves the Admin API under /v1/organization, to keys
	// CheckAdminKey accepts; nil leaves it out.
	Organization  *api.Organization
	CheckAdminKey AdminKeyChecker
	Health        func(ctx context.Context) error
	// Ready are the parts /readyz reports beside the store, each saying
	// what keeps it from working ("" when it works).
	Ready  map[string]func() string
	Logger *slog.Logger
	// TrustProxy makes X-Forwarded-Proto: https from a reverse proxy count
	// as TLS (for HSTS), as --trust-proxy does for the web app's cookies.
	TrustProxy bool
	// Metrics, when set, learns every request's route, status and
	// duration. The metrics are served on their own listener, never here.
	Metrics *telemetry.Metrics
	// HealthOnly serves /healthz and /readyz only: a replica that executes
	// runs and serves no API or web app (--role worker).
	HealthOnly bool
	// Tracer, when set, gives every request a server span.
	Tracer trace.TracerProvider
}

// New returns the HTTP handler serving the API and the web app.
func New(cfg Config) http.Handler {
	e := echo.New()
	e.Logger = cfg.Logger
	e.HTTPErrorHandler = errorHandler(cfg.Logger, cfg.UI)
	e.JSONSerializer = jsonSerializer{}
	if cfg.Tracer != nil {
		e.Use(traceRequests(cfg.Tracer))
	}
	if cfg.Metrics != nil {
		e.Use(observe(cfg.Metrics)) // outside logRequests: sees the status its error rendering wrote
	}
	e.Use(requestID, hsts(cfg.TrustProxy), logRequests(cfg.Logger), recoverPanics)
	if cfg.UI != nil {
		e.Use(webApp(securityHeaders), webApp(cfg.UI.Session))
	}
	addRoutes(e, cfg)
	return e
}
