// Package db is assistantd's SQLite store: the records the API serves, their
// queries, and the embedded, numbered schema migrations.
//
// Records returned by the store serialise exactly as the Assistants API shows
// them (field names, nulls, discriminators), so stored, listed and streamed
// objects cannot drift apart.
//
// SQLite has a single writer. The store keeps two pools on one database file:
// a one-connection pool for writes (every write transaction starts with BEGIN
// IMMEDIATE, so writers queue instead of failing with SQLITE_BUSY half-way
// through), and a multi-connection pool for reads, which WAL lets run beside
// the writer.
package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrNotFound is returned when the requested record does not exist.
var ErrNotFound = errors.New("not found")

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is the SQLite-backed store. It is safe for concurrent use.
type Store struct {
	w       *sql.DB // single writer connection
	r       *sql.DB // readers
	dir     string  // data directory
	filesTo string  // where file contents live
	now     func() time.Time
	// passwordCost is bcrypt's work factor for web app passwords.
	passwordCost int
	// chunkGen counts writes that may change vector store chunks, so
	// retrieval's in-memory vector indexes know when to reload.
	chunkGen atomic.Int64
}

// Option configures a Store.
type Option func(*Store)

// WithClock replaces the wall clock, for tests that need fixed timestamps.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Open opens (creating if needed) the database in dir, applies pending
// migrations, and prepares the directory that holds uploaded file contents.
func Open(ctx context.Context, dir string, opts ...Option) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if err := removeStaged(filepath.Join(dir, "files")); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "assistantd.db")
	pragmas := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"} {
		pragmas.Add("_pragma", p)
	}
	dsn := "file:" + path + "?" + pragmas.Encode()
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	r.SetMaxOpenConns(max(4, runtime.NumCPU()*2))
	s := &Store{w: w, r: r, dir: dir, filesTo: filepath.Join(dir, "files"), now: time.Now, passwordCost: defaultPasswordCost}
	for _, o := range opts {
		o(s)
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes both connection pools.
func (s *Store) Close() error {
	return errors.Join(s.w.Close(), s.r.Close())
}

// Ping checks that the database answers; used by the health check.
func (s *Store) Ping(ctx context.Context) error { return s.r.PingContext(ctx) }

// migrate applies, in order, every embedded migration whose version is not
// yet recorded, each in its own transaction. Files are named NNNN_description.sql and are
// never edited once released: a change is a new file.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	applied := map[int]bool{}
	rows, err := s.w.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("read schema versions: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("read schema versions: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read schema versions: %w", err)
	}
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			return fmt.Errorf("migration %q: name must be NNNN_description.sql", e.Name())
		}
		version, err := strconv.Atoi(num)
		if err != nil {
			return fmt.Errorf("migration %q: %w", e.Name(), err)
		}
		if applied[version] {
			continue
		}
		body, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		err = s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				version, e.Name(), s.now().Unix())
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", e.Name(), err)
		}
	}
	return nil
}

// tx runs fn in a write transaction, committing if fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewID returns prefix followed by 24 random base62 characters, the shape of
// OpenAI's ids (asst_…, thread_…, msg_…, file-…).
func NewID(prefix string) string {
	return prefix + randomString(24)
}

func randomString(n int) string {
	b := make([]byte, n)
	buf := make([]byte, n+n/2)
	for i := 0; i < n; {
		_, _ = rand.Read(buf) // crypto/rand.Read never fails on supported platforms
		for _, c := range buf {
			if c >= 248 { // reject to keep the distribution uniform (248 = 4*62)
				continue
			}
			b[i] = idAlphabet[int(c)%62]
			i++
			if i == n {
				break
			}
		}
	}
	return string(b)
}

// sqliteCode is the extended result code of a SQLite error (0 for nil or
// another error), so failures are classified by code, not by message.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// isUnique reports a UNIQUE constraint violation.
func isUnique(err error) bool { return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE }

// isTriggerAbort reports a trigger's RAISE(ABORT, ...).
func isTriggerAbort(err error) bool { return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_TRIGGER }

// queryStrings runs a query of one text column and returns its values in
// order; what names the query in errors.
func (s *Store) queryStrings(ctx context.Context, what, query string, args ...any) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
