package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Assistant is an assistant as the API shows it.
type Assistant struct {
	ID             string          `json:"id"`
	Object         string          `json:"object"`
	CreatedAt      int64           `json:"created_at"`
	Name           *string         `json:"name"`
	Description    *string         `json:"description"`
	Model          string          `json:"model"`
	Instructions   *string         `json:"instructions"`
	Tools          []Tool          `json:"tools"`
	ToolResources  *ToolResources  `json:"tool_resources"`
	Metadata       Metadata        `json:"metadata"`
	Temperature    *float64        `json:"temperature"`
	TopP           *float64        `json:"top_p"`
	ResponseFormat json.RawMessage `json:"response_format"`

	// ReasoningEffort is accepted and kept for the run engine; OpenAI did
	// not echo it on the assistant object.
	ReasoningEffort *string `json:"-"`
}

const assistantColumns = `id, created_at, name, description, model, instructions, tools, tool_resources,
	metadata, temperature, top_p, response_format, reasoning_effort`

func scanAssistant(row rowScanner) (Assistant, error) {
	var r assistantRow
	if err := row.Scan(r.dest()...); err != nil {
		return Assistant{}, err
	}
	return r.assistant()
}

// assistantRow holds the columns of assistantColumns as scanned, for the
// assistants table and for its versions.
type assistantRow struct {
	a                                  Assistant
	name, desc, instructions, effort   sql.NullString
	tools, resources, meta, respFormat string
	temp, topP                         sql.NullFloat64
}

func (r *assistantRow) dest() []any {
	return []any{&r.a.ID, &r.a.CreatedAt, &r.name, &r.desc, &r.a.Model, &r.instructions, &r.tools, &r.resources,
		&r.meta, &r.temp, &r.topP, &r.respFormat, &r.effort}
}

func (r *assistantRow) assistant() (Assistant, error) {
	a := r.a
	a.Object = "assistant"
	a.Name, a.Description, a.Instructions, a.ReasoningEffort = nullString(r.name), nullString(r.desc), nullString(r.instructions), nullString(r.effort)
	a.Temperature, a.TopP = nullFloat(r.temp), nullFloat(r.topP)
	a.ToolResources = &ToolResources{}
	a.ResponseFormat = json.RawMessage(r.respFormat)
	err := errors.Join(decodeColumn("tools", r.tools, &a.Tools), decodeColumn("tool_resources", r.resources, a.ToolResources),
		decodeColumn("metadata", r.meta, &a.Metadata))
	if a.Tools == nil {
		a.Tools = []Tool{}
	}
	return a, err
}

func assistantArgs(a *Assistant) ([]any, error) {
	if a.Tools == nil {
		a.Tools = []Tool{}
	}
	if a.ToolResources == nil {
		a.ToolResources = &ToolResources{}
	}
	if len(a.ResponseFormat) == 0 {
		a.ResponseFormat = json.RawMessage(`"auto"`)
	}
	tools, err1 := jsonColumn(a.Tools)
	resources, err2 := jsonColumn(a.ToolResources)
	meta, err3 := jsonColumn(a.Metadata)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	return []any{a.Name, a.Description, a.Model, a.Instructions, tools, resources, meta, a.Temperature, a.TopP,
		string(a.ResponseFormat), a.ReasoningEffort}, nil
}

