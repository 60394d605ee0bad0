package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// A response of the Responses API is a run on a thread of its own (its
// output messages live there, as a run's do); ResponseRecord is what only a
// response has. Items (input, output, conversation) are kept as the JSON
// the API shows, since their shapes are the API's own and many.

// ErrResponseInProgress is returned when continuing from a response that
// has not finished.
var ErrResponseInProgress = errors.New("response is still in progress")

// ErrConversationLocked is returned when a conversation already has an
// unfinished response.
var ErrConversationLocked = errors.New("conversation has an unfinished response")

// ResponseRecord is a stored response, without the state its run holds.
type ResponseRecord struct {
	ID                 string
	RunID              string
	ThreadID           string
	CreatedAt          int64
	PreviousResponseID *string
	ConversationID     *string
	Store              bool
	Background         bool
	// Echo holds the request fields the Response object shows as sent
	// (tools, text, truncation, …), by their API names.
	Echo map[string]json.RawMessage
	// Output is the response's output items, once it has finished.
	Output []json.RawMessage
	// History is Output as the model read it: a function call the server
	// ran (a webhook) is followed by its function_call_output. Responses
	// continuing from this one start from it.
	History []json.RawMessage
	// ReasoningTokens are the finished response's reasoning tokens.
	ReasoningTokens int64
	// ProjectID is the project the response belongs to.
	ProjectID string
}

const responseColumns = `id, run_id, thread_id, created_at, previous_response_id, conversation_id, stored, background, echo, output,
	history, reasoning_tokens, project_id`

func scanResponse(row rowScanner) (ResponseRecord, error) {
	var (
		r                     ResponseRecord
		prev, conv, out, hist sql.NullString
		stored, bg            int64
		echo                  string
	)
	if err := row.Scan(&r.ID, &r.RunID, &r.ThreadID, &r.CreatedAt, &prev, &conv, &stored, &bg, &echo, &out, &hist, &r.ReasoningTokens,
		&r.ProjectID); err != nil {
		return r, err
	}
	r.PreviousResponseID, r.ConversationID = nullString(prev), nullString(conv)
	r.Store, r.Background = stored != 0, bg != 0
	err := decodeColumn("echo", echo, &r.Echo)
	if out.Valid {
		err = errors.Join(err, decodeColumn("output", out.String, &r.Output))
	}
	if hist.Valid {
		err = errors.Join(err, decodeColumn("history", hist.String, &r.History))
	}
	return r, err
}

