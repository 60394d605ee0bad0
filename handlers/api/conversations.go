package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
	"github.com/assistantd/assistantd/handlers/validate"
)

// maxItemsPerRequest is how many items one request may add to a
// conversation.
const maxItemsPerRequest = 20

// parseItems reads a list of at most 20 items.
func parseItems(fields map[string]json.RawMessage, key string) ([]json.RawMessage, error) {
	raw, ok := fields[key]
	if !ok {
		return nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, respond.Invalid(key, "invalid_type", "Invalid type for '%s': expected an array of items, but got %s instead.", key, valueKind(raw))
	}
	if len(list) > maxItemsPerRequest {
		return nil, respond.Invalid(key, "array_above_max_length",
			"Invalid '%s': array too long. Expected an array with maximum length %d, but got an array with length %d instead.",
			key, maxItemsPerRequest, len(list))
	}
	return parseInput(raw, key)
}

func conversationMetadata(fields map[string]json.RawMessage) (db.Metadata, bool, error) {
	var meta db.Metadata
	set, err := field(fields, "metadata", &meta, "an object of strings")
	if err != nil || !set {
		return nil, set, err
	}
	if err := validate.Metadata(validate.Path{"metadata"}, meta); err != nil {
		return nil, true, err
	}
	return meta, true, nil
}

// CreateConversation handles POST /v1/conversations.
func (h *Responses) CreateConversation(c *echo.Context) error {
	fields, err := readObject(c.Request(), []string{"metadata", "items"}, true)
	if err != nil {
		return err
	}
	meta, _, err := conversationMetadata(fields)
	if err != nil {
		return err
	}
	items, err := parseItems(fields, "items")
	if err != nil {
		return err
	}
	conv, err := h.store.CreateConversation(c.Request().Context(), meta, items)
	if err != nil {
		return respond.Internal(err)
	}
	return c.JSON(http.StatusOK, conv)
}

// GetConversation handles GET /v1/conversations/{id}.
func (h *Responses) GetConversation(c *echo.Context) error {
	id := c.Param("conversation_id")
	conv, err := h.store.GetConversation(c.Request().Context(), id)
	if err != nil {
		return respond.StoreErr(err, "conversation", id)
	}
	return c.JSON(http.StatusOK, conv)
}

// UpdateConversation handles POST /v1/conversations/{id} (metadata).
func (h *Responses) UpdateConversation(c *echo.Context) error {
	id := c.Param("conversation_id")
	fields, err := readObject(c.Request(), []string{"metadata"}, false)
	if err != nil {
		return err
	}
	meta, set, err := conversationMetadata(fields)
	if err != nil {
		return err
	}
	if !set {
		return respond.Invalid("metadata", "missing_required_parameter", "Missing required parameter: 'metadata'.")
	}
	conv, err := h.store.UpdateConversation(c.Request().Context(), id, meta)
	if err != nil {
		return respond.StoreErr(err, "conversation", id)
	}
	return c.JSON(http.StatusOK, conv)
}

// DeleteConversation handles DELETE /v1/conversations/{id}; its items are
// kept.
func (h *Responses) DeleteConversation(c *echo.Context) error {
	id := c.Param("conversation_id")
	if err := h.store.DeleteConversation(c.Request().Context(), id); err != nil {
		return respond.StoreErr(err, "conversation", id)
	}
	return c.JSON(http.StatusOK, db.Deleted{ID: id, Object: "conversation.deleted", Deleted: true})
}

// AddConversationItems handles POST /v1/conversations/{id}/items.
func (h *Responses) AddConversationItems(c *echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("conversation_id")
	if _, err := queryIncludes(c); err != nil {
		return err
	}
	fields, err := readObject(c.Request(), []string{"items"}, false)
	if err != nil {
		return err
	}
	items, err := parseItems(fields, "items")
	if err != nil {
		return err
	}
	if _, ok := fields["items"]; !ok {
		return respond.Invalid("items", "missing_required_parameter", "Missing required parameter: 'items'.")
	}
	err = h.store.AddConversationItems(ctx, id, items)
	if errors.Is(err, db.ErrConversationLocked) {
		return respond.Invalid("conversation", "conversation_locked",
			"Another process is currently operating on this conversation. Please retry in a few seconds.")
	}
	if err != nil {
		return respond.StoreErr(err, "conversation", id)
	}
	out := itemPage{Object: "list", Data: items, HasMore: false}
	if n := len(items); n > 0 {
		first, last := itemIDOf(items[0]), itemIDOf(items[n-1])
		out.FirstID, out.LastID = &first, &last
	} else {
		out.Data = []json.RawMessage{}
	}
	return c.JSON(http.StatusOK, out)
}

// ListConversationItems handles GET /v1/conversations/{id}/items.
func (h *Responses) ListConversationItems(c *echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("conversation_id")
	if _, err := queryIncludes(c); err != nil {
		return err
	}
	p, err := listParams(c, 100, 20, false)
	if err != nil {
		return err
	}
	if _, err := h.store.GetConversation(ctx, id); err != nil {
		return respond.StoreErr(err, "conversation", id)
	}
	pg, err := h.store.ListConversationItems(ctx, id, p)
	if err != nil {
		return respond.StoreErr(err, "conversation", id)
	}
	return c.JSON(http.StatusOK, newPage(pg))
}

// GetConversationItem handles GET /v1/conversations/{id}/items/{item_id}.
func (h *Responses) GetConversationItem(c *echo.Context) error {
	ctx := c.Request().Context()
	id, itemID := c.Param("conversation_id"), c.Param("item_id")
	if _, err := h.store.GetConversation(ctx, id); err != nil {
		return respond.StoreErr(err, "conversation", id)
	}
	item, err := h.store.GetConversationItem(ctx, id, itemID)
	if err != nil {
		return respond.StoreErr(err, "item", itemID)
	}
	return c.JSON(http.StatusOK, item)
}

// DeleteConversationItem handles DELETE
// /v1/conversations/{id}/items/{item_id}: it returns the conversation.
func (h *Responses) DeleteConversationItem(c *echo.Context) error {
	ctx := c.Request().Context()
	id, itemID := c.Param("conversation_id"), c.Param("item_id")
	conv, err := h.store.GetConversation(ctx, id)
	if err != nil {
		return respond.StoreErr(err, "conversation", id)
	}
	if err := h.store.DeleteConversationItem(ctx, id, itemID); err != nil {
		if errors.Is(err, db.ErrNotFound) {
			return respond.NotFound("item", itemID)
		}
		return respond.Internal(fmt.Errorf("delete conversation item: %w", err))
	}
	return c.JSON(http.StatusOK, conv)
}
