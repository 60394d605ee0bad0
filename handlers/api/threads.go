package api

import (
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
)

// buildThread validates a thread request at param with package validate
// and creates the stores of a vector_stores helper.
func (h *API) buildThread(c *echo.Context, param string, r validate.ThreadRequest) (db.Thread, []db.Message, error) {
	tr := joinPath(param, "tool_resources")
	if err := h.refuseHelper(r.ToolResources.Ptr(), tr); err != nil {
		return db.Thread{}, nil, err
	}
	t, msgs, err := validate.Thread(c.Request().Context(), h.store, pathOf(param), r)
	if err != nil {
		return t, nil, err
	}
	return t, msgs, h.createHelperStores(c, tr, r.ToolResources.Ptr(), t.ToolResources)
}

// CreateThread handles POST /v1/threads; an empty body is allowed.
func (h *API) CreateThread(c *echo.Context) error {
	var r validate.ThreadRequest
	if err := decodeBody(c.Request(), &r, true); err != nil {
		return err
	}
	t, msgs, err := h.buildThread(c, "", r)
	if err != nil {
		return err
	}
	t, msgs, err = h.store.CreateThread(c.Request().Context(), t, msgs)
	if err != nil {
		return respond.Internal(err)
	}
	if err := h.attachForSearch(c.Request().Context(), t.ID, msgs...); err != nil {
		return respond.Internal(err)
	}
	if len(msgs) > 0 && h.vectors != nil {
		// Attachments may have given the thread a vector store.
		if t, err = h.store.GetThread(c.Request().Context(), t.ID); err != nil {
			return respond.Internal(err)
		}
	}
	return c.JSON(http.StatusOK, t)
}

// GetThread handles GET /v1/threads/{thread_id}.
func (h *API) GetThread(c *echo.Context) error {
	id := c.Param("thread_id")
	if err := checkID("thread_id", id, "thread_"); err != nil {
		return err
	}
	t, err := h.store.GetThread(c.Request().Context(), id)
	if err != nil {
		return respond.StoreErr(err, "thread", id)
	}
	return c.JSON(http.StatusOK, t)
}

// ModifyThread handles POST /v1/threads/{thread_id}: metadata and
// tool_resources.
func (h *API) ModifyThread(c *echo.Context) error {
	id := c.Param("thread_id")
	if err := checkID("thread_id", id, "thread_"); err != nil {
		return err
	}
	var r struct {
		ToolResources validate.Opt[validate.ToolResourcesRequest] `json:"tool_resources"`
		Metadata      validate.Opt[db.Metadata]                   `json:"metadata"`
	}
	if err := decodeBody(c.Request(), &r, true); err != nil {
		return err
	}
	if r.Metadata.Set {
		if err := checkMetadata("metadata", r.Metadata.V); err != nil {
			return err
		}
	}
	var resources *db.ToolResources
	if r.ToolResources.Set {
		var err error
		if resources, err = h.toolResources(c, "tool_resources", r.ToolResources.Ptr()); err != nil {
			return err
		}
	}
	t, err := h.store.UpdateThread(c.Request().Context(), id, func(t *db.Thread) error {
		if r.Metadata.Set {
			t.Metadata = r.Metadata.V
		}
		if resources != nil {
			t.ToolResources = resources
		}
		return nil
	})
	if err != nil {
		return respond.StoreErr(err, "thread", id)
	}
	return c.JSON(http.StatusOK, t)
}

// DeleteThread handles DELETE /v1/threads/{thread_id}.
func (h *API) DeleteThread(c *echo.Context) error {
	id := c.Param("thread_id")
	if err := checkID("thread_id", id, "thread_"); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := h.engine.StopThread(ctx, id); err != nil {
		return respond.Internal(err)
	}
	if err := h.store.DeleteThread(ctx, id); err != nil {
		return respond.StoreErr(err, "thread", id)
	}
	return c.JSON(http.StatusOK, db.Deleted{ID: id, Object: "thread.deleted", Deleted: true})
}
