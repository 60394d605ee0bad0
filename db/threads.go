package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Thread is a conversation as the API shows it.
type Thread struct {
	ID            string         `json:"id"`
	Object        string         `json:"object"`
	CreatedAt     int64          `json:"created_at"`
	ToolResources *ToolResources `json:"tool_resources"`
	Metadata      Metadata       `json:"metadata"`
}

const threadColumns = `id, created_at, tool_resources, metadata`

func scanThread(row rowScanner) (Thread, error) {
	var t Thread
	var resources, meta string
	if err := row.Scan(&t.ID, &t.CreatedAt, &resources, &meta); err != nil {
		return t, err
	}
	t.Object = "thread"
	t.ToolResources = &ToolResources{}
	err := errors.Join(decodeColumn("tool_resources", resources, t.ToolResources), decodeColumn("metadata", meta, &t.Metadata))
	return t, err
}

// CreateThread stores a new thread and its initial messages in one
// transaction; the messages get the thread's id and consecutive sequence
// numbers in the order given.
func (s *Store) CreateThread(ctx context.Context, t Thread, msgs []Message) (Thread, []Message, error) {
	t.ID, t.Object, t.CreatedAt = NewID("thread_"), "thread", s.now().Unix()
	if t.ToolResources == nil {
		t.ToolResources = &ToolResources{}
	}
	resources, err1 := jsonColumn(t.ToolResources)
	meta, err2 := jsonColumn(t.Metadata)
	if err := errors.Join(err1, err2); err != nil {
		return t, nil, fmt.Errorf("create thread: %w", err)
	}
	project, err := ProjectFrom(ctx)
	if err != nil {
		return t, nil, fmt.Errorf("create thread: %w", err)
	}
	out := make([]Message, 0, len(msgs))
	err = s.tx(ctx, func(tx *sql.Tx) error {
		out = out[:0] // a transaction run again starts over
		if _, err := tx.ExecContext(ctx, `INSERT INTO threads (id, created_at, tool_resources, metadata, project_id)
			VALUES ($1, $2, $3, $4, $5)`, t.ID, t.CreatedAt, resources, meta, project); err != nil {
			return err
		}
		for _, m := range msgs {
			m.ThreadID = t.ID
			m, err := s.insertMessage(ctx, tx, m)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return t, nil, fmt.Errorf("create thread: %w", err)
	}
	return t, out, nil
}

// GetThread returns the thread with id, or ErrNotFound.
func (s *Store) GetThread(ctx context.Context, id string) (Thread, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return Thread{}, fmt.Errorf("get thread %s: %w", id, err)
	}
	t, err := scanThread(s.r.QueryRowContext(ctx, `SELECT `+threadColumns+` FROM threads WHERE id = $1 AND project_id = $2`, id, project))
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrNotFound
	}
	if err != nil {
		return t, fmt.Errorf("get thread %s: %w", id, err)
	}
	return t, nil
}

// UpdateThread applies fn to the stored thread inside one write transaction.
func (s *Store) UpdateThread(ctx context.Context, id string, fn func(*Thread) error) (Thread, error) {
	var t Thread
	project, err := ProjectFrom(ctx)
	if err != nil {
		return t, fmt.Errorf("update thread %s: %w", id, err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = scanThread(tx.QueryRowContext(ctx, `SELECT `+threadColumns+` FROM threads WHERE id = $1 AND project_id = $2`+s.forUpdate(), id, project))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := fn(&t); err != nil {
			return err
		}
		if t.ToolResources == nil {
			t.ToolResources = &ToolResources{}
		}
		resources, err1 := jsonColumn(t.ToolResources)
		meta, err2 := jsonColumn(t.Metadata)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE threads SET tool_resources = $1, metadata = $2 WHERE id = $3`, resources, meta, id)
		return err
	})
	if err != nil {
		return t, fmt.Errorf("update thread %s: %w", id, err)
	}
	return t, nil
}

// DeleteThread removes the thread; its messages (and runs and steps) go
// with it through ON DELETE CASCADE.
func (s *Store) DeleteThread(ctx context.Context, id string) error {
	return s.deleteByID(ctx, "threads", id)
}
