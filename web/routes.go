package web

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v5"
)

// addRoutes is the route table: every route of the API and the web app.
func addRoutes(e *echo.Echo, cfg Config) {
	e.GET("/healthz", health(cfg.Health))

	api := cfg.API
	v1 := e.Group("/v1", apiHeaders, requireAPIKey(cfg.CheckKey), checkBeta)

	v1.GET("/assistants", api.ListAssistants)
	v1.POST("/assistants", api.CreateAssistant)
	v1.GET("/assistants/:assistant_id", api.GetAssistant)
	v1.POST("/assistants/:assistant_id", api.ModifyAssistant)
	v1.DELETE("/assistants/:assistant_id", api.DeleteAssistant)

	v1.POST("/threads", api.CreateThread)
	v1.GET("/threads/:thread_id", api.GetThread)
	v1.POST("/threads/:thread_id", api.ModifyThread)
	v1.DELETE("/threads/:thread_id", api.DeleteThread)

	v1.GET("/threads/:thread_id/messages", api.ListMessages)
	v1.POST("/threads/:thread_id/messages", api.CreateMessage)
	v1.GET("/threads/:thread_id/messages/:message_id", api.GetMessage)
	v1.POST("/threads/:thread_id/messages/:message_id", api.ModifyMessage)
	v1.DELETE("/threads/:thread_id/messages/:message_id", api.DeleteMessage)

	v1.GET("/files", api.ListFiles)
	v1.POST("/files", api.UploadFile)
	v1.GET("/files/:file_id", api.GetFile)
	v1.DELETE("/files/:file_id", api.DeleteFile)
	v1.GET("/files/:file_id/content", api.FileContent)

	// Anything else under /v1 is OpenAI's "Invalid URL" 404, after auth.
	v1.RouteNotFound("/*", func(c *echo.Context) error { return echo.ErrNotFound })
}

// health answers GET /healthz without a key: 200 when the store answers.
func health(check func(ctx context.Context) error) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if err := check(c.Request().Context()); err != nil {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
}
