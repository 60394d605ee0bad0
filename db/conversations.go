package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Conversation is a conversation of the Conversations API.
type Conversation struct {
	ID        string   `json:"id"`
	Object    string   `json:"object"`
	CreatedAt int64    `json:"created_at"`
	Metadata  Metadata `json:"metadata"`
}

func scanConversation(row rowScanner) (Conversation, error) {
	var c Conversation
	var meta string
	if err := row.Scan(&c.ID, &c.CreatedAt, &meta); err != nil {
		return c, err
	}
	c.Object = "conversation"
	return c, decodeColumn("metadata", meta, &c.Metadata)
}

// CreateConversation stores a conversation with its first items (which
// carry their ids already), and returns it.
func (s *Store) CreateConversation(ctx context.Context, meta Metadata, items []json.RawMessage) (Conversation, error) {
	c := Conversation{ID: NewID("conv_"), Object: "conversation", CreatedAt: s.now().Unix(), Metadata: meta}
	col, err := jsonColumn(meta)
	if err != nil {
		return c, err
	}
	project, err := ProjectFrom(ctx)
	if err != nil {
		return c, fmt.Errorf("create conversation: %w", err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO conversations (id, created_at, metadata, project_id) VALUES ($1, $2, $3, $4)`,
			c.ID, c.CreatedAt, col, project); err != nil {
			return err
		}
		for _, it := range items {
			if err := insertConversationItem(ctx, tx, c.ID, it, c.CreatedAt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("create conversation: %w", err)
	}
	return c, nil
}

func insertConversationItem(ctx context.Context, tx *sql.Tx, convID string, item json.RawMessage, now int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO conversation_items (id, conversation_id, created_at, item) VALUES ($1, $2, $3, $4)`,
		itemID(item), convID, now, string(item))
	if err != nil {
		return fmt.Errorf("add item to conversation %s: %w", convID, err)
	}
	return nil
}

// GetConversation returns the conversation with id, or ErrNotFound.
func (s *Store) GetConversation(ctx context.Context, id string) (Conversation, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return Conversation{}, fmt.Errorf("get conversation %s: %w", id, err)
	}
	c, err := scanConversation(s.r.QueryRowContext(ctx, `SELECT id, created_at, metadata FROM conversations WHERE id = $1
		AND project_id = $2`, id, project))
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	if err != nil {
		return c, fmt.Errorf("get conversation %s: %w", id, err)
	}
	return c, nil
}

// UpdateConversation replaces a conversation's metadata.
func (s *Store) UpdateConversation(ctx context.Context, id string, meta Metadata) (Conversation, error) {
	col, err := jsonColumn(meta)
	if err != nil {
		return Conversation{}, err
	}
	project, err := ProjectFrom(ctx)
	if err != nil {
		return Conversation{}, fmt.Errorf("update conversation %s: %w", id, err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE conversations SET metadata = $1 WHERE id = $2 AND project_id = $3`, col, id, project)
	if err != nil {
		return Conversation{}, fmt.Errorf("update conversation %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Conversation{}, ErrNotFound
	}
	return s.GetConversation(ctx, id)
}

// DeleteConversation removes a conversation; its items stay, as OpenAI
// documents.
func (s *Store) DeleteConversation(ctx context.Context, id string) error {
	return s.deleteByID(ctx, "conversations", id)
}

// AddConversationItems appends items (with their ids) to a conversation.
// A conversation with an unfinished response is ErrConversationLocked.
func (s *Store) AddConversationItems(ctx context.Context, id string, items []json.RawMessage) error {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return fmt.Errorf("add conversation items: %w", err)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var n, busy int
		err := tx.QueryRowContext(ctx, `SELECT COUNT(*), (SELECT COUNT(*) FROM responses WHERE conversation_id = $1 AND active = 1)
			FROM conversations WHERE id = $1 AND project_id = $2`, id, project).Scan(&n, &busy)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		if busy > 0 {
			return ErrConversationLocked
		}
		now := s.now().Unix()
		for _, it := range items {
			if err := insertConversationItem(ctx, tx, id, it, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListConversationItems returns one page of a conversation's items.
func (s *Store) ListConversationItems(ctx context.Context, id string, p ListParams) (Page[json.RawMessage], error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return Page[json.RawMessage]{}, fmt.Errorf("list conversation items: %w", err)
	}
	return listQuery(ctx, s.r, "conversation_items", "item", "conversation_id = $1 AND "+convInProject("$2"),
		[]any{id, project}, p, scanItem)
}

// convInProject is the condition that a conversation item's conversation
// belongs to the project in placeholder n (items carry no project_id).
func convInProject(n string) string {
	return `conversation_id IN (SELECT id FROM conversations WHERE project_id = ` + n + `)`
}

// GetConversationItem returns one item of a conversation, or ErrNotFound.
func (s *Store) GetConversationItem(ctx context.Context, convID, itemID string) (json.RawMessage, error) {
	var item string
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("get conversation item %s: %w", itemID, err)
	}
	err = s.r.QueryRowContext(ctx, `SELECT item FROM conversation_items WHERE conversation_id = $1 AND id = $2 AND `+
		convInProject("$3"), convID, itemID, project).Scan(&item)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get conversation item %s: %w", itemID, err)
	}
	return json.RawMessage(item), nil
}

// DeleteConversationItem removes one item of a conversation.
func (s *Store) DeleteConversationItem(ctx context.Context, convID, itemID string) error {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return fmt.Errorf("delete conversation item %s: %w", itemID, err)
	}
	return s.deleteByID(ctx, "conversation_items", itemID, "conversation_id = $2 AND "+convInProject("$3"), convID, project)
}

// ConversationItems returns all of a conversation's items, oldest first.
func (s *Store) ConversationItems(ctx context.Context, id string) ([]json.RawMessage, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("items of conversation %s: %w", id, err)
	}
	items, err := queryItems(ctx, s.r, `SELECT item FROM conversation_items WHERE conversation_id = $1 AND `+convInProject("$2")+`
		ORDER BY seq`, id, project)
	if err != nil {
		return nil, fmt.Errorf("items of conversation %s: %w", id, err)
	}
	return items, nil
}

// DatedItem is a conversation item with the time it was added.
type DatedItem struct {
	Item      json.RawMessage
	CreatedAt int64
}

// DatedConversationItems returns all of a conversation's items with the
// times they were added, oldest first (the web app shows them).
func (s *Store) DatedConversationItems(ctx context.Context, id string) ([]DatedItem, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("items of conversation %s: %w", id, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT item, created_at FROM conversation_items WHERE conversation_id = $1 AND `+
		convInProject("$2")+` ORDER BY seq`, id, project)
	if err != nil {
		return nil, fmt.Errorf("items of conversation %s: %w", id, err)
	}
	items, err := collect(rows, func(row rowScanner) (DatedItem, error) {
		var it DatedItem
		var s string
		err := row.Scan(&s, &it.CreatedAt)
		it.Item = json.RawMessage(s)
		return it, err
	})
	if err != nil {
		return nil, fmt.Errorf("items of conversation %s: %w", id, err)
	}
	return items, nil
}
