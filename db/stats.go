package db

import "database/sql"

// PoolStats returns the figures of the store's connection pools: the
// single writer (its waits are the write queue) and the readers.
func (s *Store) PoolStats() map[string]sql.DBStats {
	return map[string]sql.DBStats{"writer": s.w.Stats(), "reader": s.r.Stats()}
}
