package web

import (
	"strings"

	"github.com/assistantd/assistantd/handlers/ui"
	"github.com/labstack/echo/v5"
)

// webApp applies mw to the web app's requests only: not to /v1 (bearer
// keys, no cookies), /healthz or the static assets.
func webApp(mw echo.MiddlewareFunc) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		wrapped := mw(next)
		return func(c *echo.Context) error {
			p := c.Request().URL.Path
			if isAPIPath(p) || p == "/healthz" || p == "/readyz" || strings.HasPrefix(p, "/static/") {
				return next(c)
			}
			return wrapped(c)
		}
	}
}

// securityHeaders sets the web app's security headers.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		h := c.Response().Header()
		if h.Get("Content-Security-Policy") == "" {
			h.Set("Content-Security-Policy", ui.ContentSecurityPolicy)
		}
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if h.Get("Cache-Control") == "" {
			h.Set("Cache-Control", "no-store")
		}
		return next(c)
	}
}

// cacheAssets lets browsers keep versioned static assets (URLs carry
// ?v=<content hash>).
func cacheAssets(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		if c.QueryParam("v") != "" {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		return next(c)
	}
}
