package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Run statuses. The first four are "active": a thread has at most one run
// in them at a time (the runs_one_active index).
const (
	RunQueued         = "queued"
	RunInProgress     = "in_progress"
	RunRequiresAction = "requires_action"
	RunCancelling     = "cancelling"
	RunCancelled      = "cancelled"
	RunFailed         = "failed"
	RunCompleted      = "completed"
	RunIncomplete     = "incomplete"
	RunExpired        = "expired"
)

// ActiveStatuses are the non-terminal run statuses.
var ActiveStatuses = []string{RunQueued, RunInProgress, RunRequiresAction, RunCancelling}

// IsTerminal reports whether a run status is final.
func IsTerminal(status string) bool {
	switch status {
	case RunCancelled, RunFailed, RunCompleted, RunIncomplete, RunExpired:
		return true
	}
	return false
}

// ErrIllegalTransition is returned when an update would move a run between
// statuses the lifecycle does not connect (enforced by a trigger).
var ErrIllegalTransition = errors.New("illegal run status transition")

// ActiveRunError is returned when a thread already has a non-terminal run.
type ActiveRunError struct {
	ThreadID, RunID string
}

func (e *ActiveRunError) Error() string {
	return fmt.Sprintf("thread %s has an active run %s", e.ThreadID, e.RunID)
}

// Run is a run as the API shows it.
type Run struct {
	ID                  string              `json:"id"`
	Object              string              `json:"object"`
	CreatedAt           int64               `json:"created_at"`
	ThreadID            string              `json:"thread_id"`
	AssistantID         string              `json:"assistant_id"`
	Status              string              `json:"status"`
	RequiredAction      *RequiredAction     `json:"required_action"`
	LastError           *LastError          `json:"last_error"`
	ExpiresAt           *int64              `json:"expires_at"`
	StartedAt           *int64              `json:"started_at"`
	CancelledAt         *int64              `json:"cancelled_at"`
	FailedAt            *int64              `json:"failed_at"`
	CompletedAt         *int64              `json:"completed_at"`
	IncompleteDetails   *IncompleteDetails  `json:"incomplete_details"`
	Model               string              `json:"model"`
	Instructions        string              `json:"instructions"`
	Tools               []Tool              `json:"tools"`
	Metadata            Metadata            `json:"metadata"`
	Usage               *Usage              `json:"usage"`
	Temperature         *float64            `json:"temperature"`
	TopP                *float64            `json:"top_p"`
	MaxPromptTokens     *int64              `json:"max_prompt_tokens"`
	MaxCompletionTokens *int64              `json:"max_completion_tokens"`
	TruncationStrategy  *TruncationStrategy `json:"truncation_strategy"`
	ToolChoice          json.RawMessage     `json:"tool_choice"`
	ParallelToolCalls   bool                `json:"parallel_tool_calls"`
	ResponseFormat      json.RawMessage     `json:"response_format"`
	ToolResources       *ToolResources      `json:"tool_resources"`

	ReasoningEffort *string `json:"-"`
	HistorySeq      int64   `json:"-"`
	Attempts        int     `json:"-"`
	// ResponseID is the response the run serves ("" for an Assistants
	// run), and MaxToolCalls that response's cap on built-in tool calls;
	// both are set when the run is created and never change.
	ResponseID   string `json:"-"`
	MaxToolCalls *int64 `json:"-"`
	// ProjectID is the project the run belongs to: the engine executes it
	// scoped to that project, with that project's upstream and limits.
	ProjectID string `json:"-"`
	// StartedBy, set on a run being created, creates it claimed by the
	// replica that will execute it at once (see StartedBy).
	StartedBy *StartedBy `json:"-"`
}

// RequiredAction is what a requires_action run waits for.
type RequiredAction struct {
	Type              string            `json:"type"`
	SubmitToolOutputs SubmitToolOutputs `json:"submit_tool_outputs"`
}

// SubmitToolOutputs lists the function calls awaiting outputs.
type SubmitToolOutputs struct {
	ToolCalls []RequiredToolCall `json:"tool_calls"`
}

// RequiredToolCall is one function call awaiting its output.
type RequiredToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function FunctionCall `json:"function"`
}

