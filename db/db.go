// Package db is assistantd's store, on SQLite (the default, in the data
// directory) or PostgreSQL: the records the API serves, their queries, and
// the embedded, numbered schema migrations of each database.
//
// Queries are written once, with numbered placeholders ($1, $2 …) that both
// drivers bind; dialect.go holds the few statements that differ.
//
// Records returned by the store serialise exactly as the Assistants API shows
// them (field names, nulls, discriminators), so stored, listed and streamed
// objects cannot drift apart.
//
// SQLite has a single writer. The store keeps two pools on one database file:
// a one-connection pool for writes (every write transaction starts with BEGIN
// IMMEDIATE, so writers queue instead of failing with SQLITE_BUSY half-way
// through), and a multi-connection pool for reads, which WAL lets run beside
// the writer. Write transactions reach the writer through a group commit
// (groupcommit.go): those that queue while one commits are committed
// together, each in a savepoint. Both pools' connections keep their
// prepared statements (stmtcache.go).
//
// PostgreSQL has many writers under READ COMMITTED, so what SQLite's single
// writer gave for free is explicit: every transaction writing a thread's
// messages, runs or steps locks the thread's row first (lockThread), a
// read-modify-write locks the row it read (forUpdate), deadlocks and
// serialization failures run the transaction again (tx), and start-up holds
// an advisory lock (Open, StartupDone).
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

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNotFound is returned when the requested record does not exist.
var ErrNotFound = errors.New("not found")

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// Store is the store on SQLite or PostgreSQL. It is safe for concurrent use.
type Store struct {
	w       *sql.DB // writes: SQLite's single writer connection; PostgreSQL's pool
	r       *sql.DB // reads: SQLite's readers; the same pool as w on PostgreSQL
	pg      bool    // PostgreSQL (else SQLite)
	dir     string  // data directory
	filesTo string  // where file contents live
	now     func() time.Time
	// passwordCost is bcrypt's work factor for web app passwords.
	passwordCost int
	// chunkGen counts writes that may change vector store chunks, so
	// retrieval's in-memory vector indexes know when to reload.
	chunkGen atomic.Int64
	// announced are writes whose events are out before their commit
	// (announce.go): this process's readers wait for them.
	announced announcements

	url      string // the PostgreSQL URL ("" for SQLite)
	maxConns int    // PostgreSQL pool size
	// startup holds PostgreSQL's start-up advisory lock from Open until
	// StartupDone, so one process at a time migrates and bootstraps.
	startup *sql.Conn

	pgx *pgxpool.Pool // PostgreSQL's connections, under w and r

	// leases renews run leases on PostgreSQL, on connections of its own
	// (leasePgx): a renewal never waits for a connection behind bulk
	// writes, so a saturated pool does not let leases lapse.
	leases   *sql.DB
	leasePgx *pgxpool.Pool

	blobName string    // BlobsDir or BlobsPostgres
	blobs    BlobStore // file contents

	pgvectorMode string // PgvectorAuto or PgvectorOff
	vectorsInDB  bool   // vector search through pgvector (NearestChunks)
	vectorsNote  string // how vectors are scored, for Describe

	gc   *groupCommitter // SQLite's write transactions, committed in groups (nil on PostgreSQL)
	ckpt *checkpointer   // SQLite's checkpoints, off the writer (checkpoint.go)

	// migrateThrough, when positive, stops migrating after that version
	// (tests of migrations fill a store as an older release left it).
	migrateThrough int
}

// Option configures a Store.
type Option func(*Store)

// WithClock replaces the wall clock, for tests that need fixed timestamps.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithDatabaseURL selects PostgreSQL at url (postgres:// or postgresql://)
// instead of SQLite in the data directory.
func WithDatabaseURL(url string) Option { return func(s *Store) { s.url = url } }

// WithMaxConns sets the PostgreSQL connection pool's size (default 20).
func WithMaxConns(n int) Option { return func(s *Store) { s.maxConns = n } }

