package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
)

// buildMessage validates a message request at param ("" for create
// message, "messages[2]" …) with package validate.
func (h *API) buildMessage(c *echo.Context, p validate.Path, r validate.MessageRequest) (db.Message, error) {
	return validate.Message(c.Request().Context(), h.store, p, r)
}

// CreateMessage handles POST /v1/threads/{thread_id}/messages.
func (h *API) CreateMessage(c *echo.Context) error {
	threadID := c.Param("thread_id")
	if err := checkID("thread_id", threadID, "thread_"); err != nil {
		return err
	}
	var r validate.MessageRequest
	if err := decodeBody(c.Request(), &r, false); err != nil {
		return err
	}
	m, err := h.buildMessage(c, validate.Path{}, r)
	if err != nil {
		return err
	}
	m.ThreadID = threadID
	m, err = h.store.CreateMessage(c.Request().Context(), m)
	var ar *db.ActiveRunError
	if errors.As(err, &ar) {
		return respond.Invalid("", "", "Can't add messages to %s while a run %s is active.", ar.ThreadID, ar.RunID)
	}
	if err != nil {
		return respond.StoreErr(err, "thread", threadID)
	}
	if err := h.attachForSearch(c.Request().Context(), threadID, m); err != nil {
		return respond.Internal(err)
	}
	return c.JSON(http.StatusOK, m)
}

// messagePath reads and checks the thread and message ids of the URL.
func messagePath(c *echo.Context) (threadID, msgID string, err error) {
	threadID, msgID = c.Param("thread_id"), c.Param("message_id")
	if err := checkID("thread_id", threadID, "thread_"); err != nil {
		return "", "", err
	}
	if err := checkID("message_id", msgID, "msg_"); err != nil {
		return "", "", err
	}
	return threadID, msgID, nil
}

// GetMessage handles GET /v1/threads/{thread_id}/messages/{message_id}.
func (h *API) GetMessage(c *echo.Context) error {
	threadID, id, err := messagePath(c)
	if err != nil {
		return err
	}
	m, err := h.store.GetMessage(c.Request().Context(), threadID, id)
	if err != nil {
		return respond.StoreErr(err, "message", id)
	}
	return c.JSON(http.StatusOK, m)
}

// ModifyMessage handles POST /v1/threads/{thread_id}/messages/{message_id}.
func (h *API) ModifyMessage(c *echo.Context) error {
	threadID, id, err := messagePath(c)
	if err != nil {
		return err
	}
	return modifyMetadata(c, "message", id,
		func(ctx context.Context) (db.Message, error) { return h.store.GetMessage(ctx, threadID, id) },
		func(ctx context.Context, meta db.Metadata) (db.Message, error) {
			return h.store.UpdateMessageMetadata(ctx, threadID, id, meta)
		})
}

// modifyMetadata serves the modify endpoints whose only field is metadata
// (messages, runs): absent metadata changes nothing and returns the object.
func modifyMetadata[T any](c *echo.Context, kind, id string, get func(context.Context) (T, error),
	update func(context.Context, db.Metadata) (T, error)) error {
	var r struct {
		Metadata validate.Opt[db.Metadata] `json:"metadata"`
	}
	if err := decodeBody(c.Request(), &r, true); err != nil {
		return err
	}
	ctx := c.Request().Context()
	var v T
	var err error
	if !r.Metadata.Set {
		v, err = get(ctx)
	} else if err = checkMetadata("metadata", r.Metadata.V); err != nil {
		return err
	} else {
		v, err = update(ctx, r.Metadata.V)
	}
	if err != nil {
		return respond.StoreErr(err, kind, id)
	}
	return c.JSON(http.StatusOK, v)
}

// DeleteMessage handles DELETE /v1/threads/{thread_id}/messages/{message_id}.
func (h *API) DeleteMessage(c *echo.Context) error {
	threadID, id, err := messagePath(c)
	if err != nil {
		return err
	}
	if err := h.store.DeleteMessage(c.Request().Context(), threadID, id); err != nil {
		return respond.StoreErr(err, "message", id)
	}
	return c.JSON(http.StatusOK, db.Deleted{ID: id, Object: "thread.message.deleted", Deleted: true})
}

// ListMessages handles GET /v1/threads/{thread_id}/messages.
func (h *API) ListMessages(c *echo.Context) error {
	threadID := c.Param("thread_id")
	if err := checkID("thread_id", threadID, "thread_"); err != nil {
		return err
	}
	p, err := listParams(c, 100, 20, true)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := h.store.GetThread(ctx, threadID); err != nil {
		return respond.StoreErr(err, "thread", threadID)
	}
	runID := c.QueryParam("run_id")
	if runID != "" {
		if err := checkID("run_id", runID, "run_"); err != nil {
			return err
		}
	}
	page, err := h.store.ListMessages(ctx, threadID, runID, p)
	if err != nil {
		return respond.StoreErr(err, "", "")
	}
	return c.JSON(http.StatusOK, newList(page, func(m db.Message) string { return m.ID }))
}
