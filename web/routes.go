package web

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/ui"
	"github.com/assistantd/assistantd/static"
)

// addRoutes is the route table: every route of the API and the web app.
func addRoutes(e *echo.Echo, cfg Config) {
	e.GET("/healthz", health(cfg.Health))
	e.GET("/readyz", ready(cfg.Health, cfg.Ready))
	if cfg.HealthOnly {
		return // a worker replica (--role worker)
	}

	api := cfg.API
	addOrganizationRoutes(e, cfg) // /v1/organization: admin keys only
	v1 := e.Group("/v1", apiHeaders, requireAPIKey(cfg.CheckKey), readOnlyKeys, rateHeaders, checkBeta)

	v1.GET("/assistants", api.ListAssistants)
	v1.POST("/assistants", api.CreateAssistant)
	v1.GET("/assistants/:assistant_id", api.GetAssistant)
	v1.POST("/assistants/:assistant_id", api.ModifyAssistant)
	v1.DELETE("/assistants/:assistant_id", api.DeleteAssistant)
	v1.GET("/assistants/:assistant_id/versions", api.ListAssistantVersions) // extension: the history of an assistant
	v1.GET("/assistants/:assistant_id/versions/:version", api.GetAssistantVersion)
	if wh := cfg.Webhooks; wh != nil { // an assistantd extension: functions answered by webhooks
		v1.GET("/assistants/:assistant_id/webhooks", wh.ListWebhooks)
		v1.PUT("/assistants/:assistant_id/webhooks/:function_name", wh.PutWebhook)
		v1.DELETE("/assistants/:assistant_id/webhooks/:function_name", wh.DeleteWebhook)
	}

	v1.POST("/threads", api.CreateThread)
	v1.GET("/threads/:thread_id", api.GetThread)
	v1.POST("/threads/:thread_id", api.ModifyThread)
	v1.DELETE("/threads/:thread_id", api.DeleteThread)

	v1.GET("/threads/:thread_id/messages", api.ListMessages)
	v1.POST("/threads/:thread_id/messages", api.CreateMessage)
	v1.GET("/threads/:thread_id/messages/:message_id", api.GetMessage)
	v1.POST("/threads/:thread_id/messages/:message_id", api.ModifyMessage)
	v1.DELETE("/threads/:thread_id/messages/:message_id", api.DeleteMessage)

	v1.POST("/threads/runs", api.CreateThreadAndRun)
	v1.GET("/threads/:thread_id/runs", api.ListRuns)
	v1.POST("/threads/:thread_id/runs", api.CreateRun)
	v1.GET("/threads/:thread_id/runs/:run_id", api.GetRun)
	v1.POST("/threads/:thread_id/runs/:run_id", api.ModifyRun)
	v1.POST("/threads/:thread_id/runs/:run_id/cancel", api.CancelRun)
	v1.POST("/threads/:thread_id/runs/:run_id/submit_tool_outputs", api.SubmitToolOutputs)
	v1.GET("/threads/:thread_id/runs/:run_id/steps", api.ListRunSteps)
	v1.GET("/threads/:thread_id/runs/:run_id/steps/:step_id", api.GetRunStep)

	v1.GET("/models", api.ListModels)

	v1.GET("/files", api.ListFiles)
	v1.POST("/files", api.UploadFile)
	v1.GET("/files/:file_id", api.GetFile)
	v1.DELETE("/files/:file_id", api.DeleteFile)
	v1.GET("/files/:file_id/content", api.FileContent)

	v1.GET("/vector_stores", api.ListVectorStores)
	v1.POST("/vector_stores", api.CreateVectorStore)
	v1.GET("/vector_stores/:vector_store_id", api.GetVectorStore)
	v1.POST("/vector_stores/:vector_store_id", api.ModifyVectorStore)
	v1.DELETE("/vector_stores/:vector_store_id", api.DeleteVectorStore)
	v1.GET("/vector_stores/:vector_store_id/files", api.ListVectorStoreFiles)
	v1.POST("/vector_stores/:vector_store_id/files", api.CreateVectorStoreFile)
	v1.GET("/vector_stores/:vector_store_id/files/:file_id", api.GetVectorStoreFile)
	v1.POST("/vector_stores/:vector_store_id/files/:file_id", api.UpdateVectorStoreFile)
	v1.DELETE("/vector_stores/:vector_store_id/files/:file_id", api.DeleteVectorStoreFile)
	v1.GET("/vector_stores/:vector_store_id/files/:file_id/content", api.VectorStoreFileContent)
	v1.POST("/vector_stores/:vector_store_id/file_batches", api.CreateFileBatch)
	v1.GET("/vector_stores/:vector_store_id/file_batches/:batch_id", api.GetFileBatch)
	v1.POST("/vector_stores/:vector_store_id/file_batches/:batch_id/cancel", api.CancelFileBatch)
	v1.GET("/vector_stores/:vector_store_id/file_batches/:batch_id/files", api.ListBatchFiles)
	v1.POST("/vector_stores/:vector_store_id/search", api.SearchVectorStore)

	v1.POST("/uploads", api.CreateUpload)
	v1.POST("/uploads/:upload_id/parts", api.AddUploadPart)
	v1.POST("/uploads/:upload_id/complete", api.CompleteUpload)
	v1.POST("/uploads/:upload_id/cancel", api.CancelUpload)

	if rs := cfg.Responses; rs != nil {
		v1.POST("/responses", rs.CreateResponse)
		v1.GET("/responses", rs.ResponsesSocket) // WebSocket mode
		v1.POST("/responses/input_tokens", rs.CountInputTokens)
		v1.POST("/responses/compact", rs.CompactResponse)
		v1.GET("/responses/:response_id", rs.GetResponse)
		v1.DELETE("/responses/:response_id", rs.DeleteResponse)
		v1.POST("/responses/:response_id/cancel", rs.CancelResponse)
		v1.GET("/responses/:response_id/input_items", rs.ListInputItems)

		v1.POST("/conversations", rs.CreateConversation)
		v1.GET("/conversations/:conversation_id", rs.GetConversation)
		v1.POST("/conversations/:conversation_id", rs.UpdateConversation)
		v1.DELETE("/conversations/:conversation_id", rs.DeleteConversation)
		v1.GET("/conversations/:conversation_id/items", rs.ListConversationItems)
		v1.POST("/conversations/:conversation_id/items", rs.AddConversationItems)
		v1.GET("/conversations/:conversation_id/items/:item_id", rs.GetConversationItem)
		v1.DELETE("/conversations/:conversation_id/items/:item_id", rs.DeleteConversationItem)
		v1.POST("/threads/:thread_id/conversation", rs.ThreadToConversation) // extension: a thread continued as a conversation
	}
	if cs := cfg.Containers; cs != nil {
		v1.GET("/containers", cs.ListContainers)
		v1.POST("/containers", cs.CreateContainer)
		v1.GET("/containers/:container_id", cs.GetContainer)
		v1.DELETE("/containers/:container_id", cs.DeleteContainer)
		v1.GET("/containers/:container_id/files", cs.ListContainerFiles)
		v1.POST("/containers/:container_id/files", cs.CreateContainerFile)
		v1.GET("/containers/:container_id/files/:file_id", cs.GetContainerFile)
		v1.DELETE("/containers/:container_id/files/:file_id", cs.DeleteContainerFile)
		v1.GET("/containers/:container_id/files/:file_id/content", cs.ContainerFileContent)
	}

	// Anything else under /v1 is OpenAI's "Invalid URL" 404, after auth.
	v1.RouteNotFound("/*", func(c *echo.Context) error { return echo.ErrNotFound })

	if cfg.UI != nil {
		addUIRoutes(e, cfg.UI)
	}
}

