package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// RunTrace returns the traceparent the run keeps ("" if none).
func (tx *Tx) RunTrace(ctx context.Context, runID string) (string, error) {
	var tp string
	err := tx.tx.QueryRowContext(ctx, `SELECT traceparent FROM run_traces WHERE run_id = $1`, runID).Scan(&tp)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("run trace %s: %w", runID, err)
	}
	return tp, nil
}

// SetRunTrace keeps traceparent as the run's trace unless it has one.
func (tx *Tx) SetRunTrace(ctx context.Context, runID, traceparent string) error {
	if _, err := tx.tx.ExecContext(ctx, `INSERT INTO run_traces (run_id, traceparent) VALUES ($1, $2)
		ON CONFLICT (run_id) DO NOTHING`, runID, traceparent); err != nil {
		return fmt.Errorf("set run trace %s: %w", runID, err)
	}
	return nil
}