// IsPostgresURL reports whether url names a PostgreSQL database.
func IsPostgresURL(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// Open opens (creating if needed) the database, applies pending migrations,
// and prepares the directory that holds uploaded file contents. Without
// WithDatabaseURL the database is SQLite in dir.
//
// On PostgreSQL, Open takes a session advisory lock before migrating and
// holds it until StartupDone (or Close), so processes starting at once on
// one database migrate and bootstrap one after another.
func Open(ctx context.Context, dir string, opts ...Option) (*Store, error) {
	s := &Store{dir: dir, filesTo: filepath.Join(dir, "files"), now: time.Now, passwordCost: defaultPasswordCost, maxConns: 20}
	for _, o := range opts {
		o(s)
	}
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if err := removeStaged(filepath.Join(dir, "files")); err != nil {
		return nil, err
	}
	if s.url != "" {
		if !IsPostgresURL(s.url) {
			return nil, fmt.Errorf("database URL: want postgres://…, got %q", redactURL(s.url))
		}
		return s.openPostgres(ctx)
	}
	path := filepath.Join(dir, "assistantd.db")
	pragmas := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)", "wal_autocheckpoint(0)"} {
		pragmas.Add("_pragma", p)
	}
	dsn := "file:" + path + "?" + pragmas.Encode()
	// Both pools' connections keep their prepared statements (stmtcache.go).
	w := sql.OpenDB(&sqliteConnector{dsn: dsn + "&_txlock=immediate"})
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	r := sql.OpenDB(&sqliteConnector{dsn: dsn})
	// As many kept idle as may be open: database/sql keeps two by default,
	// and under load it closed the rest as they came back and opened
	// them again, each with an empty statement cache.
	//
	// At least 8: a reader holds its connection while its goroutine waits
	// for a CPU, and on a busy 2-core machine 4 connections made the pool
	// itself the reads' queue once client writes stopped queueing behind
	// the server's (tests/loadgen, 200 mixed clients: 7 times the wait for
	// a reader connection, reads p50 ≈20 ms; ≈4 ms with 8).
	readers := max(8, runtime.NumCPU()*2)
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	s.w, s.r = w, r
	if err := s.openBlobs(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.gc = newGroupCommitter(s)
	ck := sql.OpenDB(&sqliteConnector{dsn: dsn})
	ck.SetMaxOpenConns(1)
	s.ckpt = startCheckpointer(ck)
	return s, nil
}

// openPostgres connects the pool, takes the start-up lock and migrates.
func (s *Store) openPostgres(ctx context.Context) (*Store, error) {
	// pgxpool keeps the connections (database/sql then keeps none idle):
	// it pings a connection idle for over a second before handing it out,
	// so after a database restart or outage requests get fresh connections
	// instead of failing on dead ones.
	cfg, err := pgxpool.ParseConfig(s.url)
	if err != nil {
		return nil, fmt.Errorf("database URL %s: %w", redactURL(s.url), err)
	}
	cfg.MaxConns = int32(max(2, s.maxConns))
	cfg.MaxConnIdleTime = 5 * time.Minute
	pgx, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", redactURL(s.url), err)
	}
	pool := stdlib.OpenDBFromPool(pgx)
	s.w, s.r, s.pg, s.pgx = pool, pool, true, pgx
	lcfg := cfg.Copy()
	lcfg.MaxConns, lcfg.MinConns = 2, 1
	if s.leasePgx, err = pgxpool.NewWithConfig(ctx, lcfg); err != nil {
		pool.Close()
		pgx.Close()
		return nil, fmt.Errorf("open database %s: %w", redactURL(s.url), err)
	}
	s.leases = stdlib.OpenDBFromPool(s.leasePgx)
	conn, err := pool.Conn(ctx)
	if err == nil {
		_, err = conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, startupLockID)
		if err != nil {
			conn.Close()
		}
	}
	if err != nil {
		pool.Close()
		pgx.Close()
		return nil, fmt.Errorf("connect to %s: %w", redactURL(s.url), err)
	}
	s.startup = conn
	if err := s.openBlobs(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.setupPgvector(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// startupLockID is the advisory lock key held while a process migrates and
// bootstraps ("assistd" in ASCII).
const startupLockID int64 = 0x61737369737464

// StartupDone releases the start-up lock Open took on PostgreSQL, once the
// process has created what a first start creates (the first API key, the
// session keys). It is a no-op on SQLite and when called again.
func (s *Store) StartupDone() {
	if s.startup == nil {
		return
	}
	_, _ = s.startup.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, startupLockID)
	s.startup.Close()
	s.startup = nil
}

// Postgres reports whether the store is on PostgreSQL.
func (s *Store) Postgres() bool { return s.pg }

// Close closes the connection pools.
func (s *Store) Close() error {
	s.StartupDone()
	if s.gc != nil {
		s.gc.close()
	}
	if s.pgx != nil {
		err := s.w.Close()
		s.pgx.Close()
		if s.leases != nil {
			err = errors.Join(err, s.leases.Close())
			s.leasePgx.Close()
		}
		return err
	}
	var ckErr error
	if s.ckpt != nil {
		ckErr = s.ckpt.close()
	}
	return errors.Join(ckErr, s.w.Close(), s.r.Close())
}

// Ping checks that the database answers; used by the health checks. On
// PostgreSQL a lost connection (the database restarted, or was away)
// drops every pooled connection and tries once more on a new one, so the
// first check after an outage answers for the database, not for a
// connection that died with it.
func (s *Store) Ping(ctx context.Context) error {
	err := s.r.PingContext(ctx)
	if err != nil && s.pgx != nil && isConnLoss(err) {
		s.pgx.Reset()
		err = s.r.PingContext(ctx)
	}
	return err
}

// migrate applies, in order, every embedded migration of the store's
// database whose version is not yet recorded, each in its own transaction.
// Files are named NNNN_description.sql and are never edited once released:
// a change is a new file. Both databases have the same versions.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
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
	migrations, err := s.migrations()
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if applied[m.version] {
			continue
		}
		if s.migrateThrough > 0 && m.version > s.migrateThrough {
			break
		}
		err = s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, m.body); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, s.now().Unix())
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", m.name, err)
		}
	}
	return nil
}

