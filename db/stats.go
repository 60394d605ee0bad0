package db

import "database/sql"

// PoolStats returns the figures of the store's connection pools. On SQLite:
// the single writer (its waits are the write queue) and the readers. On
// PostgreSQL, one pool (pgxpool's, which database/sql sees as unlimited):
// its size, connections in use and idle, and the waits for a free one.
func (s *Store) PoolStats() map[string]sql.DBStats {
	if s.pgx != nil {
		st := s.pgx.Stat()
		return map[string]sql.DBStats{"postgres": {
			MaxOpenConnections: int(st.MaxConns()),
			OpenConnections:    int(st.TotalConns()),
			InUse:              int(st.AcquiredConns()),
			Idle:               int(st.IdleConns()),
			WaitCount:          st.EmptyAcquireCount(),
			WaitDuration:       st.EmptyAcquireWaitTime(),
		}}
	}
	return map[string]sql.DBStats{"writer": s.w.Stats(), "reader": s.r.Stats()}
}
