package db

import (
	"context"
	"fmt"
)

// BeginIngestion counts one more attempt at ingesting a vector store file
// and returns how many attempts, this one included, have begun since the
// last one ended (see EndIngestion). Attempts cut short by a crash are
// never ended, so the count says how often the file was interrupted.
func (s *Store) BeginIngestion(ctx context.Context, storeID, fileID string) (int, error) {
	var n int
	err := s.w.QueryRowContext(ctx, `INSERT INTO ingest_attempts (vector_store_id, file_id, attempts) VALUES ($1, $2, 1)
		ON CONFLICT (vector_store_id, file_id) DO UPDATE SET attempts = ingest_attempts.attempts + 1
		RETURNING attempts`, storeID, fileID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("begin ingestion of %s: %w", fileID, err)
	}
	return n, nil
}

// EndIngestion forgets a file's attempts: its ingestion finished, or was
// stopped in an orderly way.
func (s *Store) EndIngestion(ctx context.Context, storeID, fileID string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM ingest_attempts WHERE vector_store_id = $1 AND file_id = $2`,
		storeID, fileID); err != nil {
		return fmt.Errorf("end ingestion of %s: %w", fileID, err)
	}
	return nil
}