// CreateResponse stores, in one transaction, a response's thread, its
// queued run, the response and its input items. It returns
// ErrConversationLocked when the response's conversation already has an
// unfinished response, and ErrNotFound when the conversation is missing.
//
// t's id is kept if set (the engine may choose it first).
func (s *Store) CreateResponse(ctx context.Context, t Thread, r Run, resp ResponseRecord, input []json.RawMessage) (Thread, Run, error) {
	if t.ID == "" {
		t.ID = NewID("thread_")
	}
	t.Object, t.CreatedAt = "thread", s.now().Unix()
	if t.ToolResources == nil {
		t.ToolResources = &ToolResources{}
	}
	resources, e1 := jsonColumn(t.ToolResources)
	meta, e2 := jsonColumn(t.Metadata)
	echo, e3 := jsonColumn(resp.Echo)
	project, e4 := ProjectFrom(ctx)
	if err := errors.Join(e1, e2, e3, e4); err != nil {
		return t, r, fmt.Errorf("create response: %w", err)
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if resp.ConversationID != nil {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM conversations WHERE id = $1 AND project_id = $2`,
				*resp.ConversationID, project).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return ErrNotFound
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO threads (id, created_at, tool_resources, metadata, project_id)
			VALUES ($1, $2, $3, $4, $5)`, t.ID, t.CreatedAt, resources, meta, project); err != nil {
			return err
		}
		r.ThreadID, r.ResponseID = t.ID, resp.ID
		var err error
		if r, err = s.insertRun(ctx, tx, r, nil); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO responses (id, run_id, thread_id, created_at, previous_response_id,
			conversation_id, active, stored, background, echo, project_id) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10)`,
			resp.ID, r.ID, t.ID, r.CreatedAt, resp.PreviousResponseID, resp.ConversationID, boolInt(resp.Store),
			boolInt(resp.Background), echo, project)
		if isUnique(err) {
			return ErrConversationLocked
		}
		if err != nil {
			return err
		}
		for _, it := range input {
			if _, err := tx.ExecContext(ctx, `INSERT INTO response_input_items (id, response_id, item) VALUES ($1, $2, $3)`,
				itemID(it), resp.ID, string(it)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return t, r, fmt.Errorf("create response: %w", err)
	}
	return t, r, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// itemID reads an item's "id".
func itemID(item json.RawMessage) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(item, &v)
	return v.ID
}

// GetResponse returns the response with id, stored or not (store: false
// responses exist while they run), or ErrNotFound.
func (s *Store) GetResponse(ctx context.Context, id string) (ResponseRecord, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return ResponseRecord{}, fmt.Errorf("get response %s: %w", id, err)
	}
	r, err := scanResponse(s.r.QueryRowContext(ctx, `SELECT `+responseColumns+` FROM responses WHERE id = $1 AND project_id = $2`,
		id, project))
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("get response %s: %w", id, err)
	}
	return r, nil
}

// ListResponseInputItems returns one page of a response's input items.
func (s *Store) ListResponseInputItems(ctx context.Context, responseID string, p ListParams) (Page[json.RawMessage], error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return Page[json.RawMessage]{}, fmt.Errorf("list response input items: %w", err)
	}
	// Input items carry no project: they are their response's.
	return listQuery(ctx, s.r, "response_input_items", "item",
		"response_id = $1 AND response_id IN (SELECT id FROM responses WHERE project_id = $2)", []any{responseID, project}, p, scanItem)
}

func scanItem(row rowScanner) (json.RawMessage, error) {
	var item string
	if err := row.Scan(&item); err != nil {
		return nil, err
	}
	return json.RawMessage(item), nil
}

// inputItems returns a response's input items in order.
func inputItems(ctx context.Context, q rowsQueryer, responseID string) ([]json.RawMessage, error) {
	return queryItems(ctx, q, `SELECT item FROM response_input_items WHERE response_id = $1 ORDER BY seq`, responseID)
}

// rowsQueryer is a pool or a transaction.
type rowsQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryItems(ctx context.Context, q rowsQueryer, query string, args ...any) ([]json.RawMessage, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanItem)
}

// maxChain bounds how far a previous_response_id chain is followed.
const maxChain = 10000

// ResponseHistory is what a response continuing from response id (its
// previous_response_id) starts from: the whole chain's input and output
// items, oldest first, with a conversation's items where a response of
// the chain used one. A response that is missing or was not stored is
// ErrNotFound.
func (s *Store) ResponseHistory(ctx context.Context, id string) ([]json.RawMessage, error) {
	r, err := s.GetResponse(ctx, id)
	if err != nil {
		return nil, err
	}
	if !r.Store {
		return nil, ErrNotFound
	}
	if r.Output == nil {
		return nil, ErrResponseInProgress
	}
	items, err := s.responseContext(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("response history %s: %w", id, err)
	}
	return append(items, r.History...), nil
}

// responseContext is everything the model reads for r before its own
// output: its chain's history, its conversation's items, its input.
func (s *Store) responseContext(ctx context.Context, r ResponseRecord) ([]json.RawMessage, error) {
	return s.contextOf(ctx, r, nil)
}

// ResponseContextOf is ResponseInput for a response not stored yet: resp
// as it will be, with input its own input items (as CreateResponse takes
// them); the rest of its context (its chain, its conversation) is read.
func (s *Store) ResponseContextOf(ctx context.Context, resp ResponseRecord, input []json.RawMessage) ([]json.RawMessage, error) {
	if input == nil {
		input = []json.RawMessage{}
	}
	items, err := s.contextOf(ctx, resp, input)
	if err != nil {
		return nil, fmt.Errorf("response input of %s: %w", resp.ID, err)
	}
	return items, nil
}

// contextOf is responseContext, with r's own input items given (own, when
// not nil) rather than read.
func (s *Store) contextOf(ctx context.Context, r ResponseRecord, own []json.RawMessage) ([]json.RawMessage, error) {
	chain := []ResponseRecord{r}
	for cur := r; cur.PreviousResponseID != nil; {
		if len(chain) > maxChain {
			return nil, fmt.Errorf("response %s: previous_response_id chain longer than %d", r.ID, maxChain)
		}
		prev, err := s.GetResponse(ctx, *cur.PreviousResponseID)
		if errors.Is(err, ErrNotFound) {
			break // deleted since: the chain starts after it
		}
		if err != nil {
			return nil, err
		}
		chain = append(chain, prev)
		cur = prev
	}
	var items []json.RawMessage
	for i := len(chain) - 1; i >= 0; i-- {
		c := chain[i]
		if c.ConversationID != nil && c.ID == r.ID {
			conv, err := s.ConversationItems(ctx, *c.ConversationID)
			if err != nil {
				return nil, err
			}
			items = append(items, conv...)
		}
		in := own
		if c.ID != r.ID || own == nil {
			var err error
			if in, err = inputItems(ctx, s.r, c.ID); err != nil {
				return nil, err
			}
		}
		items = append(items, in...)
		if i > 0 {
			items = append(items, c.History...)
		}
	}
	return items, nil
}

// ResponseInput is the context of response id (its chain's history, its
// conversation's items and its own input, in order), what its run's
// prompt starts from.
func (s *Store) ResponseInput(ctx context.Context, id string) ([]json.RawMessage, error) {
	r, err := s.GetResponse(ctx, id)
	if err != nil {
		return nil, err
	}
	items, err := s.responseContext(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("response input of %s: %w", id, err)
	}
	return items, nil
}

// ResponseOutput projects a run's steps and messages onto the output
// items of the response it serves, in step order.
func (s *Store) ResponseOutput(ctx context.Context, runID string) ([]json.RawMessage, error) {
	if err := s.settled(ctx, runID); err != nil {
		return nil, err
	}
	steps, err := collectSteps(ctx, s.r, runID)
	if err != nil {
		return nil, err
	}
	msgs, err := runMessages(ctx, s.r, runID)
	if err != nil {
		return nil, err
	}
	return OutputItems(steps, msgs, false), nil
}

func collectSteps(ctx context.Context, q rowsQueryer, runID string) ([]RunStep, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("steps of run %s: %w", runID, err)
	}
	rows, err := q.QueryContext(ctx, `SELECT `+stepColumns+` FROM run_steps WHERE run_id = $1 AND project_id = $2 ORDER BY seq`,
		runID, project)
	if err != nil {
		return nil, fmt.Errorf("steps of run %s: %w", runID, err)
	}
	return collect(rows, scanStep)
}

func runMessages(ctx context.Context, q rowsQueryer, runID string) (map[string]Message, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("messages of run %s: %w", runID, err)
	}
	rows, err := q.QueryContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE run_id = $1 AND project_id = $2`, runID, project)
	if err != nil {
		return nil, fmt.Errorf("messages of run %s: %w", runID, err)
	}
	list, err := collect(rows, scanMessage)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Message, len(list))
	for _, m := range list {
		out[m.ID] = m
	}
	return out, nil
}