// FunctionCall names a function and its JSON-encoded arguments.
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// LastError says why a run or step failed.
type LastError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Usage counts tokens.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// Add returns the sum of two usages.
func (u Usage) Add(o Usage) Usage {
	return Usage{u.PromptTokens + o.PromptTokens, u.CompletionTokens + o.CompletionTokens, u.TotalTokens + o.TotalTokens}
}

// TruncationStrategy controls how much thread history a run sends.
type TruncationStrategy struct {
	Type         string `json:"type"`
	LastMessages *int64 `json:"last_messages"`
}

const runColumns = `id, created_at, thread_id, assistant_id, status, required_action, last_error, expires_at, started_at,
	cancelled_at, failed_at, completed_at, incomplete_details, model, instructions, tools, tool_resources, metadata, usage,
	temperature, top_p, max_prompt_tokens, max_completion_tokens, truncation_strategy, tool_choice, parallel_tool_calls,
	response_format, reasoning_effort, history_seq, attempts, response_id, max_tool_calls, project_id`

func scanRun(row rowScanner) (Run, error) {
	var (
		r                                                 Run
		required, lastErr, incomplete, usage, effort      sql.NullString
		expires, started, cancelled, failed, completed    sql.NullInt64
		maxPrompt, maxCompletion, maxToolCalls            sql.NullInt64
		responseID                                        sql.NullString
		tools, resources, meta, trunc, choice, respFormat string
		temp, topP                                        sql.NullFloat64
	)
	err := row.Scan(&r.ID, &r.CreatedAt, &r.ThreadID, &r.AssistantID, &r.Status, &required, &lastErr, &expires, &started,
		&cancelled, &failed, &completed, &incomplete, &r.Model, &r.Instructions, &tools, &resources, &meta, &usage,
		&temp, &topP, &maxPrompt, &maxCompletion, &trunc, &choice, &r.ParallelToolCalls, &respFormat, &effort,
		&r.HistorySeq, &r.Attempts, &responseID, &maxToolCalls, &r.ProjectID)
	if err != nil {
		return r, err
	}
	r.ResponseID, r.MaxToolCalls = responseID.String, nullInt(maxToolCalls)
	r.Object = "thread.run"
	r.ExpiresAt, r.StartedAt, r.CancelledAt, r.FailedAt, r.CompletedAt =
		nullInt(expires), nullInt(started), nullInt(cancelled), nullInt(failed), nullInt(completed)
	r.MaxPromptTokens, r.MaxCompletionTokens = nullInt(maxPrompt), nullInt(maxCompletion)
	r.Temperature, r.TopP = nullFloat(temp), nullFloat(topP)
	r.ReasoningEffort = nullString(effort)
	r.ToolChoice, r.ResponseFormat = json.RawMessage(choice), json.RawMessage(respFormat)
	r.ToolResources, r.TruncationStrategy = &ToolResources{}, &TruncationStrategy{}
	errs := []error{decodeColumn("tools", tools, &r.Tools), decodeColumn("tool_resources", resources, r.ToolResources),
		decodeColumn("metadata", meta, &r.Metadata), decodeColumn("truncation_strategy", trunc, r.TruncationStrategy)}
	if required.Valid {
		r.RequiredAction = &RequiredAction{}
		errs = append(errs, decodeColumn("required_action", required.String, r.RequiredAction))
	}
	if lastErr.Valid {
		r.LastError = &LastError{}
		errs = append(errs, decodeColumn("last_error", lastErr.String, r.LastError))
	}
	if incomplete.Valid {
		r.IncompleteDetails = &IncompleteDetails{}
		errs = append(errs, decodeColumn("incomplete_details", incomplete.String, r.IncompleteDetails))
	}
	if usage.Valid {
		r.Usage = &Usage{}
		errs = append(errs, decodeColumn("usage", usage.String, r.Usage))
	}
	if r.Tools == nil {
		r.Tools = []Tool{}
	}
	return r, errors.Join(errs...)
}

// nullableJSON marshals v, or returns nil for a nil pointer.
func nullableJSON[T any](v *T) (*string, error) {
	if v == nil {
		return nil, nil
	}
	s, err := jsonColumn(v)
	return &s, err
}

