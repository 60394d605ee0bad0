package db

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/assistantd/assistantd/db/dbtest"
	"github.com/google/go-cmp/cmp"
)

// TestSchemaParity: the SQLite and PostgreSQL migrations make the same
// tables with the same columns, apart from each database's search index
// (FTS5 tables on SQLite, tsvector columns on PostgreSQL), and record the
// same migration versions.
func TestSchemaParity(t *testing.T) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	lite := openTest(t)
	pgURL := dbtest.Database(t, migrateTemplate)
	pg, err := Open(ctx, t.TempDir(), WithDatabaseURL(pgURL))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()

	liteCols := columns(t, lite, `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '%_fts' AND m.name NOT LIKE '%_fts_%'`)
	pgCols := columns(t, pg, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema()`)
	// Search on PostgreSQL: generated tsvector columns where SQLite has
	// messages_fts and vector_store_chunks_fts.
	for _, c := range []string{"messages.search", "vector_store_chunks.search"} {
		tbl, col, _ := strings.Cut(c, ".")
		if !slices.Contains(pgCols[tbl], col) {
			t.Errorf("PostgreSQL lacks %s", c)
		}
		pgCols[tbl] = slices.DeleteFunc(pgCols[tbl], func(s string) bool { return s == col })
	}
	// pgvector's generated column, which Open adds only when the server
	// has the extension (see setupPgvector).
	if pg.VectorsInDatabase() != slices.Contains(pgCols["vector_store_chunks"], pgvectorColumn) {
		t.Errorf("pgvector in use: %v, but columns of vector_store_chunks: %v", pg.VectorsInDatabase(), pgCols["vector_store_chunks"])
	}
	pgCols["vector_store_chunks"] = slices.DeleteFunc(pgCols["vector_store_chunks"], func(s string) bool { return s == pgvectorColumn })
	if diff := cmp.Diff(liteCols, pgCols); diff != "" {
		t.Errorf("tables and columns differ (-sqlite +postgres):\n%s", diff)
	}
	if len(liteCols) < 20 {
		t.Fatalf("only %d tables: %v", len(liteCols), slices.Sorted(maps.Keys(liteCols)))
	}
	versions := func(s *Store) []int {
		ms, err := s.migrations()
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		for _, m := range ms {
			out = append(out, m.version)
		}
		return out
	}
	if diff := cmp.Diff(versions(lite), versions(pg)); diff != "" {
		t.Errorf("migration versions differ (-sqlite +postgres):\n%s", diff)
	}
}

// columns maps each table to its sorted column names.
func columns(t *testing.T, s *Store, query string) map[string][]string {
	t.Helper()
	rows, err := s.r.QueryContext(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var tbl, col string
		if err := rows.Scan(&tbl, &col); err != nil {
			t.Fatal(err)
		}
		out[tbl] = append(out[tbl], col)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, cols := range out {
		slices.Sort(cols)
	}
	return out
}
