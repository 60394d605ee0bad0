package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Vector search on PostgreSQL has two paths, chosen at start (Open) and
// named in the start-up log (Describe):
//
//   - pgvector, when the server has the extension: Open creates it in the
//     database if it is not there yet (CREATE EXTENSION needs a superuser,
//     or an administrator runs it once), then keeps a generated column
//     vector_store_chunks.embedding_vector, computed by PostgreSQL from the
//     bytea embedding, so nothing else writes it and copy-data, the
//     migrations and SQLite's schema stay as they are. Nearest chunks are
//     found by an exact cosine scan in the database (no approximate
//     index), so results and their order are those of the Go path.
//   - Go, otherwise (or with WithPgvector(PgvectorOff)): the bytea vectors
//     are read once per store and scored in memory by retrieval.
//
// SQLite always scores in Go.

// pgvector modes (--pgvector).
const (
	PgvectorAuto = "auto" // use the extension when the server has it
	PgvectorOff  = "off"  // always score in Go
)

// WithPgvector sets whether a PostgreSQL store uses the pgvector extension
// when the server has it (PgvectorAuto, the default) or scores vectors in
// Go (PgvectorOff).
func WithPgvector(mode string) Option { return func(s *Store) { s.pgvectorMode = mode } }

// pgvectorColumn is the generated vector column Open adds on PostgreSQL
// when pgvector is in use.
const pgvectorColumn = "embedding_vector"

// assistantdVectorFunc decodes EncodeVector's little-endian float32s into a
// pgvector vector, in SQL so that the column can be generated. Values
// that are not finite (never produced by embedding models, but refused by
// pgvector) become 0 rather than failing the chunk's insert; an empty or
// oversized (> 16,000 dimensions, pgvector's limit) embedding gives NULL.
const assistantdVectorFunc = `CREATE OR REPLACE FUNCTION assistantd_vector(b bytea) RETURNS vector
IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql AS $f$
SELECT CASE WHEN length(b) BETWEEN 4 AND 64000 THEN (
  SELECT array_agg(CASE WHEN e = 255 THEN 0
      WHEN e = 0 THEN (1 - 2 * sg) * m * 2.0::float8 ^ -149
      ELSE (1 - 2 * sg) * (8388608 + m) * 2.0::float8 ^ (e - 150) END ORDER BY i)::real[]::vector
  FROM (SELECT i, get_byte(b, 4*i+3) >> 7 AS sg,
      ((get_byte(b, 4*i+3) & 127) << 1) | (get_byte(b, 4*i+2) >> 7) AS e,
      ((get_byte(b, 4*i+2) & 127) << 16) | (get_byte(b, 4*i+1) << 8) | get_byte(b, 4*i) AS m
    FROM generate_series(0, length(b) / 4 - 1) i) x) END
$f$`

// setupPgvector chooses the vector path of a PostgreSQL store (called by
// Open under the start-up lock, after the migrations) and records why.
func (s *Store) setupPgvector(ctx context.Context) error {
	if s.pgvectorMode == PgvectorOff {
		s.vectorsNote = "scored in Go (--pgvector off)"
		return nil
	}
	var installed, available sql.NullString
	err := s.r.QueryRowContext(ctx, `SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'),
		(SELECT default_version FROM pg_available_extensions WHERE name = 'vector')`).Scan(&installed, &available)
	if err != nil {
		return fmt.Errorf("look for pgvector: %w", err)
	}
	if !installed.Valid && !available.Valid {
		s.vectorsNote = "scored in Go (pgvector is not installed on the database server)"
		return nil
	}
	if !installed.Valid {
		if _, err := s.w.ExecContext(ctx, `CREATE EXTENSION IF NOT EXISTS vector`); err != nil {
			s.vectorsNote = "scored in Go (pgvector is on the server but could not be created in this database: " +
				err.Error() + "; a superuser can run CREATE EXTENSION vector)"
			return nil
		}
	}
	var hasColumn bool
	err = s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
		AND table_name = 'vector_store_chunks' AND column_name = $1)`, pgvectorColumn).Scan(&hasColumn)
	if err != nil {
		return fmt.Errorf("look for %s: %w", pgvectorColumn, err)
	}
	if !hasColumn {
		// Adding the column computes it for every existing chunk.
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, assistantdVectorFunc); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `ALTER TABLE vector_store_chunks ADD COLUMN `+pgvectorColumn+
				` vector GENERATED ALWAYS AS (assistantd_vector(embedding)) STORED`)
			return err
		})
		if err != nil {
			return fmt.Errorf("add the pgvector column: %w", err)
		}
	}
	var version string
	if err := s.r.QueryRowContext(ctx, `SELECT extversion FROM pg_extension WHERE extname = 'vector'`).Scan(&version); err != nil {
		return fmt.Errorf("pgvector version: %w", err)
	}
	s.vectorsInDB = true
	s.vectorsNote = "pgvector " + version + " (exact cosine search in the database)"
	return nil
}

// VectorsInDatabase reports whether vector search runs in the database
// (pgvector) through NearestChunks, rather than in Go over ChunkVectors.
func (s *Store) VectorsInDatabase() bool { return s.vectorsInDB }

// StoreFile names a file of a vector store.
type StoreFile struct{ VectorStoreID, FileID string }

// Neighbour is a chunk found by NearestChunks, with its cosine similarity
// to the query vector.
type Neighbour struct {
	ID         int64
	Similarity float64
}

// NearestChunks returns the k chunks of the given store files whose
// embeddings (of vec's dimension) are most similar to vec by cosine, most
// similar first (ties by chunk id). Only with VectorsInDatabase.
func (s *Store) NearestChunks(ctx context.Context, files []StoreFile, vec []float32, k int) ([]Neighbour, error) {
	if !s.vectorsInDB {
		return nil, errors.New("nearest chunks: vectors are not searched in the database")
	}
	if len(files) == 0 || len(vec) == 0 || k <= 0 {
		return nil, nil
	}
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("nearest chunks: %w", err)
	}
	stores, ids := make([]string, len(files)), make([]string, len(files))
	for i, f := range files {
		stores[i], ids[i] = f.VectorStoreID, f.FileID
	}
	var q strings.Builder
	q.WriteByte('[')
	for i, f := range vec {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(strconv.FormatFloat(float64(f), 'g', -1, 32))
	}
	q.WriteByte(']')
	rows, err := s.r.QueryContext(ctx, `SELECT c.id, 1 - (c.`+pgvectorColumn+` <=> $1::vector)
		FROM vector_store_chunks c JOIN unnest($2::text[], $3::text[]) AS f(store, file)
			ON c.vector_store_id = f.store AND c.file_id = f.file
		WHERE c.`+pgvectorColumn+` IS NOT NULL AND vector_dims(c.`+pgvectorColumn+`) = $4 AND `+storeInProject("$6")+`
		ORDER BY c.`+pgvectorColumn+` <=> $1::vector, c.id LIMIT $5`, q.String(), stores, ids, len(vec), k, project)
	if err != nil {
		return nil, fmt.Errorf("nearest chunks: %w", err)
	}
	defer rows.Close()
	var out []Neighbour
	for rows.Next() {
		var n Neighbour
		if err := rows.Scan(&n.ID, &n.Similarity); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