// NormalizeRun gives a run's unset fields the values a stored run has
// for them (no tools, automatic truncation, tool choice and format).
func NormalizeRun(r *Run) {
	if r.Tools == nil {
		r.Tools = []Tool{}
	}
	if r.ToolResources == nil {
		r.ToolResources = &ToolResources{}
	}
	if r.TruncationStrategy == nil {
		r.TruncationStrategy = &TruncationStrategy{Type: "auto"}
	}
	if len(r.ToolChoice) == 0 {
		r.ToolChoice = json.RawMessage(`"auto"`)
	}
	if len(r.ResponseFormat) == 0 {
		r.ResponseFormat = json.RawMessage(`"auto"`)
	}
}

func runArgs(r *Run) ([]any, error) {
	NormalizeRun(r)
	tools, e1 := jsonColumn(r.Tools)
	resources, e2 := jsonColumn(r.ToolResources)
	meta, e3 := jsonColumn(r.Metadata)
	trunc, e4 := jsonColumn(r.TruncationStrategy)
	required, e5 := nullableJSON(r.RequiredAction)
	lastErr, e6 := nullableJSON(r.LastError)
	incomplete, e7 := nullableJSON(r.IncompleteDetails)
	usage, e8 := nullableJSON(r.Usage)
	if err := errors.Join(e1, e2, e3, e4, e5, e6, e7, e8); err != nil {
		return nil, err
	}
	return []any{r.Status, required, lastErr, r.ExpiresAt, r.StartedAt, r.CancelledAt, r.FailedAt, r.CompletedAt,
		incomplete, r.Model, r.Instructions, tools, resources, meta, usage, r.Temperature, r.TopP, r.MaxPromptTokens,
		r.MaxCompletionTokens, trunc, string(r.ToolChoice), flag(r.ParallelToolCalls), string(r.ResponseFormat),
		r.ReasoningEffort, r.HistorySeq, r.Attempts}, nil
}

// Tx is a write transaction offering the run engine's multi-object updates,
// so that, e.g., completing a step and re-queueing its run happen together.
type Tx struct {
	s  *Store
	tx *sql.Tx
	// locked are the threads whose rows this transaction has locked.
	locked map[string]bool
}

// lockThread locks a thread's row once per transaction (see
// Store.lockThread): every Tx method writing a thread's runs, steps or
// messages calls it before touching them, so locks are always taken
// thread first.
func (t *Tx) lockThread(ctx context.Context, threadID string) error {
	if t.locked[threadID] {
		return nil
	}
	if err := t.s.lockThread(ctx, t.tx, threadID); err != nil {
		return err
	}
	if t.locked == nil {
		t.locked = map[string]bool{}
	}
	t.locked[threadID] = true
	return nil
}

// lockThreadOf locks the thread that query (selecting a thread_id by the
// id arg) names; ErrNotFound when it names none.
func (t *Tx) lockThreadOf(ctx context.Context, query, id string) error {
	var threadID string
	err := t.tx.QueryRowContext(ctx, query, id).Scan(&threadID)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return t.lockThread(ctx, threadID)
}

// Batch runs fn in one write transaction.
func (s *Store) Batch(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return fn(ctx, &Tx{s: s, tx: tx}) })
}

// Now is the store's clock, in Unix seconds.
func (s *Store) Now() int64 { return s.now().Unix() }

// ActiveRun returns the id of the thread's active run (queued, in
// progress, waiting for tool outputs or cancelling), or "".
func (s *Store) ActiveRun(ctx context.Context, threadID string) (string, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return "", err
	}
	var id string
	err = s.r.QueryRowContext(ctx, `SELECT id FROM runs WHERE thread_id = $1 AND project_id = $2 AND status IN ('queued',
		'in_progress', 'requires_action', 'cancelling')`, threadID, project).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// activeRun returns the id of the thread's active run, or "".
