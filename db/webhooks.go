package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// What a webhook does when its last attempt failed.
const (
	// OnFailureErrorOutput gives the model {"error": "..."} as the output.
	OnFailureErrorOutput = "error_output"
	// OnFailureRequiresAction leaves the call to the client, as if no
	// webhook were configured.
	OnFailureRequiresAction = "requires_action"
)

// ErrNoFunction is returned when a webhook names a function its assistant
// does not have.
var ErrNoFunction = errors.New("the assistant has no such function")

// Webhook is the endpoint that answers one function of an assistant.
type Webhook struct {
	AssistantID  string
	FunctionName string
	URL          string
	Secret       string // whsec_…
	TimeoutMS    int
	MaxRetries   int
	OnFailure    string
	CreatedAt    int64
}

const webhookColumns = `assistant_id, function_name, url, secret, timeout_ms, max_retries, on_failure, created_at`

func scanWebhook(row rowScanner) (Webhook, error) {
	var w Webhook
	err := row.Scan(&w.AssistantID, &w.FunctionName, &w.URL, &w.Secret, &w.TimeoutMS, &w.MaxRetries, &w.OnFailure, &w.CreatedAt)
	return w, err
}

// PutWebhook creates or replaces the webhook of w.AssistantID's function
// w.FunctionName. A replaced webhook keeps its created_at. It returns
// ErrNotFound for an unknown assistant and ErrNoFunction when the
// assistant has no function of that name; both are checked in the write
// transaction, so a concurrent edit of the assistant cannot leave a
// webhook for a function it no longer has.
func (s *Store) PutWebhook(ctx context.Context, w Webhook) (Webhook, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return w, fmt.Errorf("put webhook: %w", err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var tools string
		err := tx.QueryRowContext(ctx, `SELECT tools FROM assistants WHERE id = $1 AND project_id = $2`+s.forUpdate(),
			w.AssistantID, project).Scan(&tools)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		var list []Tool
		if err := decodeColumn("tools", tools, &list); err != nil {
			return err
		}
		if !hasFunction(list, w.FunctionName) {
			return ErrNoFunction
		}
		return tx.QueryRowContext(ctx, `INSERT INTO webhooks (`+webhookColumns+`, project_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (assistant_id, function_name) DO UPDATE SET url = excluded.url, secret = excluded.secret,
				timeout_ms = excluded.timeout_ms, max_retries = excluded.max_retries, on_failure = excluded.on_failure
			RETURNING created_at`,
			w.AssistantID, w.FunctionName, w.URL, w.Secret, w.TimeoutMS, w.MaxRetries, w.OnFailure, s.now().Unix(), project).Scan(&w.CreatedAt)
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrNoFunction) {
		return w, fmt.Errorf("put webhook %s/%s: %w", w.AssistantID, w.FunctionName, err)
	}
	return w, err
}

func hasFunction(tools []Tool, name string) bool {
	for _, t := range tools {
		if t.Type == "function" && t.Function != nil && t.Function.Name == name {
			return true
		}
	}
	return false
}

// GetWebhook returns the webhook of an assistant's function, or
// ErrNotFound.
func (s *Store) GetWebhook(ctx context.Context, assistantID, functionName string) (Webhook, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return Webhook{}, fmt.Errorf("get webhook: %w", err)
	}
	w, err := scanWebhook(s.r.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks
		WHERE assistant_id = $1 AND function_name = $2 AND project_id = $3`, assistantID, functionName, project))
	if errors.Is(err, sql.ErrNoRows) {
		return w, ErrNotFound
	}
	if err != nil {
		return w, fmt.Errorf("get webhook %s/%s: %w", assistantID, functionName, err)
	}
	return w, nil
}

// ListWebhooks returns an assistant's webhooks by function name.
func (s *Store) ListWebhooks(ctx context.Context, assistantID string) ([]Webhook, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE assistant_id = $1 AND project_id = $2
		ORDER BY function_name`, assistantID, project)
	if err != nil {
		return nil, fmt.Errorf("list webhooks of %s: %w", assistantID, err)
	}
	defer rows.Close()
	out := []Webhook{}
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("list webhooks of %s: %w", assistantID, err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webhooks of %s: %w", assistantID, err)
	}
	return out, nil
}

