package db

import (
	"database/sql"
	"encoding/json"
	"fmt"
)

// Metadata is the string map every Assistants object carries. It always
// serialises as an object ({} when empty), never null.
type Metadata map[string]string

// MarshalJSON writes {} for a nil map.
func (m Metadata) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(map[string]string(m))
}

// Tool is one entry of an assistant's or run's tools, discriminated by Type
// ("code_interpreter", "file_search" or "function").
type Tool struct {
	Type       string          `json:"type"`
	Function   *FunctionDef    `json:"function,omitempty"`
	FileSearch *FileSearchTool `json:"file_search,omitempty"`
}

// FunctionDef describes a function the model may call.
type FunctionDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// FileSearchTool holds the file_search tool's options.
type FileSearchTool struct {
	MaxNumResults  *int            `json:"max_num_results,omitempty"`
	RankingOptions *RankingOptions `json:"ranking_options,omitempty"`
}

// RankingOptions tunes file_search ranking.
type RankingOptions struct {
	Ranker         string   `json:"ranker,omitempty"`
	ScoreThreshold *float64 `json:"score_threshold,omitempty"`
}

// ToolResources are the files the code_interpreter and file_search tools
// can use, on assistants and threads.
type ToolResources struct {
	CodeInterpreter *CodeInterpreterResources `json:"code_interpreter,omitempty"`
	FileSearch      *FileSearchResources      `json:"file_search,omitempty"`
}

// CodeInterpreterResources lists files available to code_interpreter.
type CodeInterpreterResources struct {
	FileIDs []string `json:"file_ids"`
	// ContainerID is the container (cntr_…) a response's code runs in,
	// with its kernel and files, instead of the run's thread's.
	ContainerID string `json:"container_id,omitempty"`
}

// FileSearchResources lists the vector stores file_search searches.
type FileSearchResources struct {
	VectorStoreIDs []string `json:"vector_store_ids"`
}

// Deleted is the body of every delete response.
type Deleted struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

// ListParams selects one page of a cursor list. Limit is already validated
// by the caller; Order is "asc" or "desc"; After and Before are object ids
// (either, both or neither) bounding an exclusive window.
type ListParams struct {
	Limit  int
	Order  string
	After  string
	Before string
}

// Page is one page of a list and whether more items follow in the
// direction of travel.
type Page[T any] struct {
	Data    []T
	HasMore bool
}

// CursorError reports a pagination cursor that names no object.
type CursorError struct {
	Param string // "after" or "before"
	ID    string
}

func (e *CursorError) Error() string {
	return fmt.Sprintf("invalid cursor %s=%q: no such object", e.Param, e.ID)
}

// jsonColumn marshals v for storage in a TEXT column.
func jsonColumn(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeColumn unmarshals a JSON TEXT column, naming the column on error.
func decodeColumn(name, raw string, v any) error {
	if raw == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return fmt.Errorf("decode %s: %w", name, err)
	}
	return nil
}

func nullString(ns sql.NullString) *string {
	if !ns.Valid {
		return nil
	}
	s := ns.String
	return &s
}

func nullInt(ni sql.NullInt64) *int64 {
	if !ni.Valid {
		return nil
	}
	v := ni.Int64
	return &v
}

func nullFloat(nf sql.NullFloat64) *float64 {
	if !nf.Valid {
		return nil
	}
	v := nf.Float64
	return &v
}
