package db

import (
	"context"
	"database/sql/driver"
	"sync"

	"modernc.org/sqlite"
)

// Prepared statements kept per SQLite connection.
//
// database/sql prepares, runs and finalizes every statement a query or an
// exec names: SQLite's parser and planner then cost as much as running the
// statement (about a fifth of the server's CPU under a mixed load). The
// store's statements are few and fixed, so each SQLite connection keeps
// the ones it has run, prepared, and runs them again after a reset.
//
// A statement is reused only when no rows of it are still open on the
// connection (a query inside a loop over the same query's rows prepares
// one of its own). A script of several statements is kept too: the driver
// prepares its statements one by one each time it runs, as before.

// stmtCacheSize bounds the statements kept per connection; when full the
// cache starts over.
const stmtCacheSize = 256

// sqliteConnector opens SQLite connections that keep their statements.
type sqliteConnector struct {
	dsn string
	drv sqlite.Driver
}

func (c *sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &cachingConn{Conn: conn, stmts: map[string]*cachedStmt{}}, nil
}

func (c *sqliteConnector) Driver() driver.Driver { return &c.drv }

// cachingConn is a SQLite connection with its prepared statements. Like
// any driver.Conn it is used by one goroutine at a time; mu guards only
// against a Rows closed from another goroutine.
type cachingConn struct {
	driver.Conn
	mu    sync.Mutex
	stmts map[string]*cachedStmt
}

type cachedStmt struct {
	stmt driver.Stmt
	busy bool // rows of it are open
}

// conn interfaces the SQLite driver implements, forwarded.
type sqliteConn interface {
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

func (c *cachingConn) inner() sqliteConn { return c.Conn.(sqliteConn) }

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner().BeginTx(ctx, opts)
}

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.inner().PrepareContext(ctx, query)
}

func (c *cachingConn) Ping(ctx context.Context) error { return c.inner().Ping(ctx) }

func (c *cachingConn) ResetSession(ctx context.Context) error { return c.inner().ResetSession(ctx) }

func (c *cachingConn) IsValid() bool { return c.inner().IsValid() }

// take returns query's kept statement marked busy, preparing and keeping
// it if new; nil when it is busy or does not prepare.
func (c *cachingConn) take(ctx context.Context, query string) *cachedStmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cs, ok := c.stmts[query]; ok {
		if cs.busy {
			return nil
		}
		cs.busy = true
		return cs
	}
	st, err := c.inner().PrepareContext(ctx, query)
	if err != nil {
		return nil // the plain path reports the error
	}
	if len(c.stmts) >= stmtCacheSize {
		for q, cs := range c.stmts {
			if !cs.busy {
				_ = cs.stmt.Close()
				delete(c.stmts, q)
			}
		}
	}
	cs := &cachedStmt{stmt: st, busy: true}
	c.stmts[query] = cs
	return cs
}

func (c *cachingConn) release(cs *cachedStmt) {
	c.mu.Lock()
	cs.busy = false
	c.mu.Unlock()
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs := c.take(ctx, query)
	if cs == nil {
		return c.inner().ExecContext(ctx, query, args)
	}
	defer c.release(cs)
	return cs.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs := c.take(ctx, query)
	if cs == nil {
		return c.inner().QueryContext(ctx, query, args)
	}
	rows, err := cs.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		c.release(cs)
		return nil, err
	}
	return &cachedRows{Rows: rows, release: func() { c.release(cs) }}, nil
}

func (c *cachingConn) Close() error {
	c.mu.Lock()
	for q, cs := range c.stmts {
		_ = cs.stmt.Close()
		delete(c.stmts, q)
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// cachedRows frees its statement for reuse when closed.
type cachedRows struct {
	driver.Rows
	once    sync.Once
	release func()
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.once.Do(r.release)
	return err
}