// FinishResponse records, in the transaction that ends its run, the
// output of response id, releases the response's conversation, and
// appends the response's input and output items to the conversation when
// it completed. A response deleted meanwhile is no error.
func (t *Tx) FinishResponse(ctx context.Context, id, status string) error {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return fmt.Errorf("finish response %s: %w", id, err)
	}
	r, err := scanResponse(t.tx.QueryRowContext(ctx, `SELECT `+responseColumns+` FROM responses WHERE id = $1 AND project_id = $2`,
		id, project))
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finish response %s: %w", id, err)
	}
	runID := r.RunID
	steps, err := collectSteps(ctx, t.tx, runID)
	if err != nil {
		return err
	}
	msgs, err := runMessages(ctx, t.tx, runID)
	if err != nil {
		return err
	}
	out, hist := OutputItems(steps, msgs, false), OutputItems(steps, msgs, true)
	col, err1 := jsonColumn(out)
	histCol, err2 := jsonColumn(hist)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `UPDATE responses SET active = 0, output = $1, history = $2, reasoning_tokens = $3 WHERE id = $4`,
		col, histCol, ReasoningTokens(steps), r.ID); err != nil {
		return fmt.Errorf("finish response %s: %w", r.ID, err)
	}
	if r.ConversationID == nil || (status != RunCompleted && status != RunIncomplete) {
		return nil
	}
	in, err := inputItems(ctx, t.tx, r.ID)
	if err != nil {
		return err
	}
	now := t.s.now().Unix()
	for _, it := range append(in, hist...) {
		if err := insertConversationItem(ctx, t.tx, *r.ConversationID, it, now); err != nil {
			return err
		}
	}
	return nil
}

