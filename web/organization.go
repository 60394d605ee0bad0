package web

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
)

// AdminKeyChecker reports whether a key is an admin key in force: the
// configured --admin-key or one made in the web app.
type AdminKeyChecker func(ctx context.Context, key string) (bool, error)

// addOrganizationRoutes is the Admin API's part of the route table. Its
// routes take admin keys only: a project's key there is refused as OpenAI
// refused keys without the management scope, and an admin key opens
// nothing else under /v1.
func addOrganizationRoutes(e *echo.Echo, cfg Config) {
	o := cfg.Organization
	if o == nil {
		return
	}
	org := e.Group("/v1/organization", apiHeaders, requireAdminKey(cfg.CheckAdminKey, cfg.CheckKey))

	org.GET("/projects", o.ListProjects)
	org.POST("/projects", o.CreateProject)
	org.GET("/projects/:project_id", o.GetProject)
	org.POST("/projects/:project_id", o.ModifyProject)
	org.POST("/projects/:project_id/archive", o.ArchiveProject)

	org.GET("/projects/:project_id/api_keys", o.ListAPIKeys)
	org.GET("/projects/:project_id/api_keys/:key_id", o.GetAPIKey)
	org.DELETE("/projects/:project_id/api_keys/:key_id", o.DeleteAPIKey)

	org.GET("/projects/:project_id/service_accounts", o.ListServiceAccounts)
	org.POST("/projects/:project_id/service_accounts", o.CreateServiceAccount)
	org.GET("/projects/:project_id/service_accounts/:service_account_id", o.GetServiceAccount)
	org.DELETE("/projects/:project_id/service_accounts/:service_account_id", o.DeleteServiceAccount)

	org.GET("/projects/:project_id/users", o.ListProjectUsers)
	org.POST("/projects/:project_id/users", o.AddProjectUser)
	org.GET("/projects/:project_id/users/:user_id", o.GetProjectUser)
	org.POST("/projects/:project_id/users/:user_id", o.ModifyProjectUser)
	org.DELETE("/projects/:project_id/users/:user_id", o.DeleteProjectUser)

	org.GET("/projects/:project_id/rate_limits", o.ListRateLimits)
	org.POST("/projects/:project_id/rate_limits/:rate_limit_id", o.UpdateRateLimit)

	org.GET("/projects/:project_id/model_permissions", o.GetModelPermissions)
	org.POST("/projects/:project_id/model_permissions", o.UpdateModelPermissions)
	org.DELETE("/projects/:project_id/model_permissions", o.DeleteModelPermissions)

	org.GET("/projects/:project_id/hosted_tool_permissions", o.GetHostedToolPermissions)
	org.POST("/projects/:project_id/hosted_tool_permissions", o.UpdateHostedToolPermissions)

	// An assistantd extension: the project's own upstream.
	org.GET("/projects/:project_id/upstream", o.GetUpstream)
	org.POST("/projects/:project_id/upstream", o.SetUpstream)
	org.DELETE("/projects/:project_id/upstream", o.DeleteUpstream)

	org.RouteNotFound("/*", func(c *echo.Context) error { return echo.ErrNotFound })
}

// insufficientPermissions is OpenAI's answer to a key without the scope a
// request needs.
func insufficientPermissions(scope string) error {
	return &respond.Error{Status: http.StatusUnauthorized, Type: "invalid_request_error",
		Message: "You have insufficient permissions for this operation. Missing scopes: " + scope + ". " +
			"Check that you have the correct role in your organization (Owner), and if you're using a restricted API key, that it has the necessary scopes."}
}

// requireAdminKey demands an admin key on /v1/organization. A project's
// key is refused as lacking the management scope; anything else is an
// incorrect key.
func requireAdminKey(admin AdminKeyChecker, project KeyChecker) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			key, err := bearerKey(c)
			if err != nil {
				return err
			}
			ctx := c.Request().Context()
			if admin != nil {
				valid, err := admin(ctx, key)
				if err != nil {
					return respond.Internal(err)
				}
				if valid {
					return next(c)
				}
			}
			if project != nil {
				if _, valid, err := project(ctx, key); err != nil {
					return respond.Internal(err)
				} else if valid {
					scope := "api.management.read"
					if m := c.Request().Method; m != http.MethodGet && m != http.MethodHead {
						scope = "api.management.write"
					}
					return insufficientPermissions(scope)
				}
			}
			return authError("Incorrect API key provided: " + redactKey(key) + ".")
		}
	}
}

// readOnlyKeys refuses a read-only key anything but reading: a method
// other than GET or HEAD, or a WebSocket (which creates responses over a
// GET).
func readOnlyKeys(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		r := c.Request()
		p, ok := db.PrincipalFrom(r.Context())
		if ok && p.ReadOnly && (r.Method != http.MethodGet && r.Method != http.MethodHead || strings.EqualFold(r.Header.Get("Upgrade"), "websocket")) {
			return insufficientPermissions("api.write")
		}
		return next(c)
	}
}

// rateHeaders gives a response the x-ratelimit-* headers of its project's
// limit on the model it used, when the engine checked one (see
// agent.Engine.admit), and Retry-After with a 429.
func rateHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		ctx, note := db.WithRateNote(c.Request().Context())
		c.SetRequest(c.Request().WithContext(ctx))
		if res, err := echo.UnwrapResponse(c.Response()); err == nil {
			res.Before(func() {
				st, ok := note.State()
				if !ok {
					return
				}
				h := res.Header()
				reset := st.Reset.Round(time.Millisecond).String()
				if st.LimitRequests > 0 {
					h.Set("X-Ratelimit-Limit-Requests", strconv.FormatInt(st.LimitRequests, 10))
					h.Set("X-Ratelimit-Remaining-Requests", strconv.FormatInt(st.RemainingRequests, 10))
					h.Set("X-Ratelimit-Reset-Requests", reset)
				}
				if st.LimitTokens > 0 {
					h.Set("X-Ratelimit-Limit-Tokens", strconv.FormatInt(st.LimitTokens, 10))
					h.Set("X-Ratelimit-Remaining-Tokens", strconv.FormatInt(st.RemainingTokens, 10))
					h.Set("X-Ratelimit-Reset-Tokens", reset)
				}
				if st.Refused != "" {
					h.Set("Retry-After", strconv.Itoa(int(math.Ceil(st.Reset.Seconds()))))
					h.Set("Retry-After-Ms", fmt.Sprint(st.Reset.Milliseconds()))
				}
			})
		}
		return next(c)
	}
}
