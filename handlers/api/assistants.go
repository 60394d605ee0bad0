package api

import (
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
)

// applyAssistant validates r onto a (package validate, which the web
// app's editor calls too) and creates the stores a create-time
// vector_stores helper asks for.
func (h *API) applyAssistant(c *echo.Context, r validate.AssistantRequest, a *db.Assistant) error {
	if a.ID == "" {
		if err := h.refuseHelper(r.ToolResources.Ptr(), "tool_resources"); err != nil {
			return err
		}
	}
	if err := validate.Assistant(c.Request().Context(), h.store, r, a); err != nil {
		return err
	}
	// The project's settings apply to what the request sets.
	var model string
	var tools []db.Tool
	if a.ID == "" || r.Model.Set {
		model = a.Model
	}
	if a.ID == "" || r.Tools.Set {
		tools = a.Tools
	}
	if err := h.checkProject(c.Request().Context(), model, tools); err != nil {
		return err
	}
	if r.ToolResources.Set && a.ID == "" {
		return h.createHelperStores(c, "tool_resources", r.ToolResources.Ptr(), a.ToolResources)
	}
	return nil
}

// CreateAssistant handles POST /v1/assistants.
func (h *API) CreateAssistant(c *echo.Context) error {
	var r validate.AssistantRequest
	if err := decodeBody(c.Request(), &r, false); err != nil {
		return err
	}
	var a db.Assistant
	if err := h.applyAssistant(c, r, &a); err != nil {
		return err
	}
	ctx, err := h.withActor(c)
	if err != nil {
		return err
	}
	a, err = h.store.CreateAssistant(ctx, a)
	if err != nil {
		return respond.Internal(err)
	}
	return c.JSON(http.StatusOK, a)
}

// GetAssistant handles GET /v1/assistants/{assistant_id}.
func (h *API) GetAssistant(c *echo.Context) error {
	id := c.Param("assistant_id")
	if err := checkID("assistant_id", id, "asst_"); err != nil {
		return err
	}
	a, err := h.store.GetAssistant(c.Request().Context(), id)
	if err != nil {
		return respond.StoreErr(err, "assistant", id)
	}
	return c.JSON(http.StatusOK, a)
}

// ModifyAssistant handles POST /v1/assistants/{assistant_id}.
func (h *API) ModifyAssistant(c *echo.Context) error {
	id := c.Param("assistant_id")
	if err := checkID("assistant_id", id, "asst_"); err != nil {
		return err
	}
	var r validate.AssistantRequest
	if err := decodeBody(c.Request(), &r, false); err != nil {
		return err
	}
	ctx, err := h.withActor(c)
	if err != nil {
		return err
	}
	a, err := h.store.UpdateAssistant(ctx, id, func(a *db.Assistant) error {
		return h.applyAssistant(c, r, a)
	})
	if err != nil {
		return respond.StoreErr(err, "assistant", id)
	}
	return c.JSON(http.StatusOK, a)
}

// DeleteAssistant handles DELETE /v1/assistants/{assistant_id}.
func (h *API) DeleteAssistant(c *echo.Context) error {
	id := c.Param("assistant_id")
	if err := checkID("assistant_id", id, "asst_"); err != nil {
		return err
	}
	if err := h.store.DeleteAssistant(c.Request().Context(), id); err != nil {
		return respond.StoreErr(err, "assistant", id)
	}
	return c.JSON(http.StatusOK, db.Deleted{ID: id, Object: "assistant.deleted", Deleted: true})
}

// ListAssistants handles GET /v1/assistants.
func (h *API) ListAssistants(c *echo.Context) error {
	p, err := listParams(c, 100, 20, true)
	if err != nil {
		return err
	}
	page, err := h.store.ListAssistants(c.Request().Context(), p)
	if err != nil {
		return respond.StoreErr(err, "", "")
	}
	return c.JSON(http.StatusOK, newList(page, func(a db.Assistant) string { return a.ID }))
}