// DeleteResponse removes a response with everything of it: its thread,
// run, steps, messages and input items.
func (s *Store) DeleteResponse(ctx context.Context, id string) error {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return fmt.Errorf("delete response %s: %w", id, err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var threadID string
		err := tx.QueryRowContext(ctx, `SELECT thread_id FROM responses WHERE id = $1 AND project_id = $2`, id, project).Scan(&threadID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM threads WHERE id = $1`, threadID)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete response %s: %w", id, err)
	}
	return err
}

// OutputItems projects a run's steps (in order) and its messages onto
// Responses output items: a message step becomes a message item with the
// message's id; each tool call a function_call, file_search_call or
// code_interpreter_call item. With history, a function call the server
// ran is followed by a function_call_output item with what it returned,
// as the model read it.
func OutputItems(steps []RunStep, msgs map[string]Message, history bool) []json.RawMessage {
	out := []json.RawMessage{}
	add := func(v any) {
		b, err := json.Marshal(v)
		if err == nil {
			out = append(out, b)
		}
	}
	for _, st := range steps {
		if r := st.Reasoning; r != nil && r.ID != "" {
			add(ReasoningItem(*r, "completed"))
		}
		switch st.Type {
		case StepMessageCreation:
			if st.StepDetails.MessageCreation == nil {
				continue
			}
			if m, ok := msgs[st.StepDetails.MessageCreation.MessageID]; ok {
				add(MessageItem(m))
			}
		case StepToolCalls:
			for _, tc := range st.StepDetails.ToolCalls {
				io := st.ToolIO[tc.ID]
				add(ToolCallItem(tc, io, "completed"))
				if history && tc.Type == "function" && io.Output != nil {
					add(map[string]any{"type": "function_call_output", "id": "fco_" + strings.TrimPrefix(CallItemID(tc.Type, tc.ID), "fc_"),
						"call_id": tc.ID, "output": *io.Output, "status": "completed"})
				}
			}
		}
	}
	return out
}

// ReasoningItem is a model turn's reasoning as a Responses reasoning item:
// its text as reasoning_text content, no summary (the upstream gives
// none), encrypted_content null (see the API's include handling).
func ReasoningItem(r Reasoning, status string) map[string]any {
	return map[string]any{"type": "reasoning", "id": r.ID, "summary": []any{}, "status": status, "encrypted_content": nil,
		"content": []any{map[string]any{"type": "reasoning_text", "text": r.Text}}}
}

// ReasoningTokens sums the reasoning tokens of a run's steps.
func ReasoningTokens(steps []RunStep) int64 {
	var n int64
	for _, st := range steps {
		if st.Reasoning != nil {
			n += st.Reasoning.Tokens
		}
	}
	return n
}

// MessageItem is an assistant message as a Responses output message.
func MessageItem(m Message) map[string]any {
	content := []any{}
	for _, c := range m.Content {
		if c.Type != "text" || c.Text == nil {
			continue
		}
		content = append(content, OutputText(c.Text.Value, c.Text.Annotations))
	}
	status := m.Status
	if status != "completed" && status != "incomplete" {
		status = "in_progress"
	}
	return map[string]any{"type": "message", "id": m.ID, "status": status, "role": "assistant", "content": content}
}

// OutputText is an output_text content part.
func OutputText(text string, anns []Annotation) map[string]any {
	list := []any{}
	for _, a := range anns {
		list = append(list, ResponseAnnotation(a))
	}
	return map[string]any{"type": "output_text", "text": text, "annotations": list, "logprobs": []any{}}
}

// ResponseAnnotation is an Assistants annotation as the Responses API
// shows it: file_citation {file_id, filename, index}, file_path {file_id,
// index}, container_file_citation {container_id, file_id, filename,
// start_index, end_index}.
func ResponseAnnotation(a Annotation) map[string]any {
	switch {
	case a.FileCitation != nil:
		return map[string]any{"type": "file_citation", "file_id": a.FileCitation.FileID, "filename": citedName(a.Text),
			"index": a.EndIndex}
	case a.FilePath != nil:
		return map[string]any{"type": "file_path", "file_id": a.FilePath.FileID, "index": a.EndIndex}
	case a.ContainerFileCitation != nil:
		c := a.ContainerFileCitation
		return map[string]any{"type": "container_file_citation", "container_id": c.ContainerID, "file_id": c.FileID,
			"filename": c.Filename, "start_index": a.StartIndex, "end_index": a.EndIndex}
	}
	return map[string]any{"type": "file_path", "file_id": "", "index": a.EndIndex}
}

// citedName is the file name in a citation marker such as 【4:0†notes.txt】.
func citedName(marker string) string {
	if _, after, ok := strings.Cut(marker, "†"); ok {
		return strings.TrimSuffix(after, "】")
	}
	return ""
}

// CallItemID is the id of the output item of tool call callID: fc_, fs_ or
// ci_ followed by the call id's random part.
func CallItemID(typ, callID string) string {
	prefix := map[string]string{"function": "fc_", "file_search": "fs_", "code_interpreter": "ci_"}[typ]
	if prefix == "" {
		prefix = "tc_"
	}
	_, rest, ok := strings.Cut(callID, "_")
	if !ok {
		rest = callID
	}
	return prefix + rest
}

// ToolCallItem is a run step's tool call as a Responses output item.
func ToolCallItem(tc ToolCall, io ToolIO, status string) map[string]any {
	id := CallItemID(tc.Type, tc.ID)
	switch tc.Type {
	case "file_search":
		var args struct {
			Query   string   `json:"query"`
			Queries []string `json:"queries"`
		}
		_ = json.Unmarshal([]byte(io.Arguments), &args)
		queries := args.Queries
		if args.Query != "" {
			queries = append([]string{args.Query}, queries...)
		}
		if queries == nil {
			queries = []string{}
		}
		item := map[string]any{"type": "file_search_call", "id": id, "status": status, "queries": queries, "results": nil}
		if tc.FileSearch != nil && len(tc.FileSearch.Results) > 0 {
			var results []any
			for _, r := range tc.FileSearch.Results {
				text := ""
				for _, c := range r.Content {
					text += c.Text
				}
				results = append(results, map[string]any{"file_id": r.FileID, "filename": r.FileName, "score": r.Score,
					"text": text, "attributes": map[string]any{}})
			}
			item["results"] = results
		}
		return item
	case "code_interpreter":
		code, container := "", ""
		var outputs []any
		if ci := tc.CodeInterpreter; ci != nil {
			code, container = ci.Input, ci.ContainerID
			for _, o := range ci.Outputs {
				switch {
				case o.Type == "logs":
					outputs = append(outputs, map[string]any{"type": "logs", "logs": o.Logs})
				case o.Image != nil:
					outputs = append(outputs, map[string]any{"type": "image", "url": "/v1/files/" + o.Image.FileID + "/content"})
				}
			}
		}
		if outputs == nil {
			outputs = []any{}
		}
		return map[string]any{"type": "code_interpreter_call", "id": id, "status": status, "container_id": container,
			"code": code, "outputs": outputs}
	}
	name, args := io.Name, io.Arguments
	if tc.Function != nil {
		name, args = tc.Function.Name, tc.Function.Arguments
	}
	return map[string]any{"type": "function_call", "id": id, "call_id": tc.ID, "name": name, "arguments": args,
		"status": status}
}

// ConversationResponses returns the stored responses made on conversation
// convID, oldest first.
func (s *Store) ConversationResponses(ctx context.Context, convID string) ([]ResponseRecord, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("responses of conversation %s: %w", convID, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+responseColumns+` FROM responses WHERE conversation_id = $1 AND stored = 1
		AND project_id = $2 ORDER BY seq`, convID, project)
	if err != nil {
		return nil, fmt.Errorf("responses of conversation %s: %w", convID, err)
	}
	return collect(rows, scanResponse)
}

// UnstoredResponses returns the store: false responses there are: those
// requests are serving, and any left behind by a process that died, in
// every project (a sweep: the caller acts on each in its ProjectID).
func (s *Store) UnstoredResponses(ctx context.Context) ([]ResponseRecord, error) {
	// With replicas (PostgreSQL), a response whose run is still queued, or
	// leased by a replica whose lease has not lapsed, belongs to a request
	// of some process, not necessarily this one. On SQLite one process
	// owns the database: the caller's own requests are all there are.
	live := ""
	if s.pg {
		live = ` AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.response_id = responses.id
			AND (runs.status = 'queued' OR (runs.status IN ('in_progress', 'cancelling')
				AND runs.lease_expires_at IS NOT NULL AND runs.lease_expires_at >= ` + s.dbMillis() + `)))`
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+responseColumns+` FROM responses WHERE stored = 0`+live+` ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("unstored responses: %w", err)
	}
	return collect(rows, scanResponse)
}