func activeRun(ctx context.Context, tx *sql.Tx, threadID string) (string, error) {
	var id string
	err := tx.QueryRowContext(ctx, `SELECT id FROM runs WHERE thread_id = $1 AND status IN ('queued', 'in_progress',
		'requires_action', 'cancelling')`, threadID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// insertRun writes a new run for an existing thread inside tx: the
// additional messages first, then the run, refusing if the thread already
// has an active run.
func (s *Store) insertRun(ctx context.Context, tx *sql.Tx, r Run, extra []Message) (Run, error) {
	active, err := activeRun(ctx, tx, r.ThreadID)
	if err != nil {
		return r, err
	} else if active != "" {
		return r, &ActiveRunError{ThreadID: r.ThreadID, RunID: active}
	}
	if c := r.StartedBy; c != nil {
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM messages WHERE thread_id = $1`,
			r.ThreadID).Scan(&c.PriorCount, &c.PriorSeq); err != nil {
			return r, err
		}
	}
	for _, m := range extra {
		m.ThreadID = r.ThreadID
		if m.ID != "" { // prepared by the engine (Store.PrepareMessage)
			_, err = s.insertPrepared(ctx, tx, m)
		} else {
			_, err = s.insertMessage(ctx, tx, m)
		}
		if err != nil {
			return r, err
		}
	}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM messages WHERE thread_id = $1`, r.ThreadID).Scan(&r.HistorySeq); err != nil {
		return r, err
	}
	if r.ID == "" { // the engine picks the id itself, to lock the run before it exists
		r.ID = NewID("run_")
	}
	// The engine sets created_at itself, from the same clock reading as
	// expires_at, so a second ticking over during the insert cannot make
	// a run's lifetime one second short.
	if r.CreatedAt == 0 {
		r.CreatedAt = s.now().Unix()
	}
	r.Object, r.Status = "thread.run", RunQueued
	// The run is its thread's project's: the caller locked or created the
	// thread in ctx's project.
	if r.ProjectID, err = ProjectFrom(ctx); err != nil {
		return r, err
	}
	args, err := runArgs(&r)
	if err != nil {
		return r, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO runs (id, created_at, thread_id, assistant_id, status, required_action,
		last_error, expires_at, started_at, cancelled_at, failed_at, completed_at, incomplete_details, model, instructions,
		tools, tool_resources, metadata, usage, temperature, top_p, max_prompt_tokens, max_completion_tokens,
		truncation_strategy, tool_choice, parallel_tool_calls, response_format, reasoning_effort, history_seq, attempts,
		response_id, max_tool_calls, project_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33)`,
		append(append([]any{r.ID, r.CreatedAt, r.ThreadID, r.AssistantID}, args...), nullIfEmpty(r.ResponseID), r.MaxToolCalls, r.ProjectID)...)
	if isUnique(err) {
		// A concurrent writer got there first (cannot happen with the
		// single writer connection, but the index is the real guard).
		return r, &ActiveRunError{ThreadID: r.ThreadID}
	}
	if err != nil || r.StartedBy == nil {
		return r, err
	}
	return r, s.startRun(ctx, tx, &r)
}

// CreateRun stores a queued run on an existing thread together with its
// additional messages, in one transaction. It returns ErrNotFound for a
// missing thread and *ActiveRunError if the thread has an active run.
func (s *Store) CreateRun(ctx context.Context, r Run, extra []Message) (Run, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockThread(ctx, tx, r.ThreadID); err != nil {
			return err
		}
		var err error
		r, err = s.insertRun(ctx, tx, r, extra)
		return err
	})
	if err != nil {
		return r, fmt.Errorf("create run: %w", err)
	}
	return r, nil
}

// CreateThreadAndRun stores a new thread, its messages and a queued run on
// it, in one transaction.
//
// t's id is kept if set (the engine may choose it first), and so are the
// ids of messages prepared by PrepareMessage.
func (s *Store) CreateThreadAndRun(ctx context.Context, t Thread, msgs []Message, r Run) (Thread, Run, error) {
	if t.ID == "" {
		t.ID = NewID("thread_")
	}
	t.Object, t.CreatedAt = "thread", s.now().Unix()
	if t.ToolResources == nil {
		t.ToolResources = &ToolResources{}
	}
	resources, e1 := jsonColumn(t.ToolResources)
	meta, e2 := jsonColumn(t.Metadata)
	project, e3 := ProjectFrom(ctx)
	if err := errors.Join(e1, e2, e3); err != nil {
		return t, r, fmt.Errorf("create thread and run: %w", err)
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO threads (id, created_at, tool_resources, metadata, project_id)
			VALUES ($1, $2, $3, $4, $5)`, t.ID, t.CreatedAt, resources, meta, project); err != nil {
			return err
		}
		r.ThreadID = t.ID
		var err error
		r, err = s.insertRun(ctx, tx, r, msgs)
		return err
	})
	if err != nil {
		return t, r, fmt.Errorf("create thread and run: %w", err)
	}
	return t, r, nil
}