// addUIRoutes is the web app's part of the route table. Every page needs
// a signed-in user. Project pages need a project the person belongs to
// (signedIn), and every state-changing one names the role it needs in the
// current project (viewers read and change nothing; owners manage members
// and keys; instance admins act as owners everywhere). Users, projects and
// the server's settings are for instance admins. Sessions, CSRF and the
// security headers apply to all of them (see New).
func addUIRoutes(e *echo.Echo, ui *ui.UI) {
	account := ui.RequireUser // pages of one's own account: people in no project too
	signedIn := ui.RequireMember
	editor := ui.RequireRole(db.ProjectEditor)
	owner := ui.RequireRole(db.ProjectOwner)
	admin := ui.RequireAdmin

	e.GET("/static/chroma.css", ui.ChromaCSS)
	e.StaticFS("/static", static.FS, cacheAssets)
	e.GET("/favicon.ico", func(c *echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/static/favicon.svg") })

	e.GET("/", ui.Home)
	e.GET("/login", ui.ShowLogin)
	e.POST("/login", ui.Login)
	e.POST("/logout", ui.Logout)
	e.GET("/setup", ui.ShowSetup)
	e.POST("/setup", ui.Setup)

	e.GET("/assistants", ui.Assistants, signedIn)
	e.GET("/assistants/new", ui.NewAssistant, editor)
	e.POST("/assistants/new", ui.CreateAssistant, editor)
	e.POST("/assistants/functions/check", ui.CheckFunction, editor)
	e.POST("/assistants/schema/check", ui.CheckSchema, editor)
	e.GET("/assistants/:assistant_id", ui.ShowAssistant, signedIn)
	e.POST("/assistants/:assistant_id", ui.UpdateAssistant, editor)
	e.POST("/assistants/:assistant_id/duplicate", ui.DuplicateAssistant, editor)
	e.GET("/assistants/:assistant_id/history", ui.AssistantHistory, signedIn)
	e.POST("/assistants/:assistant_id/versions/:version/restore", ui.RestoreAssistantVersion, editor)
	e.POST("/assistants/:assistant_id/delete", ui.DeleteAssistant, editor)
	e.GET("/assistants/:assistant_id/tools.json", ui.ExportTools, signedIn)
	e.POST("/assistants/:assistant_id/webhooks/:function_name", ui.SaveWebhook, editor)
	e.POST("/assistants/:assistant_id/webhooks/:function_name/test", ui.TestWebhook, editor)
	e.POST("/assistants/:assistant_id/webhooks/:function_name/delete", ui.DeleteWebhook, editor)

	e.GET("/threads", ui.Threads, signedIn)
	e.GET("/threads/:thread_id", ui.ShowThread, signedIn)
	e.GET("/threads/:thread_id/export.json", ui.ExportThread, signedIn)
	e.GET("/threads/:thread_id/export.md", ui.ExportThread, signedIn)
	e.POST("/threads/:thread_id/delete", ui.DeleteThread, editor)
	e.POST("/threads/:thread_id/messages", ui.AddMessage, editor)
	e.POST("/threads/:thread_id/runs/:run_id/outputs", ui.SubmitOutputs, editor)
	e.POST("/threads/:thread_id/runs/:run_id/cancel", ui.CancelRun, editor)
	e.POST("/threads/:thread_id/runs/:run_id/retry", ui.RetryRun, editor)
	e.GET("/threads/:thread_id/events", ui.ThreadEvents, signedIn)
	e.GET("/threads/:thread_id/live", ui.LiveFragment, signedIn)
	e.GET("/threads/:thread_id/exchanges/:exchange_id", ui.ShowExchange, signedIn)
	e.GET("/playground", ui.Playground, signedIn)
	e.POST("/playground", ui.PlaygroundPost, editor)
	e.GET("/playground/conversations/:conversation_id/live", ui.ConversationLive, signedIn)
	e.GET("/playground/compare", ui.Compare, signedIn)
	e.POST("/playground/compare", ui.StartCompare, editor)
	e.POST("/playground/compare/keep", ui.KeepCompare, editor)

	e.GET("/files", ui.Files, signedIn)
	e.POST("/files", ui.UploadFiles, editor)
	e.GET("/files/:file_id/download", ui.DownloadFile, signedIn)
	e.GET("/files/:file_id/content", ui.DownloadFile, signedIn)
	e.POST("/files/:file_id/delete", ui.DeleteFile, editor)

	e.GET("/vector_stores", ui.VectorStores, signedIn)
	e.POST("/vector_stores", ui.CreateVectorStore, editor)
	e.GET("/vector_stores/:vector_store_id", ui.ShowVectorStore, signedIn)
	e.POST("/vector_stores/:vector_store_id/files", ui.AddVectorStoreFiles, editor)
	e.POST("/vector_stores/:vector_store_id/use", ui.UseVectorStore, editor)
	e.POST("/vector_stores/:vector_store_id/files/:file_id/delete", ui.RemoveVectorStoreFile, editor)
	e.POST("/vector_stores/:vector_store_id/delete", ui.DeleteVectorStore, editor)

	e.POST("/projects/switch", ui.SwitchProject, account)
	e.GET("/usage", ui.Usage, signedIn)
	e.GET("/settings/keys", ui.Keys, signedIn)
	e.POST("/settings/keys", ui.CreateKey, owner)
	e.POST("/settings/keys/:key_id/revoke", ui.RevokeKey, owner)
	e.GET("/settings/service_accounts", ui.ServiceAccounts, signedIn)
	e.POST("/settings/service_accounts", ui.CreateServiceAccount, owner)
	e.POST("/settings/service_accounts/:service_account_id/delete", ui.DeleteServiceAccount, owner)
	e.GET("/settings/members", ui.Members, signedIn)
	e.POST("/settings/members", ui.AddMember, owner)
	e.POST("/settings/members/:user_id/role", ui.SetMemberRole, owner)
	e.POST("/settings/members/:user_id/remove", ui.RemoveMember, owner)
	e.GET("/settings/project", ui.ProjectSettings, signedIn)
	e.POST("/settings/project/models", ui.SaveModelSettings, owner)
	e.POST("/settings/project/tools", ui.SaveToolSettings, owner)
	e.POST("/settings/project/rate_limits", ui.SaveRateLimit, owner)
	e.POST("/settings/project/rate_limits/remove", ui.RemoveRateLimit, owner)
	e.POST("/settings/project/upstream", ui.SaveUpstream, owner)
	e.POST("/settings/project/upstream/remove", ui.RemoveUpstream, owner)
	e.GET("/settings/projects", ui.Projects, admin)
	e.POST("/settings/projects", ui.CreateProject, admin)
	e.POST("/settings/projects/:project_id/rename", ui.RenameProject, admin)
	e.POST("/settings/projects/:project_id/archive", ui.ArchiveProject, admin)
	e.GET("/settings/account", ui.Account, account)
	e.POST("/settings/account", ui.ChangePassword, account) // own password: viewers too
	e.GET("/settings/users", ui.Users, admin)
	e.POST("/settings/users", ui.CreateUser, admin)
	e.POST("/settings/users/:user_id/role", ui.SetUserRole, admin)
	e.POST("/settings/users/:user_id/delete", ui.DeleteUser, admin)
	e.POST("/settings/users/:user_id/password", ui.ResetPassword, admin)
	e.POST("/settings/users/:user_id/sessions/revoke", ui.RevokeUserSessions, admin)
	e.POST("/settings/account/sessions/revoke", ui.RevokeMySessions, account)
	e.POST("/settings/remote-images", ui.SetRemoteImages, admin)
	e.GET("/settings/system", ui.System, admin)
	e.GET("/settings/admin-keys", ui.AdminKeys, admin)
	e.POST("/settings/admin-keys", ui.CreateAdminKey, admin)
	e.POST("/settings/admin-keys/:key_id/revoke", ui.RevokeAdminKey, admin)
}

// ready answers GET /readyz without a key: 503 when the store does not
// answer, otherwise 200, "degraded" when a part cannot work, with each
// part's state ("ok" or what keeps it from working, as a code sandbox
// that cannot start kernels), so a broken part shows beyond a log line.
func ready(check func(ctx context.Context) error, parts map[string]func() string) echo.HandlerFunc {
	return func(c *echo.Context) error {
		out := map[string]string{"status": "ok", "store": "ok"}
		status := http.StatusOK
		ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
		defer cancel()
		if err := check(ctx); err != nil {
			out["status"], out["store"], status = "unavailable", "unavailable", http.StatusServiceUnavailable
		}
		for name, problem := range parts {
			out[name] = "ok"
			if p := problem(); p != "" {
				out[name] = p
				if status == http.StatusOK {
					out["status"] = "degraded"
				}
			}
		}
		return c.JSON(status, out)
	}
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
