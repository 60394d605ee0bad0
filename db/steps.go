package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Run step statuses and types.
const (
	StepInProgress = "in_progress"
	StepCompleted  = "completed"
	StepCancelled  = "cancelled"
	StepFailed     = "failed"
	StepExpired    = "expired"

	StepMessageCreation = "message_creation"
	StepToolCalls       = "tool_calls"
)

// RunStep is a run step as the API shows it.
type RunStep struct {
	ID          string      `json:"id"`
	Object      string      `json:"object"`
	CreatedAt   int64       `json:"created_at"`
	AssistantID string      `json:"assistant_id"`
	ThreadID    string      `json:"thread_id"`
	RunID       string      `json:"run_id"`
	Type        string      `json:"type"`
	Status      string      `json:"status"`
	StepDetails StepDetails `json:"step_details"`
	LastError   *LastError  `json:"last_error"`
	ExpiredAt   *int64      `json:"expired_at"`
	CancelledAt *int64      `json:"cancelled_at"`
	FailedAt    *int64      `json:"failed_at"`
	CompletedAt *int64      `json:"completed_at"`
	Metadata    Metadata    `json:"metadata"`
	Usage       *Usage      `json:"usage"`

	// TurnUsage is the token usage recorded for the step when its model
	// turn ended; Usage shows it once the step is no longer in progress.
	TurnUsage *Usage `json:"-"`
	// ToolIO records, by tool call id, the calls of a tool_calls step that
	// the server runs itself (not part of the API object).
	ToolIO map[string]ToolIO `json:"-"`
	// Reasoning is what the model reasoned in the turn that made the step
	// (not part of the Assistants object; a response shows it).
	Reasoning *Reasoning `json:"-"`
}

// Reasoning is a model turn's reasoning: the text it streamed
// (reasoning_content), shown as a reasoning item with ID, and the
// reasoning tokens its upstream reported.
type Reasoning struct {
	ID     string `json:"id,omitempty"`
	Text   string `json:"text,omitempty"`
	Tokens int64  `json:"tokens,omitempty"`
}

// ToolIO is what the model sent to and read from one server-side tool
// call, as the Chat Completions history replays it.
type ToolIO struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
	// Output is nil until the call has finished.
	Output *string `json:"output"`
	// Attachments are content parts the call adds to the run's answer
	// message (images a code_interpreter call produced).
	Attachments []ContentPart `json:"attachments,omitempty"`
	// Client is set when the server handed the call to the client after
	// all (a failed webhook with on_failure "requires_action").
	Client bool `json:"client,omitempty"`
}

// StepDetails is message_creation or tool_calls.
type StepDetails struct {
	Type            string           `json:"type"`
	MessageCreation *MessageCreation `json:"message_creation,omitempty"`
	ToolCalls       []ToolCall       `json:"tool_calls,omitempty"`
}

// MarshalJSON always writes tool_calls (as [] when empty) for a tool_calls
// step, as the SDKs expect.
func (d StepDetails) MarshalJSON() ([]byte, error) {
	type plain StepDetails
	if d.Type == StepToolCalls {
		calls := d.ToolCalls
		if calls == nil {
			calls = []ToolCall{}
		}
		return json.Marshal(struct {
			Type      string     `json:"type"`
			ToolCalls []ToolCall `json:"tool_calls"`
		}{d.Type, calls})
	}
	return json.Marshal(plain(d))
}

// MessageCreation names the message a step created.
type MessageCreation struct {
	MessageID string `json:"message_id"`
}

// ToolCall is one call in a tool_calls step, discriminated by Type:
// "function", "code_interpreter" or "file_search".
type ToolCall struct {
	ID              string               `json:"id"`
	Type            string               `json:"type"`
	Function        *FunctionCallOutput  `json:"function,omitempty"`
	CodeInterpreter *CodeInterpreterCall `json:"code_interpreter,omitempty"`
	FileSearch      *FileSearchCall      `json:"file_search,omitempty"`
}

// FunctionCallOutput is a function call with its output (null until
// submitted).
type FunctionCallOutput struct {
	Name      string  `json:"name"`
	Arguments string  `json:"arguments"`
	Output    *string `json:"output"`
}

// CodeInterpreterCall is a code_interpreter call: the code the model wrote
// and what running it produced.
type CodeInterpreterCall struct {
	Input   string       `json:"input"`
	Outputs []CodeOutput `json:"outputs"`
	// ContainerID is the container a response's code ran in (none for
	// runs), which its code_interpreter_call item names.
	ContainerID string `json:"container_id,omitempty"`
}

// CodeOutput is one output of a code_interpreter call: "logs" (stdout,
// stderr and errors as text) or "image" (a file the code produced).
type CodeOutput struct {
	Type  string     `json:"type"`
	Logs  string     `json:"logs,omitempty"`
	Image *CodeImage `json:"image,omitempty"`
}

