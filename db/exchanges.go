package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Exchange is one HTTP exchange between a run and its upstream model
// provider, as the upstream inspector recorded it: the exact request sent
// and the response received (a streamed response assembled from its
// chunks), with keys redacted before anything is stored.
type Exchange struct {
	ID              int64             `json:"id"`
	RunID           string            `json:"run_id"`
	StartedAt       int64             `json:"started_at"`  // unix milliseconds
	DurationMS      *int64            `json:"duration_ms"` // nil while in flight
	Method          string            `json:"method"`
	URL             string            `json:"url"`
	RequestHeaders  map[string]string `json:"request_headers"`
	RequestBody     string            `json:"request_body"`
	Status          int               `json:"status"`
	ResponseHeaders map[string]string `json:"response_headers"`
	ResponseBody    string            `json:"response_body"`
	Streamed        bool              `json:"streamed"`
	Chunks          int               `json:"chunks"`
	Error           string            `json:"error"`
}

func scanExchange(row rowScanner) (Exchange, error) {
	var x Exchange
	var reqH, respH string
	if err := row.Scan(&x.ID, &x.RunID, &x.StartedAt, &x.DurationMS, &x.Method, &x.URL, &reqH, &x.RequestBody, &x.Status,
		&respH, &x.ResponseBody, &x.Streamed, &x.Chunks, &x.Error); err != nil {
		return x, err
	}
	if err := json.Unmarshal([]byte(reqH), &x.RequestHeaders); err != nil {
		return x, fmt.Errorf("exchange %d request headers: %w", x.ID, err)
	}
	if err := json.Unmarshal([]byte(respH), &x.ResponseHeaders); err != nil {
		return x, fmt.Errorf("exchange %d response headers: %w", x.ID, err)
	}
	return x, nil
}

func headersJSON(h map[string]string) string {
	if h == nil {
		return "{}"
	}
	b, _ := json.Marshal(h)
	return string(b)
}

// StartExchange records a request as it leaves, before any response, so
// a run's timeline shows an upstream call (or a retry) while it happens.
// It returns the exchange's id. The inspector's writer calls it off the
// run's path, without a project: the exchange takes its run's.
func (s *Store) StartExchange(ctx context.Context, x Exchange) (int64, error) {
	var id int64
	ctx = Background(ctx)
	err := s.write1(ctx, func(q queryExecer) error {
		return q.QueryRowContext(ctx, `INSERT INTO upstream_exchanges (run_id, started_at, method, url, request_headers, request_body,
			project_id) VALUES ($1, $2, $3, $4, $5, $6, COALESCE((SELECT project_id FROM runs WHERE id = $1), '`+DefaultProjectID+`'))
			RETURNING id`, x.RunID, x.StartedAt, x.Method, x.URL, headersJSON(x.RequestHeaders),
			x.RequestBody).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("start exchange: %w", err)
	}
	return id, nil
}

// FinishExchange records the response (or the error) of exchange x.ID
// (the inspector's writer, by the id StartExchange gave it).
func (s *Store) FinishExchange(ctx context.Context, x Exchange) error {
	d := int64(0)
	if x.DurationMS != nil {
		d = *x.DurationMS
	}
	_, err := s.exec(Background(ctx), `UPDATE upstream_exchanges SET duration_ms = $1, status = $2, response_headers = $3,
		response_body = $4, streamed = $5, chunks = $6, error = $7 WHERE id = $8`,
		d, x.Status, headersJSON(x.ResponseHeaders), x.ResponseBody, flag(x.Streamed), x.Chunks, x.Error, x.ID)
	if err != nil {
		return fmt.Errorf("finish exchange: %w", err)
	}
	return nil
}

// RunExchanges returns a run's exchanges, oldest first, without their
// bodies and headers (the timeline lists them; GetExchange opens one).
func (s *Store) RunExchanges(ctx context.Context, runID string) ([]Exchange, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("run exchanges: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, run_id, started_at, duration_ms, method, url, '{}', '', status, '{}', '',
		streamed, chunks, error FROM upstream_exchanges WHERE run_id = $1 AND project_id = $2 ORDER BY id`, runID, project)
	if err != nil {
		return nil, fmt.Errorf("run exchanges: %w", err)
	}
	return collect(rows, scanExchange)
}

// ThreadExchanges returns the exchanges of every run of a thread, oldest
// first, without bodies and headers.
func (s *Store) ThreadExchanges(ctx context.Context, threadID string) ([]Exchange, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("thread exchanges: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT x.id, x.run_id, x.started_at, x.duration_ms, x.method, x.url, '{}', '', x.status, '{}', '',
		x.streamed, x.chunks, x.error FROM upstream_exchanges x JOIN runs r ON r.id = x.run_id WHERE r.thread_id = $1
		AND x.project_id = $2 ORDER BY x.id`, threadID, project)
	if err != nil {
		return nil, fmt.Errorf("thread exchanges: %w", err)
	}
	return collect(rows, scanExchange)
}

// GetExchange returns one exchange of a thread's run, in full.
func (s *Store) GetExchange(ctx context.Context, threadID string, id int64) (Exchange, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return Exchange{}, fmt.Errorf("get exchange %d: %w", id, err)
	}
	x, err := scanExchange(s.r.QueryRowContext(ctx, `SELECT x.id, x.run_id, x.started_at, x.duration_ms, x.method, x.url, x.request_headers, x.request_body, x.status,
		x.response_headers, x.response_body, x.streamed, x.chunks, x.error FROM upstream_exchanges x
		JOIN runs r ON r.id = x.run_id WHERE x.id = $1 AND r.thread_id = $2 AND x.project_id = $3`, id, threadID, project))
	if errors.Is(err, sql.ErrNoRows) {
		return x, ErrNotFound
	}
	return x, err
}

// DeleteExchangesBefore deletes exchanges started before cutoff (unix
// milliseconds) and returns how many it deleted, in every project (a sweep).
func (s *Store) DeleteExchangesBefore(ctx context.Context, cutoff int64) (int64, error) {
	res, err := s.exec(Background(ctx), `DELETE FROM upstream_exchanges WHERE started_at < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("delete old exchanges: %w", err)
	}
	return res.RowsAffected()
}