// GetRun returns run id of thread threadID (any thread when threadID is
// empty), or ErrNotFound.
func (s *Store) GetRun(ctx context.Context, threadID, id string) (Run, error) {
	return getRun(ctx, s.r, threadID, id)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getRun(ctx context.Context, q queryer, threadID, id string, lock ...string) (Run, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return Run{}, fmt.Errorf("get run %s: %w", id, err)
	}
	query, args := `SELECT `+runColumns+` FROM runs WHERE id = $1 AND project_id = $2`, []any{id, project}
	if threadID != "" {
		query += ` AND thread_id = $3`
		args = append(args, threadID)
	}
	query += strings.Join(lock, "")
	r, err := scanRun(q.QueryRowContext(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("get run %s: %w", id, err)
	}
	return r, nil
}

// ListRuns returns one page of a thread's runs.
func (s *Store) ListRuns(ctx context.Context, threadID string, p ListParams) (Page[Run], error) {
	return listQuery(ctx, s.r, "runs", runColumns, "thread_id = $1", []any{threadID}, p, scanRun)
}

// RunProject returns the project of run id, whatever it is: the engine's
// own lookup for a run it was told of by id (another replica's
// notification), before it executes the run scoped to that project.
func (s *Store) RunProject(ctx context.Context, id string) (string, error) {
	var p string
	err := s.r.QueryRowContext(ctx, `SELECT project_id FROM runs WHERE id = $1`, id).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("project of run %s: %w", id, err)
	}
	return p, nil
}

// RunsWithStatus returns every run in one of statuses, oldest first, in
// every project: the engine's start-up recovery and the housekeeper use it,
// and act on each run scoped to its ProjectID.
func (s *Store) RunsWithStatus(ctx context.Context, statuses ...string) ([]Run, error) {
	if len(statuses) == 0 {
		return nil, nil
	}
	args := make([]any, len(statuses))
	for i, st := range statuses {
		args[i] = st
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+runColumns+` FROM runs WHERE status IN (`+
		placeholders(1, len(statuses))+`) ORDER BY seq`, args...)
	if err != nil {
		return nil, fmt.Errorf("runs with status: %w", err)
	}
	return collect(rows, scanRun)
}

// ExpiredRuns returns active runs whose expires_at has passed, in every
// project (the housekeeper's sweep; it acts on each in its ProjectID).
func (s *Store) ExpiredRuns(ctx context.Context, now int64) ([]Run, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+runColumns+` FROM runs WHERE status IN ('queued', 'in_progress',
		'requires_action', 'cancelling') AND expires_at IS NOT NULL AND expires_at <= $1 ORDER BY seq`, now)
	if err != nil {
		return nil, fmt.Errorf("expired runs: %w", err)
	}
	return collect(rows, scanRun)
}

// ThreadRuns returns every run of a thread, oldest first.
func (s *Store) ThreadRuns(ctx context.Context, threadID string) ([]Run, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("thread runs: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+runColumns+` FROM runs WHERE thread_id = $1 AND project_id = $2 ORDER BY seq`,
		threadID, project)
	if err != nil {
		return nil, fmt.Errorf("thread runs: %w", err)
	}
	return collect(rows, scanRun)
}

