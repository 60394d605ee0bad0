package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
)

// VersionStore is what the assistant versions extension needs from the
// store.
type VersionStore interface {
	KeyActor(ctx context.Context, key string) (db.Actor, error)
	GetAssistantVersion(ctx context.Context, id string, n int) (db.AssistantVersion, error)
	ListAssistantVersions(ctx context.Context, id string, p db.ListParams) (db.Page[db.AssistantVersion], error)
}

// withActor returns the request's context carrying the API key that made
// it, so the assistant versions it writes say who made them.
func (h *API) withActor(c *echo.Context) (context.Context, error) {
	ctx := c.Request().Context()
	_, key, _ := strings.Cut(c.Request().Header.Get("Authorization"), " ")
	who, err := h.store.KeyActor(ctx, strings.TrimSpace(key))
	if err != nil {
		return ctx, respond.Internal(err)
	}
	return db.WithActor(ctx, who), nil
}

// ListAssistantVersions handles GET /v1/assistants/{assistant_id}/versions
// (an assistantd extension): every configuration the assistant has had,
// newest first by default; the cursors (after, before) are version numbers.
func (h *API) ListAssistantVersions(c *echo.Context) error {
	id := c.Param("assistant_id")
	if err := checkID("assistant_id", id, "asst_"); err != nil {
		return err
	}
	p, err := listParams(c, 100, 20, true)
	if err != nil {
		return err
	}
	page, err := h.store.ListAssistantVersions(c.Request().Context(), id, p)
	if err != nil {
		return respond.StoreErr(err, "assistant", id)
	}
	return c.JSON(http.StatusOK, newList(page, func(v db.AssistantVersion) string { return strconv.Itoa(v.Version) }))
}

// GetAssistantVersion handles GET /v1/assistants/{assistant_id}/versions/{n}.
func (h *API) GetAssistantVersion(c *echo.Context) error {
	id, raw := c.Param("assistant_id"), c.Param("version")
	if err := checkID("assistant_id", id, "asst_"); err != nil {
		return err
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		return respond.Invalid("version", "invalid_value", "Invalid version '%s': expected a positive integer.", raw)
	}
	v, err := h.store.GetAssistantVersion(c.Request().Context(), id, n)
	if err != nil {
		return respond.StoreErr(err, "assistant version", raw)
	}
	return c.JSON(http.StatusOK, v)
}