// MarshalJSON always writes a logs output's "logs", even when empty: the
// API requires it.
func (o CodeOutput) MarshalJSON() ([]byte, error) {
	if o.Type == "logs" {
		return json.Marshal(struct {
			Type string `json:"type"`
			Logs string `json:"logs"`
		}{o.Type, o.Logs})
	}
	type plain CodeOutput
	return json.Marshal(plain(o))
}

// CodeImage names an image file a code_interpreter call produced.
type CodeImage struct {
	FileID string `json:"file_id"`
}

// FileSearchCall is a file_search call: the ranking it used and the chunks
// it retrieved.
type FileSearchCall struct {
	RankingOptions *FileSearchRanking `json:"ranking_options,omitempty"`
	Results        []FileSearchResult `json:"results,omitempty"`
}

// FileSearchRanking is the ranking a file_search call used.
type FileSearchRanking struct {
	Ranker         string  `json:"ranker"`
	ScoreThreshold float64 `json:"score_threshold"`
}

// FileSearchResult is one retrieved chunk. Content is shown only when the
// request's include[] asks for it.
type FileSearchResult struct {
	FileID   string              `json:"file_id"`
	FileName string              `json:"file_name"`
	Score    float64             `json:"score"`
	Content  []FileSearchContent `json:"content,omitempty"`
}

// FileSearchContent is the text of a retrieved chunk.
type FileSearchContent struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

const stepColumns = `id, created_at, assistant_id, thread_id, run_id, type, status, step_details, last_error, expired_at,
	cancelled_at, failed_at, completed_at, metadata, usage, tool_io, reasoning`

func scanStep(row rowScanner) (RunStep, error) {
	var (
		st                                    RunStep
		details, meta                         string
		lastErr, usage, toolIO, reasoning     sql.NullString
		expired, cancelled, failed, completed sql.NullInt64
	)
	if err := row.Scan(&st.ID, &st.CreatedAt, &st.AssistantID, &st.ThreadID, &st.RunID, &st.Type, &st.Status, &details,
		&lastErr, &expired, &cancelled, &failed, &completed, &meta, &usage, &toolIO, &reasoning); err != nil {
		return st, err
	}
	st.Object = "thread.run.step"
	st.ExpiredAt, st.CancelledAt, st.FailedAt, st.CompletedAt = nullInt(expired), nullInt(cancelled), nullInt(failed), nullInt(completed)
	errs := []error{decodeColumn("step_details", details, &st.StepDetails), decodeColumn("metadata", meta, &st.Metadata)}
	if lastErr.Valid {
		st.LastError = &LastError{}
		errs = append(errs, decodeColumn("last_error", lastErr.String, st.LastError))
	}
	if usage.Valid {
		st.TurnUsage = &Usage{}
		errs = append(errs, decodeColumn("usage", usage.String, st.TurnUsage))
	}
	if toolIO.Valid {
		errs = append(errs, decodeColumn("tool_io", toolIO.String, &st.ToolIO))
	}
	if reasoning.Valid {
		st.Reasoning = &Reasoning{}
		errs = append(errs, decodeColumn("reasoning", reasoning.String, st.Reasoning))
	}
	st.showUsage()
	return st, errors.Join(errs...)
}

// showUsage exposes the turn's usage once the step has ended.
func (st *RunStep) showUsage() {
	st.Usage = nil
	if st.Status != StepInProgress && st.TurnUsage != nil {
		u := *st.TurnUsage
		st.Usage = &u
	}
}

// CreateStep inserts a step (in progress) and registers its tool call ids,
// which must be unique across the store.
func (t *Tx) CreateStep(ctx context.Context, st RunStep) (RunStep, error) {
	st = t.s.PrepareStep(st)
	if err := t.lockThread(ctx, st.ThreadID); err != nil {
		return st, fmt.Errorf("create step: %w", err)
	}
	if err := t.writeStep(ctx, &st, true); err != nil {
		return st, fmt.Errorf("create step: %w", err)
	}
	return st, nil
}

// PrepareStep gives st what CreateStep would: an id, its object type, its
// creation time and, unless set, the status in_progress.
func (s *Store) PrepareStep(st RunStep) RunStep {
	st.ID, st.Object, st.CreatedAt = NewID("step_"), "thread.run.step", s.now().Unix()
	if st.Status == "" {
		st.Status = StepInProgress
	}
	return st
}

// CreatePrepared stores a message and a step made by PrepareMessage and
// PrepareStep as they are, in the message's thread (locked first): the
// engine announces them before they are stored (see Store.Announce).
func (t *Tx) CreatePrepared(ctx context.Context, m Message, st RunStep) error {
	if err := t.lockThread(ctx, m.ThreadID); err != nil {
		return err
	}
	if _, err := t.s.insertPrepared(ctx, t.tx, m); err != nil {
		return fmt.Errorf("create message: %w", err)
	}
	if err := t.writeStep(ctx, &st, true); err != nil {
		return fmt.Errorf("create step: %w", err)
	}
	return nil
}