func collect[T any](rows *sql.Rows, scan func(rowScanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// UpdateRunMetadata replaces a run's metadata.
func (s *Store) UpdateRunMetadata(ctx context.Context, threadID, id string, meta Metadata) (Run, error) {
	var r Run
	err := s.Batch(ctx, func(ctx context.Context, tx *Tx) error {
		var err error
		r, err = tx.UpdateRun(ctx, id, func(r *Run) error {
			if r.ThreadID != threadID {
				return ErrNotFound
			}
			r.Metadata = meta
			return nil
		})
		return err
	})
	return r, err
}

// GetRun reads a run inside the transaction, locking it (after its
// thread) for the rest of the transaction, which may act on what it read.
func (t *Tx) GetRun(ctx context.Context, id string) (Run, error) {
	if err := t.lockThreadOf(ctx, `SELECT thread_id FROM runs WHERE id = $1`, id); err != nil {
		return Run{}, err
	}
	return getRun(ctx, t.tx, "", id, t.s.forUpdate())
}

// UpdateRun applies fn to the stored run and writes it back. A status
// change the lifecycle does not allow fails with ErrIllegalTransition.
func (t *Tx) UpdateRun(ctx context.Context, id string, fn func(*Run) error) (Run, error) {
	if err := t.lockThreadOf(ctx, `SELECT thread_id FROM runs WHERE id = $1`, id); err != nil {
		return Run{}, err
	}
	r, err := getRun(ctx, t.tx, "", id, t.s.forUpdate())
	if err != nil {
		return r, err
	}
	was, err := runArgs(&r)
	if err != nil {
		return r, err
	}
	was = argValues(was) // fn may change what the pointers point to
	if err := fn(&r); err != nil {
		return r, err
	}
	args, err := runArgs(&r)
	if err != nil {
		return r, err
	}
	// Most updates move a run along its lifecycle (a start, an end, a
	// required action): they write those columns alone, and the status
	// only when it changes (its trigger and the indexes on it cost the
	// writer). Three fixed statements, so each keeps its prepared form.
	status, lifecycle, other := false, false, false
	for i, a := range argValues(args) {
		if a == was[i] {
			continue
		}
		switch {
		case i == 0:
			status = true
		case runLifecycleArg[i]:
			lifecycle = true
		default:
			other = true
		}
	}
	switch {
	case other:
		_, err = t.tx.ExecContext(ctx, `UPDATE runs SET status = $1, required_action = $2, last_error = $3, expires_at = $4,
			started_at = $5, cancelled_at = $6, failed_at = $7, completed_at = $8, incomplete_details = $9, model = $10,
			instructions = $11, tools = $12, tool_resources = $13, metadata = $14, usage = $15, temperature = $16, top_p = $17,
			max_prompt_tokens = $18, max_completion_tokens = $19, truncation_strategy = $20, tool_choice = $21,
			parallel_tool_calls = $22, response_format = $23, reasoning_effort = $24, history_seq = $25, attempts = $26 WHERE id = $27`,
			append(args, id)...)
	case status:
		_, err = t.tx.ExecContext(ctx, `UPDATE runs SET status = $1, required_action = $2, last_error = $3, expires_at = $4,
			started_at = $5, cancelled_at = $6, failed_at = $7, completed_at = $8, incomplete_details = $9, metadata = $10,
			usage = $11, attempts = $12 WHERE id = $13`, lifecycleArgs(args, true, id)...)
	case lifecycle:
		_, err = t.tx.ExecContext(ctx, `UPDATE runs SET required_action = $1, last_error = $2, expires_at = $3,
			started_at = $4, cancelled_at = $5, failed_at = $6, completed_at = $7, incomplete_details = $8, metadata = $9,
			usage = $10, attempts = $11 WHERE id = $12`, lifecycleArgs(args, false, id)...)
	default:
		return r, nil // nothing changed
	}
	if isIllegalTransition(err) {
		// The only trigger on runs that aborts is runs_legal_transition.
		return r, fmt.Errorf("run %s: %w", id, ErrIllegalTransition)
	}
	return r, err
}

// runLifecycleArg marks runArgs' lifecycle columns, which the narrow
// updates of UpdateRun write (the status, index 0, apart): required_action,
// last_error, expires_at, the four timestamps, incomplete_details,
// metadata, usage and attempts.
var runLifecycleArg = [26]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true, 13: true, 14: true, 25: true}

// lifecycleArgs picks from runArgs' values the lifecycle columns' (with
// the status first if status) and appends id.
func lifecycleArgs(args []any, status bool, id string) []any {
	out := make([]any, 0, 13)
	if status {
		out = append(out, args[0])
	}
	for i, a := range args {
		if runLifecycleArg[i] {
			out = append(out, a)
		}
	}
	return append(out, id)
}

// argValues returns statement arguments with their pointers followed, so
// that two sets compare value by value with ==.
func argValues(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = a
		if v := reflect.ValueOf(a); v.Kind() == reflect.Pointer {
			out[i] = nil
			if !v.IsNil() {
				out[i] = v.Elem().Interface()
			}
		}
	}
	return out
}

// nullIfEmpty stores "" as NULL.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
