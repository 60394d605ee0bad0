package main

import (
	"flag"
	"fmt"

	"github.com/assistantd/assistantd/db"
)

// storeConfig is where the records live: SQLite in the data directory, or
// PostgreSQL.
type storeConfig struct {
	// DatabaseURL is a postgres:// URL, or "" for SQLite in --data.
	DatabaseURL string
	// MaxConns is the PostgreSQL connection pool's size.
	MaxConns int
	// BlobStore is where file contents live: db.BlobsDir or
	// db.BlobsPostgres ("" for the store's default).
	BlobStore string
	// Pgvector is db.PgvectorAuto or db.PgvectorOff.
	Pgvector string
}

// addStoreFlags registers the store's flags; the returned function
// validates them after parsing.
func addStoreFlags(fs *flag.FlagSet, env func(name, def string) string) func() (storeConfig, error) {
	dbURL := fs.String("database-url", env("ASSISTANTD_DATABASE_URL", ""),
		"PostgreSQL to store everything in, as postgres://user:password@host/database (env ASSISTANTD_DATABASE_URL); without it, SQLite in --data")
	maxConns := fs.Int("db-max-conns", envInt(env, "ASSISTANTD_DB_MAX_CONNS", 20),
		"PostgreSQL connections the server opens at most (env ASSISTANTD_DB_MAX_CONNS)")
	blobs := fs.String("blob-store", env("ASSISTANTD_BLOB_STORE", ""),
		"where file contents live: dir (files/ under --data) or postgres (in the database); default postgres with --database-url, else dir (env ASSISTANTD_BLOB_STORE)")
	pgvector := fs.String("pgvector", env("ASSISTANTD_PGVECTOR", db.PgvectorAuto),
		"on PostgreSQL, auto: search vectors with the pgvector extension when the server has it (creating it in the database if needed), off: score them in Go (env ASSISTANTD_PGVECTOR)")
	return func() (storeConfig, error) {
		c := storeConfig{DatabaseURL: *dbURL, MaxConns: *maxConns, BlobStore: *blobs, Pgvector: *pgvector}
		switch {
		case c.Pgvector != db.PgvectorAuto && c.Pgvector != db.PgvectorOff:
			return c, fmt.Errorf("invalid --pgvector %q: expected auto or off", c.Pgvector)
		case c.BlobStore != "" && c.BlobStore != db.BlobsDir && c.BlobStore != db.BlobsPostgres:
			return c, fmt.Errorf("invalid --blob-store %q: expected dir or postgres", c.BlobStore)
		case c.BlobStore == db.BlobsPostgres && c.DatabaseURL == "":
			return c, fmt.Errorf("--blob-store postgres needs --database-url")
		}
		if c.DatabaseURL != "" && !db.IsPostgresURL(c.DatabaseURL) {
			return c, fmt.Errorf("invalid --database-url: expected postgres://user:password@host/database")
		}
		if c.MaxConns < 2 || c.MaxConns > 10000 {
			return c, fmt.Errorf("--db-max-conns must be between 2 and 10000, got %d", c.MaxConns)
		}
		return c, nil
	}
}

// options are the db.Open options of the configuration.
func (c storeConfig) options() []db.Option {
	var opts []db.Option
	if c.DatabaseURL != "" {
		opts = append(opts, db.WithDatabaseURL(c.DatabaseURL), db.WithMaxConns(c.MaxConns), db.WithPgvector(c.Pgvector))
	}
	if c.BlobStore != "" {
		opts = append(opts, db.WithBlobStore(c.BlobStore))
	}
	return opts
}