// UpdateStep applies fn to a stored step and writes it back.
func (t *Tx) UpdateStep(ctx context.Context, id string, fn func(*RunStep) error) (RunStep, error) {
	if err := t.lockThreadOf(ctx, `SELECT thread_id FROM run_steps WHERE id = $1`, id); err != nil {
		return RunStep{}, err
	}
	st, err := scanStep(t.tx.QueryRowContext(ctx, `SELECT `+stepColumns+` FROM run_steps WHERE id = $1`+t.s.forUpdate(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return st, ErrNotFound
	}
	if err != nil {
		return st, err
	}
	if err := fn(&st); err != nil {
		return st, err
	}
	if err := t.writeStep(ctx, &st, false); err != nil {
		return st, fmt.Errorf("update step %s: %w", id, err)
	}
	return st, nil
}

func (t *Tx) writeStep(ctx context.Context, st *RunStep, insert bool) error {
	details, e1 := jsonColumn(st.StepDetails)
	meta, e2 := jsonColumn(st.Metadata)
	lastErr, e3 := nullableJSON(st.LastError)
	usage, e4 := nullableJSON(st.TurnUsage)
	reasoning, e6 := nullableJSON(st.Reasoning)
	var toolIO any
	var e5 error
	if len(st.ToolIO) > 0 {
		toolIO, e5 = jsonColumn(st.ToolIO)
	}
	if err := errors.Join(e1, e2, e3, e4, e5, e6); err != nil {
		return err
	}
	var err error
	if insert {
		// The step is its thread's project's (CreateStep locked the
		// thread in ctx's project).
		project, err := ProjectFrom(ctx)
		if err != nil {
			return err
		}
		_, err = t.tx.ExecContext(ctx, `INSERT INTO run_steps (id, created_at, assistant_id, thread_id, run_id, type, status,
			step_details, last_error, expired_at, cancelled_at, failed_at, completed_at, metadata, usage, tool_io, reasoning, project_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`, st.ID, st.CreatedAt, st.AssistantID, st.ThreadID, st.RunID,
			st.Type, st.Status, details, lastErr, st.ExpiredAt, st.CancelledAt, st.FailedAt, st.CompletedAt, meta, usage, toolIO, reasoning, project)
		if err != nil {
			return err
		}
	} else {
		_, err = t.tx.ExecContext(ctx, `UPDATE run_steps SET status = $1, step_details = $2, last_error = $3, expired_at = $4,
			cancelled_at = $5, failed_at = $6, completed_at = $7, metadata = $8, usage = $9, tool_io = $10, reasoning = $11
			WHERE id = $12`, st.Status, details,
			lastErr, st.ExpiredAt, st.CancelledAt, st.FailedAt, st.CompletedAt, meta, usage, toolIO, reasoning, st.ID)
	}
	if err != nil {
		return err
	}
	for _, tc := range st.StepDetails.ToolCalls {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO tool_calls (id, run_id, step_id) VALUES ($1, $2, $3)
			ON CONFLICT (id) DO NOTHING`, tc.ID, st.RunID, st.ID); err != nil {
			return err
		}
		var owner string
		if err := t.tx.QueryRowContext(ctx, `SELECT step_id FROM tool_calls WHERE id = $1`, tc.ID).Scan(&owner); err != nil {
			return err
		}
		if owner != st.ID {
			return fmt.Errorf("tool call id %s already belongs to step %s", tc.ID, owner)
		}
	}
	st.showUsage()
	return nil
}

// DeleteStep removes a step (recovery drops steps a crash interrupted).
func (t *Tx) DeleteStep(ctx context.Context, id string) error {
	if err := t.lockThreadOf(ctx, `SELECT thread_id FROM run_steps WHERE id = $1`, id); errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM tool_calls WHERE step_id = $1`, id); err != nil {
		return err
	}
	_, err := t.tx.ExecContext(ctx, `DELETE FROM run_steps WHERE id = $1`, id)
	return err
}

// RunSteps returns a run's steps, oldest first.
func (t *Tx) RunSteps(ctx context.Context, runID string) ([]RunStep, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := t.tx.QueryContext(ctx, `SELECT `+stepColumns+` FROM run_steps WHERE run_id = $1 AND project_id = $2 ORDER BY seq`,
		runID, project)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanStep)
}

// GetStep returns step id of run runID in thread threadID, or ErrNotFound.
func (s *Store) GetStep(ctx context.Context, threadID, runID, id string) (RunStep, error) {
	project, err := ProjectFrom(ctx)
	if err == nil {
		err = s.settled(ctx, threadID)
	}
	if err != nil {
		return RunStep{}, fmt.Errorf("get step %s: %w", id, err)
	}
	st, err := scanStep(s.r.QueryRowContext(ctx, `SELECT `+stepColumns+` FROM run_steps WHERE id = $1 AND run_id = $2
		AND thread_id = $3 AND project_id = $4`, id, runID, threadID, project))
	if errors.Is(err, sql.ErrNoRows) {
		return st, ErrNotFound
	}
	if err != nil {
		return st, fmt.Errorf("get step %s: %w", id, err)
	}
	return st, nil
}

// ListSteps returns one page of a run's steps.
func (s *Store) ListSteps(ctx context.Context, threadID, runID string, p ListParams) (Page[RunStep], error) {
	if err := s.settled(ctx, threadID); err != nil {
		return Page[RunStep]{}, err
	}
	return listQuery(ctx, s.r, "run_steps", stepColumns, "run_id = $1 AND thread_id = $2", []any{runID, threadID}, p, scanStep)
}

// ThreadSteps returns every step of every run of a thread, oldest first.
func (s *Store) ThreadSteps(ctx context.Context, threadID string) ([]RunStep, error) {
	project, err := ProjectFrom(ctx)
	if err == nil {
		err = s.settled(ctx, threadID)
	}
	if err != nil {
		return nil, fmt.Errorf("thread steps: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+stepColumns+` FROM run_steps WHERE thread_id = $1 AND project_id = $2 ORDER BY seq`,
		threadID, project)
	if err != nil {
		return nil, fmt.Errorf("thread steps: %w", err)
	}
	return collect(rows, scanStep)
}

// HistoryMessages returns every message of a thread, oldest first, each
// with its sequence number (runs place their history by it).
func (s *Store) HistoryMessages(ctx context.Context, threadID string) ([]Message, []int64, error) {
	project, err := ProjectFrom(ctx)
	if err == nil {
		err = s.settled(ctx, threadID)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("thread messages: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, `+messageColumns+` FROM messages WHERE thread_id = $1 AND project_id = $2
		ORDER BY seq`, threadID, project)
	if err != nil {
		return nil, nil, fmt.Errorf("thread messages: %w", err)
	}
	defer rows.Close()
	var msgs []Message
	var seqs []int64
	for rows.Next() {
		var seq int64
		m, err := scanMessage(seqScanner{rows, &seq})
		if err != nil {
			return nil, nil, fmt.Errorf("thread messages: %w", err)
		}
		msgs, seqs = append(msgs, m), append(seqs, seq)
	}
	return msgs, seqs, rows.Err()
}

// seqScanner prepends a seq column to another scanner's destinations.
type seqScanner struct {
	rows *sql.Rows
	seq  *int64
}

func (s seqScanner) Scan(dest ...any) error { return s.rows.Scan(append([]any{s.seq}, dest...)...) }

// CreateMessage inserts a message inside the transaction (a run's own
// messages, which the active-run rule does not block).
func (t *Tx) CreateMessage(ctx context.Context, m Message) (Message, error) {
	if err := t.lockThread(ctx, m.ThreadID); err != nil {
		return m, err
	}
	return t.s.insertMessage(ctx, t.tx, m)
}

// UpdateMessage applies fn to a stored message and writes back its status,
// content and timestamps.
func (t *Tx) UpdateMessage(ctx context.Context, id string, fn func(*Message) error) (Message, error) {
	if err := t.lockThreadOf(ctx, `SELECT thread_id FROM messages WHERE id = $1`, id); err != nil {
		return Message{}, err
	}
	m, err := scanMessage(t.tx.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = $1`+t.s.forUpdate(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return m, ErrNotFound
	}
	if err != nil {
		return m, err
	}
	if err := fn(&m); err != nil {
		return m, err
	}
	normalizeMessage(&m)
	content, e1 := jsonColumn(m.Content)
	incomplete, e2 := nullableJSON(m.IncompleteDetails)
	meta, e3 := jsonColumn(m.Metadata)
	if err := errors.Join(e1, e2, e3); err != nil {
		return m, err
	}
	_, err = t.tx.ExecContext(ctx, `UPDATE messages SET status = $1, content = $2, incomplete_details = $3, completed_at = $4,
		incomplete_at = $5, metadata = $6 WHERE id = $7`, m.Status, content, incomplete, m.CompletedAt, m.IncompleteAt, meta, id)
	return m, err
}

// DeleteMessage removes a message inside the transaction.
func (t *Tx) DeleteMessage(ctx context.Context, id string) error {
	if err := t.lockThreadOf(ctx, `SELECT thread_id FROM messages WHERE id = $1`, id); errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	_, err := t.tx.ExecContext(ctx, `DELETE FROM messages WHERE id = $1`, id)
	return err
}