// CreateAssistant stores a new assistant, and its configuration as version
// 1 (by the actor ctx carries: WithActor); ID and CreatedAt are assigned.
func (s *Store) CreateAssistant(ctx context.Context, a Assistant) (Assistant, error) {
	a.ID, a.Object, a.CreatedAt = NewID("asst_"), "assistant", s.now().Unix()
	project, err := ProjectFrom(ctx)
	if err != nil {
		return a, fmt.Errorf("create assistant: %w", err)
	}
	args, err := assistantArgs(&a)
	if err != nil {
		return a, fmt.Errorf("create assistant: %w", err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO assistants (id, created_at, name, description, model, instructions,
			tools, tool_resources, metadata, temperature, top_p, response_format, reasoning_effort, project_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`, append(append([]any{a.ID, a.CreatedAt}, args...), project)...); err != nil {
			return err
		}
		return s.recordVersion(ctx, tx, a.ID, args)
	})
	if err != nil {
		return a, fmt.Errorf("create assistant: %w", err)
	}
	return a, nil
}

// GetAssistant returns the assistant with id, or ErrNotFound.
func (s *Store) GetAssistant(ctx context.Context, id string) (Assistant, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return Assistant{}, fmt.Errorf("get assistant %s: %w", id, err)
	}
	a, err := scanAssistant(s.r.QueryRowContext(ctx, `SELECT `+assistantColumns+` FROM assistants WHERE id = $1 AND project_id = $2`, id, project))
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("get assistant %s: %w", id, err)
	}
	return a, nil
}

// UpdateAssistant applies fn to the stored assistant inside one write
// transaction, so concurrent modifications never lose each other's fields,
// and records the result as a new version when it differs from the last
// (by the actor ctx carries: WithActor).
// If fn returns an error nothing is written.
func (s *Store) UpdateAssistant(ctx context.Context, id string, fn func(*Assistant) error) (Assistant, error) {
	var a Assistant
	project, err := ProjectFrom(ctx)
	if err != nil {
		return a, fmt.Errorf("update assistant %s: %w", id, err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		a, err = scanAssistant(tx.QueryRowContext(ctx, `SELECT `+assistantColumns+` FROM assistants WHERE id = $1 AND project_id = $2`+s.forUpdate(), id, project))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := fn(&a); err != nil {
			return err
		}
		args, err := assistantArgs(&a)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE assistants SET name = $1, description = $2, model = $3, instructions = $4,
			tools = $5, tool_resources = $6, metadata = $7, temperature = $8, top_p = $9, response_format = $10,
			reasoning_effort = $11 WHERE id = $12`, append(args, id)...)
		if err != nil {
			return err
		}
		if err := s.recordVersion(ctx, tx, id, args); err != nil {
			return err
		}
		// A function removed from the assistant takes its webhook with it.
		return deleteRemovedWebhooks(ctx, tx, id, args[4].(string)) // args[4]: the tools column
	})
	if err != nil {
		return a, fmt.Errorf("update assistant %s: %w", id, err)
	}
	return a, nil
}

// DeleteAssistant removes the assistant, or returns ErrNotFound. Threads,
// messages and runs that name it are kept, as OpenAI kept them.
func (s *Store) DeleteAssistant(ctx context.Context, id string) error {
	return s.deleteByID(ctx, "assistants", id)
}

// ListAssistants returns one page of assistants.
func (s *Store) ListAssistants(ctx context.Context, p ListParams) (Page[Assistant], error) {
	return listQuery(ctx, s.r, "assistants", assistantColumns, "", nil, p, scanAssistant)
}

// deleteByID deletes one row by id from table (a constant), reporting
// ErrNotFound when nothing matched. extraWhere/args narrow the match (a
// message must belong to its thread). The row's place in list order is
// kept as a tombstone for a day, so paging clients can continue after it.
func (s *Store) deleteByID(ctx context.Context, table, id string, extraWhere ...any) error {
	where, args := `id = $1`, []any{id}
	if len(extraWhere) > 0 {
		where += ` AND ` + extraWhere[0].(string)
		args = append(args, extraWhere[1:]...)
	}
	project := ""
	if projectTables[table] {
		var err error
		if project, err = ProjectFrom(ctx); err != nil {
			return fmt.Errorf("delete %s %s: %w", table, id, err)
		}
		where += ` AND project_id = ` + arg(len(args)+1)
		args = append(args, project)
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var seq int64
		err := tx.QueryRowContext(ctx, `DELETE FROM `+table+` WHERE `+where+` RETURNING seq`, args...).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		now := s.now().Unix()
		if _, err := tx.ExecContext(ctx, `INSERT INTO tombstones (tbl, id, seq, deleted_at, project_id) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (tbl, id) DO UPDATE SET seq = excluded.seq, deleted_at = excluded.deleted_at,
			project_id = excluded.project_id`,
			table, id, seq, now, tombstoneProject(project)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM tombstones WHERE deleted_at < $1`, now-tombstoneTTL)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete %s %s: %w", table, id, err)
	}
	return err
}

// tombstoneTTL is how long (seconds) a deleted object's list position is
// kept for paging clients.
const tombstoneTTL = 24 * 60 * 60
