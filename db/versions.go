package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Actor is who made a change: an API key (ID and Name of the stored key;
// ID empty for the key given in the configuration), a web app user, or the
// server itself (the migration that started existing assistants' history).
type Actor struct {
	Type string `json:"type"` // "api_key", "user" or "system"
	ID   string `json:"id"`
	Name string `json:"name"`
}

type actorKey struct{}

// WithActor returns ctx carrying who is making the request's changes; the
// store records it with every assistant version written under ctx.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// actorFrom returns the actor ctx carries, or the server itself.
func actorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok && a.Type != "" {
		return a
	}
	return Actor{Type: "system"}
}

// AssistantVersion is one recorded configuration of an assistant.
type AssistantVersion struct {
	Object      string `json:"object"` // "assistant.version"
	AssistantID string `json:"assistant_id"`
	Version     int    `json:"version"`
	CreatedAt   int64  `json:"created_at"`
	CreatedBy   Actor  `json:"created_by"`
	// Assistant is the whole configuration as it was (its created_at is the
	// assistant's own).
	Assistant Assistant `json:"assistant"`
}

const versionColumns = `assistant_versions.version, assistant_versions.created_at, actor_type, actor_id, actor_name,
	assistant_versions.assistant_id, assistants.created_at, assistant_versions.name, assistant_versions.description,
	assistant_versions.model, assistant_versions.instructions, assistant_versions.tools,
	assistant_versions.tool_resources, assistant_versions.metadata, assistant_versions.temperature,
	assistant_versions.top_p, assistant_versions.response_format, assistant_versions.reasoning_effort`

// versionTable joins each version to its assistant (for the assistant's
// created_at); listQuery's cursor resolves `id` and `seq` in the joined
// rows, so both are the version's own columns, which the join exposes
// unambiguously through the subquery.
const versionTable = `(SELECT v.seq, v.id, v.version, v.created_at, v.actor_type, v.actor_id, v.actor_name,
	v.assistant_id, v.name, v.description, v.model, v.instructions, v.tools, v.tool_resources, v.metadata,
	v.temperature, v.top_p, v.response_format, v.reasoning_effort, a.created_at AS assistant_created_at, v.project_id
	FROM assistant_versions v JOIN assistants a ON a.id = v.assistant_id) assistant_versions`

const versionListColumns = `version, created_at, actor_type, actor_id, actor_name, assistant_id, assistant_created_at,
	name, description, model, instructions, tools, tool_resources, metadata, temperature, top_p, response_format,
	reasoning_effort`

func scanVersion(row rowScanner) (AssistantVersion, error) {
	var v AssistantVersion
	var rest assistantRow
	if err := row.Scan(append([]any{&v.Version, &v.CreatedAt, &v.CreatedBy.Type, &v.CreatedBy.ID, &v.CreatedBy.Name},
		rest.dest()...)...); err != nil {
		return v, err
	}
	v.Object = "assistant.version"
	a, err := rest.assistant()
	v.Assistant, v.AssistantID = a, a.ID
	return v, err
}

// GetAssistantVersion returns version n of assistant id, or ErrNotFound.
func (s *Store) GetAssistantVersion(ctx context.Context, id string, n int) (AssistantVersion, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return AssistantVersion{}, fmt.Errorf("get assistant %s version %d: %w", id, n, err)
	}
	v, err := scanVersion(s.r.QueryRowContext(ctx, `SELECT `+versionListColumns+` FROM `+versionTable+`
		WHERE assistant_id = $1 AND version = $2 AND project_id = $3`, id, n, project))
	if errors.Is(err, sql.ErrNoRows) {
		return v, ErrNotFound
	}
	if err != nil {
		return v, fmt.Errorf("get assistant %s version %d: %w", id, n, err)
	}
	return v, nil
}

