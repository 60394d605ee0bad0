package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// What differs between SQLite and PostgreSQL, beside the migrations: error
// classes (by SQLite extended result code or SQLSTATE, never by message
// text), row locks, and the full-text statements (browse.go, vectorstores.go).

// SQLSTATEs the store acts on.
const (
	pgUniqueViolation      = "23505"
	pgCheckViolation       = "23514"
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
)

// sqliteCode is the extended result code of a SQLite error (0 for nil or
// another error).
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// pgError returns the PostgreSQL error in err's chain, or nil.
func pgError(err error) *pgconn.PgError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// isUnique reports a unique constraint violation.
func isUnique(err error) bool {
	if pe := pgError(err); pe != nil {
		return pe.Code == pgUniqueViolation
	}
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// isIllegalTransition reports the runs_legal_transition trigger's refusal:
// RAISE(ABORT) on SQLite; on PostgreSQL a check_violation naming the
// trigger as its constraint.
func isIllegalTransition(err error) bool {
	if pe := pgError(err); pe != nil {
		return pe.Code == pgCheckViolation && pe.ConstraintName == "runs_legal_transition"
	}
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_TRIGGER
}

// IsInvalidText reports text the database refused to store: PostgreSQL's
// text holds no NUL character (SQLSTATE 22021, or 22P05 for a \u0000 in
// jsonb), which SQLite stores. The API answers 400 for it.
func IsInvalidText(err error) bool {
	pe := pgError(err)
	return pe != nil && (pe.Code == "22021" || pe.Code == "22P05")
}

// isConnLoss reports an error of a lost or refused PostgreSQL connection:
// SQLSTATE class 08, an administrator or crash shutdown (57P01–57P03), or
// a network error.
func isConnLoss(err error) bool {
	if pe := pgError(err); pe != nil {
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &ne) || errors.As(err, &ce) || pgconn.SafeToRetry(err)
}

// isRetryable reports a PostgreSQL failure that running the whole
// transaction again may not meet: a deadlock or a serialization failure.
func isRetryable(err error) bool {
	pe := pgError(err)
	return pe != nil && (pe.Code == pgDeadlockDetected || pe.Code == pgSerializationFailure)
}

// forUpdate is the row-lock suffix of a SELECT that reads rows the
// transaction then writes: on PostgreSQL FOR NO KEY UPDATE (it excludes
// every other writer and locker of the rows, yet lets other transactions
// insert rows referencing them); nothing on SQLite, whose write
// transactions (BEGIN IMMEDIATE) already exclude every other writer.
func (s *Store) forUpdate() string {
	if s.pg {
		return ` FOR NO KEY UPDATE`
	}
	return ``
}

// lockThread locks a thread's row for the rest of tx. Every transaction
// that writes a thread's messages or runs takes it first, so on PostgreSQL
// "one active run per thread", message order and seq cursors hold under
// concurrent writers as they do under SQLite's single writer. It returns
// ErrNotFound for a missing thread, and for another project's: the lock is
// also the gate that scopes every write under a thread to ctx's project.
func (s *Store) lockThread(ctx context.Context, tx *sql.Tx, id string) error {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return err
	}
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM threads WHERE id = $1 AND project_id = $2`+s.forUpdate(), id, project).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// flag is a boolean as the 0/1 integer both schemas store.
func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// redactURL hides the password of a database URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unreadable URL)"
	}
	return u.Redacted()
}

// jsonInt is an SQL expression reading the integer at key of the JSON
// object in column (JSON is stored as text on both databases).
func (s *Store) jsonInt(column, key string) string {
	if s.pg {
		return `(` + column + `::jsonb ->> '` + key + `')::bigint`
	}
	return `json_extract(` + column + `, '$.` + key + `')`
}

// Describe says, for the start-up log, which database the store is on,
// where file contents live, and, on PostgreSQL, which vector search path
// is active (pgvector, or Go and why: see setupPgvector).
func (s *Store) Describe(ctx context.Context) []any {
	if !s.pg {
		return []any{"database", "sqlite", "path", filepath.Join(s.dir, "assistantd.db"), "blob_store", s.blobName}
	}
	var version string
	_ = s.r.QueryRowContext(ctx, `SHOW server_version`).Scan(&version)
	return []any{"database", "postgresql " + version, "url", redactURL(s.url), "blob_store", s.blobName, "vectors", s.vectorsNote}
}