// DeleteWebhook removes the webhook of an assistant's function, or
// returns ErrNotFound.
func (s *Store) DeleteWebhook(ctx context.Context, assistantID, functionName string) error {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return fmt.Errorf("delete webhook: %w", err)
	}
	res, err := s.w.ExecContext(ctx, `DELETE FROM webhooks WHERE assistant_id = $1 AND function_name = $2 AND project_id = $3`,
		assistantID, functionName, project)
	if err != nil {
		return fmt.Errorf("delete webhook %s/%s: %w", assistantID, functionName, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// deleteRemovedWebhooks deletes, inside an assistant update, the webhooks
// of functions the assistant's new tools no longer have.
func deleteRemovedWebhooks(ctx context.Context, tx *sql.Tx, assistantID, toolsJSON string) error {
	var tools []struct {
		Type     string `json:"type"`
		Function *struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := decodeColumn("tools", toolsJSON, &tools); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, t := range tools {
		if t.Type == "function" && t.Function != nil {
			keep[t.Function.Name] = true
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT function_name FROM webhooks WHERE assistant_id = $1`, assistantID)
	if err != nil {
		return err
	}
	var gone []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		if !keep[name] {
			gone = append(gone, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, name := range gone {
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhooks WHERE assistant_id = $1 AND function_name = $2`,
			assistantID, name); err != nil {
			return err
		}
	}
	return nil
}

// Delivery is one HTTP attempt of a webhook delivery.
type Delivery struct {
	ID           int64   `json:"id"`
	RunID        string  `json:"run_id"`
	ThreadID     string  `json:"thread_id"`
	ToolCallID   string  `json:"tool_call_id"`
	FunctionName string  `json:"function_name"`
	WebhookID    string  `json:"webhook_id"` // the webhook-id header, the same on every attempt
	Attempt      int     `json:"attempt"`    // 1 for the first
	StatusCode   *int    `json:"status_code"`
	LatencyMS    int64   `json:"latency_ms"`
	Response     string  `json:"response"` // an excerpt of the response body
	Error        *string `json:"error"`    // nil for a 2xx
	CreatedAt    int64   `json:"created_at"`
}

// MarshalJSON writes the delivery with object "webhook.delivery".
func (d Delivery) MarshalJSON() ([]byte, error) {
	type plain Delivery
	return json.Marshal(struct {
		Object string `json:"object"`
		plain
	}{"webhook.delivery", plain(d)})
}

// RecordDelivery stores one attempt; ID and CreatedAt are assigned.
func (s *Store) RecordDelivery(ctx context.Context, d Delivery) (Delivery, error) {
	d.CreatedAt = s.now().Unix()
	err := s.w.QueryRowContext(ctx, `INSERT INTO webhook_deliveries (run_id, thread_id, tool_call_id, function_name,
		webhook_id, attempt, status_code, latency_ms, response, error, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING seq`,
		d.RunID, d.ThreadID, d.ToolCallID, d.FunctionName, d.WebhookID, d.Attempt, d.StatusCode, d.LatencyMS,
		d.Response, d.Error, d.CreatedAt).Scan(&d.ID)
	if err != nil {
		return d, fmt.Errorf("record delivery for %s: %w", d.ToolCallID, err)
	}
	return d, nil
}

// ListDeliveries returns a run's delivery attempts in the order they were
// made.
func (s *Store) ListDeliveries(ctx context.Context, runID string) ([]Delivery, error) {
	return s.listDeliveries(ctx, `run_id = $1`, runID)
}

// ListThreadDeliveries returns the delivery attempts of all of a thread's
// runs in the order they were made.
func (s *Store) ListThreadDeliveries(ctx context.Context, threadID string) ([]Delivery, error) {
	return s.listDeliveries(ctx, `thread_id = $1`, threadID)
}

func (s *Store) listDeliveries(ctx context.Context, where, arg string) ([]Delivery, error) {
	// Deliveries carry no project of their own: they are their thread's.
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, run_id, thread_id, tool_call_id, function_name, webhook_id, attempt,
		status_code, latency_ms, response, error, created_at FROM webhook_deliveries WHERE `+where+`
		AND thread_id IN (SELECT id FROM threads WHERE project_id = $2) ORDER BY seq`, arg, project)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	out := []Delivery{}
	for rows.Next() {
		var (
			d      Delivery
			status sql.NullInt64
			errMsg sql.NullString
		)
		if err := rows.Scan(&d.ID, &d.RunID, &d.ThreadID, &d.ToolCallID, &d.FunctionName, &d.WebhookID, &d.Attempt,
			&status, &d.LatencyMS, &d.Response, &errMsg, &d.CreatedAt); err != nil {
			return nil, fmt.Errorf("list deliveries: %w", err)
		}
		if status.Valid {
			v := int(status.Int64)
			d.StatusCode = &v
		}
		d.Error = nullString(errMsg)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}