// ListAssistantVersions returns one page of assistant id's versions; the
// cursors are version numbers. An unknown assistant is ErrNotFound.
func (s *Store) ListAssistantVersions(ctx context.Context, id string, p ListParams) (Page[AssistantVersion], error) {
	if _, err := s.GetAssistant(ctx, id); err != nil {
		return Page[AssistantVersion]{}, err
	}
	return listQuery(ctx, s.r, versionTable, versionListColumns, "assistant_id = $1", []any{id}, p, scanVersion)
}

// AllAssistantVersions returns every version of assistant id, oldest first.
func (s *Store) AllAssistantVersions(ctx context.Context, id string) ([]AssistantVersion, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("list assistant %s versions: %w", id, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+versionListColumns+` FROM `+versionTable+`
		WHERE assistant_id = $1 AND project_id = $2 ORDER BY version`, id, project)
	if err != nil {
		return nil, fmt.Errorf("list assistant %s versions: %w", id, err)
	}
	defer rows.Close()
	var out []AssistantVersion
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, fmt.Errorf("list assistant %s versions: %w", id, err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// RestoreAssistantVersion makes version n's configuration the assistant's
// current one, recorded as a new version (history is never rewritten).
func (s *Store) RestoreAssistantVersion(ctx context.Context, id string, n int) (Assistant, error) {
	old, err := s.GetAssistantVersion(ctx, id, n)
	if err != nil {
		return Assistant{}, err
	}
	return s.UpdateAssistant(ctx, id, func(a *Assistant) error {
		created := a.CreatedAt
		*a = old.Assistant
		a.CreatedAt = created
		return nil
	})
}

// recordVersion writes a's configuration (args: assistantArgs) as its
// next version, unless it equals the latest one, inside tx.
func (s *Store) recordVersion(ctx context.Context, tx *sql.Tx, id string, args []any) error {
	var latest sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM assistant_versions WHERE assistant_id = $1`, id).Scan(&latest); err != nil {
		return fmt.Errorf("record version: %w", err)
	}
	if latest.Valid {
		prev, err := scanVersion(tx.QueryRowContext(ctx, `SELECT `+versionListColumns+` FROM `+versionTable+`
			WHERE assistant_id = $1 AND version = $2`, id, latest.Int64))
		if err != nil {
			return fmt.Errorf("record version: %w", err)
		}
		prevArgs, err := assistantArgs(&prev.Assistant)
		if err != nil {
			return err
		}
		if sameConfig(prevArgs, args) {
			return nil
		}
	}
	n := latest.Int64 + 1
	who := actorFrom(ctx)
	// A version belongs to its assistant's project: the caller has just
	// read or written the assistant in ctx's project.
	project, err := ProjectFrom(ctx)
	if err != nil {
		return fmt.Errorf("record version: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO assistant_versions (assistant_id, id, version, created_at, actor_type,
		actor_id, actor_name, name, description, model, instructions, tools, tool_resources, metadata, temperature,
		top_p, response_format, reasoning_effort, project_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
		append(append([]any{id, strconv.FormatInt(n, 10), n, s.now().Unix(), who.Type, who.ID, who.Name}, args...), project)...)
	if err != nil {
		return fmt.Errorf("record version: %w", err)
	}
	return nil
}

// sameConfig compares two assistantArgs by value (they hold pointers).
func sameConfig(a, b []any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// KeyActor returns the actor for an API key: the stored key's id and name,
// or, for a key the store does not hold (the configured one), an api_key
// actor named "configured key".
func (s *Store) KeyActor(ctx context.Context, key string) (Actor, error) {
	a := Actor{Type: "api_key"}
	err := s.r.QueryRowContext(ctx, `SELECT id, name FROM api_keys WHERE hash = $1`, HashKey(key)).Scan(&a.ID, &a.Name)
	if errors.Is(err, sql.ErrNoRows) {
		return Actor{Type: "api_key", Name: "configured key"}, nil
	}
	if err != nil {
		return a, fmt.Errorf("key actor: %w", err)
	}
	return a, nil
}