type migration struct {
	version    int
	name, body string
}

// migrations returns the store's database's migrations in order.
func (s *Store) migrations() ([]migration, error) {
	dir := "migrations/sqlite"
	if s.pg {
		dir = "migrations/postgres"
	}
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			return nil, fmt.Errorf("migration %q: name must be NNNN_description.sql", e.Name())
		}
		version, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %q: %w", e.Name(), err)
		}
		body, err := migrationFS.ReadFile(dir + "/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version, e.Name(), string(body)})
	}
	return out, nil
}

// tx runs fn in a write transaction, committing if fn returns nil. On
// PostgreSQL a deadlock or serialization failure runs fn again, a bounded
// number of times, so fn must only set its results, never accumulate. On
// SQLite fn joins a group commit (groupcommit.go), which may also run it
// again, alone, when the group's transaction is lost.
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.gc != nil {
		return s.gc.do(ctx, fn)
	}
	for attempt := 1; ; attempt++ {
		err := s.tx1(ctx, fn)
		if err == nil || !s.pg || attempt == maxTxAttempts {
			return err
		}
		var commit *commitError
		switch {
		case isRetryable(err):
		case isConnLoss(err) && !errors.As(err, &commit):
			// The connection died before COMMIT was sent: nothing was
			// written. The pool's other connections likely died with it.
			s.pgx.Reset()
		default:
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt*attempt) * 5 * time.Millisecond):
		}
	}
}

// exec runs one write statement. On SQLite it joins the group committer
// (Store.tx) rather than taking the writer connection between two groups,
// where it would cost a transaction and a WAL commit of its own; on
// PostgreSQL it runs on the pool as a statement of its own, as before.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := s.write1(ctx, func(q queryExecer) error {
		var err error
		res, err = q.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// queryExecer is a transaction or a pool.
type queryExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// write1 runs fn, one write statement, as exec does: in the group
// committer on SQLite (fn may then run again, so it only sets its
// results), on the pool on PostgreSQL.
func (s *Store) write1(ctx context.Context, fn func(q queryExecer) error) error {
	if s.gc == nil {
		return fn(s.w)
	}
	return s.tx(ctx, func(tx *sql.Tx) error { return fn(tx) })
}

// maxTxAttempts bounds the runs of one transaction on PostgreSQL.
const maxTxAttempts = 5

func (s *Store) tx1(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	// A panic in fn still ends the transaction: SQLite's writer pool has
	// one connection, which an open transaction would keep forever.
	defer func() { _ = tx.Rollback() }() // after Commit, a no-op
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return &commitError{err}
	}
	return nil
}

// commitError is a failed COMMIT, whose outcome a lost connection leaves
// unknown: such a transaction is never run again.
type commitError struct{ err error }

func (e *commitError) Error() string { return e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

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

// queryPairs runs a query of two text columns (an object's id and its
// project_id, for the cross-project sweeps) and returns its rows in order.
func (s *Store) queryPairs(ctx context.Context, what, query string, args ...any) ([][2]string, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var v [2]string
		if err := rows.Scan(&v[0], &v[1]); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
