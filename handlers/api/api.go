// Package api serves assistantd's /v1 endpoints: JSON in, OpenAI's exact
// shapes out. It declares the small interfaces it needs from the store and
// the run engine; the rules of request objects are package validate's,
// which the web app (package ui, a sibling that shares nothing else with
// this one) calls too.
package api

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
)

// Store is what the API handlers need from the store.
type Store interface {
	CreateAssistant(ctx context.Context, a db.Assistant) (db.Assistant, error)
	GetAssistant(ctx context.Context, id string) (db.Assistant, error)
	UpdateAssistant(ctx context.Context, id string, fn func(*db.Assistant) error) (db.Assistant, error)
	DeleteAssistant(ctx context.Context, id string) error
	ListAssistants(ctx context.Context, p db.ListParams) (db.Page[db.Assistant], error)
	VersionStore

	CreateThread(ctx context.Context, t db.Thread, msgs []db.Message) (db.Thread, []db.Message, error)
	GetThread(ctx context.Context, id string) (db.Thread, error)
	UpdateThread(ctx context.Context, id string, fn func(*db.Thread) error) (db.Thread, error)
	DeleteThread(ctx context.Context, id string) error

	CreateMessage(ctx context.Context, m db.Message) (db.Message, error)
	GetMessage(ctx context.Context, threadID, id string) (db.Message, error)
	UpdateMessageMetadata(ctx context.Context, threadID, id string, meta db.Metadata) (db.Message, error)
	DeleteMessage(ctx context.Context, threadID, id string) error
	ListMessages(ctx context.Context, threadID, runID string, p db.ListParams) (db.Page[db.Message], error)

	StageFile(content io.Reader, limit int64) (*db.StagedFile, error)
	CommitFile(ctx context.Context, f db.File, sf *db.StagedFile, expiresAfter int64) (db.File, error)
	GetFile(ctx context.Context, id string) (db.File, error)
	MissingFiles(ctx context.Context, ids []string) ([]string, error)
	OpenFile(ctx context.Context, id string) (db.File, io.ReadSeekCloser, error)
	DeleteFile(ctx context.Context, id string) error
	ListFiles(ctx context.Context, purpose string, p db.ListParams) (db.Page[db.File], error)

	GetRun(ctx context.Context, threadID, id string) (db.Run, error)
	ListRuns(ctx context.Context, threadID string, p db.ListParams) (db.Page[db.Run], error)
	UpdateRunMetadata(ctx context.Context, threadID, id string, meta db.Metadata) (db.Run, error)
	GetStep(ctx context.Context, threadID, runID, id string) (db.RunStep, error)
	ListSteps(ctx context.Context, threadID, runID string, p db.ListParams) (db.Page[db.RunStep], error)
}

// API serves the Assistants API under /v1.
type API struct {
	store     Store
	engine    Engine
	maxUpload int64
	log       *slog.Logger
	vectors   VectorStores // nil: no vector stores (the web app's own API)
	retriever Retriever
	settings  ProjectSettings // nil: projects' settings are not checked

	streams *respond.Streams // ended when the server shuts down
}

// NewAPI returns the API handlers. maxUpload bounds one uploaded file.
func NewAPI(store Store, engine Engine, maxUpload int64, log *slog.Logger, opts ...APIOption) *API {
	streams := respond.NewStreams(log)
	streams.KeepInline(respond.InlineStreams)
	h := &API{store: store, engine: engine, maxUpload: maxUpload, log: log, streams: streams}
	for _, o := range opts {
		o(h)
	}
	return h
}

// CloseStreams ends every open event stream, for a graceful shutdown: the
// runs behind them go on (or resume after a restart), and clients can
// poll them.
func (h *API) CloseStreams() { h.streams.Close() }

// list is a cursor page as every list endpoint returns it.
type list[T any] struct {
	Object  string  `json:"object"`
	Data    []T     `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

func newList[T any](p db.Page[T], id func(T) string) list[T] {
	l := list[T]{Object: "list", Data: p.Data, HasMore: p.HasMore}
	if len(p.Data) > 0 {
		first, last := id(p.Data[0]), id(p.Data[len(p.Data)-1])
		l.FirstID, l.LastID = &first, &last
	}
	return l
}

// listParams reads limit, order, after and before. maxLimit and
// defaultLimit differ only for files (10000 and 10000; else 100 and 20).
func listParams(c *echo.Context, maxLimit, defaultLimit int, allowBefore bool) (db.ListParams, error) {
	p := db.ListParams{Limit: defaultLimit, Order: "desc", After: c.QueryParam("after")}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return p, respond.Invalid("limit", "invalid_type", "Invalid 'limit': expected an integer, but got '%s' instead.", v)
		}
		if n < 1 {
			return p, respond.Invalid("limit", "integer_below_min_value",
				"Invalid 'limit': integer below minimum value. Expected a value >= 1, but got %d instead.", n)
		}
		if n > maxLimit {
			return p, respond.Invalid("limit", "integer_above_max_value",
				"Invalid 'limit': integer above maximum value. Expected a value <= %d, but got %d instead.", maxLimit, n)
		}
		p.Limit = n
	}
	switch o := c.QueryParam("order"); o {
	case "", "desc":
	case "asc":
		p.Order = "asc"
	default:
		return p, respond.Invalid("order", "invalid_value", "Invalid value: '%s'. Supported values are: 'asc' and 'desc'.", o)
	}
	if allowBefore {
		p.Before = c.QueryParam("before")
	} else if c.QueryParam("before") != "" {
		return p, respond.Invalid("before", "unknown_parameter", "Unknown parameter: 'before'.")
	}
	return p, nil
}

func timeOf(unix int64) time.Time { return time.Unix(unix, 0) }
