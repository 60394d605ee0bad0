package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// copyTables are the tables Copy copies, parents before children, with the
// columns that order their rows. run_transitions (the same rows from the
// migrations on both databases), schema_migrations and file_blobs (copied
// file by file through the blob stores) are not among them.
var copyTables = []struct{ name, order string }{
	{"assistants", "seq"},
	{"assistant_versions", "seq"},
	{"threads", "seq"},
	{"messages", "seq"},
	{"files", "seq"},
	{"projects", "seq"},
	{"api_keys", "seq"},
	{"service_accounts", "seq"},
	{"project_usage", "project_id, day, model"},
	{"project_settings", "project_id"},
	{"project_rate_limits", "seq"},
	{"rate_counters", "project_id, model, window_start"},
	{"admin_keys", "seq"},
	{"runs", "seq"},
	{"run_traces", "run_id"},
	{"run_steps", "seq"},
	{"tool_calls", "id"},
	{"users", "seq"},
	{"project_members", "seq"},
	{"secrets", "name"},
	{"tombstones", "tbl, id"},
	{"webhooks", "assistant_id, function_name"},
	{"webhook_deliveries", "seq"},
	{"web_sessions", "token_hash"},
	{"settings", "name"},
	{"vector_stores", "seq"},
	{"vector_store_file_batches", "seq"},
	{"vector_store_files", "seq"},
	{"vector_store_chunks", "id"},
	{"ingest_attempts", "vector_store_id, file_id"},
	{"uploads", "seq"},
	{"upload_parts", "seq"},
	{"upstream_exchanges", "id"},
	{"conversations", "seq"},
	{"conversation_items", "seq"},
	{"responses", "seq"},
	{"run_events", "run_id, seq"},
	{"run_event_heads", "run_id"},
	{"leader_leases", "name"},
	{"response_input_items", "seq"},
	{"containers", "seq"},
	{"container_files", "seq"},
	{"sandbox_files", "thread_id, path"},
	{"code_kernels", "thread_id"},
}

// notCopied are the tables Copy leaves to the migrations or copies apart.
var notCopied = []string{"schema_migrations", "run_transitions", "file_blobs"}

// CopyProgress is told, as Copy goes, how many of a table's rows (or, for
// table "file contents", of the files' contents) it has copied.
type CopyProgress func(table string, done, total int64)

// CopyCount is one table's row count in the source and in the target
// after a copy.
type CopyCount struct {
	Table          string
	Source, Target int64
}

// ErrTargetNotEmpty is returned by Copy for a target that holds records.
var ErrTargetNotEmpty = errors.New("the target store is not empty")

// Copy copies every record of src, and every file's content (into dst's
// blob store), into dst, which must be empty: ids, order (seq) and
// timestamps are kept. It returns each table's count in both stores after
// the copy, and an error if any differs. Neither store may be in use by a
// server meanwhile.
func Copy(ctx context.Context, src, dst *Store, progress CopyProgress) ([]CopyCount, error) {
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	if err := src.knowsEveryTable(ctx); err != nil {
		return nil, err
	}
	for _, t := range copyTables {
		n, err := dst.count(ctx, t.name)
		if err != nil {
			return nil, err
		}
		if t.name == "projects" {
			n-- // the Default project, which the migrations make in every store
		}
		if n > 0 {
			return nil, fmt.Errorf("%w: its table %s has %d rows", ErrTargetNotEmpty, t.name, n)
		}
	}
	err := dst.tx1(ctx, func(tx *sql.Tx) error {
		// The source's Default project replaces the one the target's
		// migrations made (nothing of the empty target refers to it yet).
		if _, err := tx.ExecContext(ctx, `DELETE FROM projects WHERE id = $1`, DefaultProjectID); err != nil {
			return fmt.Errorf("copy projects: %w", err)
		}
		for _, t := range copyTables {
			if err := copyTable(ctx, src, dst, tx, t.name, t.order, progress); err != nil {
				return fmt.Errorf("copy %s: %w", t.name, err)
			}
		}
		if dst.pg {
			// Identity columns continue after the copied values.
			for _, t := range copyTables {
				col := map[string]string{"vector_store_chunks": "id", "upstream_exchanges": "id"}[t.name]
				if col == "" && t.order == "seq" {
					col = "seq"
				}
				if col == "" {
					continue
				}
				if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('`+t.name+`', '`+col+`'),
					COALESCE((SELECT MAX(`+col+`) FROM `+t.name+`), 0) + 1, false)`); err != nil {
					return fmt.Errorf("continue %s.%s: %w", t.name, col, err)
				}
			}
		}
		return copyBlobs(ctx, src, dst, tx, progress)
	})
	if err != nil {
		return nil, err
	}
	var counts []CopyCount
	var differ []string
	for _, t := range append(slices.Clone(copyTables), struct{ name, order string }{"file contents", ""}) {
		var a, b int64
		var err1, err2 error
		if t.name == "file contents" {
			a, err1 = src.countContents(ctx)
			b, err2 = dst.countContents(ctx)
		} else {
			a, err1 = src.count(ctx, t.name)
			b, err2 = dst.count(ctx, t.name)
		}
		if err := errors.Join(err1, err2); err != nil {
			return counts, err
		}
		counts = append(counts, CopyCount{t.name, a, b})
		if a != b {
			differ = append(differ, fmt.Sprintf("%s (%d in the source, %d in the target)", t.name, a, b))
		}
	}
	if len(differ) > 0 {
		return counts, fmt.Errorf("counts differ after the copy: %s", strings.Join(differ, ", "))
	}
	return counts, nil
}

// knowsEveryTable checks that Copy copies every table of the store, so a
// table added by a later migration cannot be left behind silently.
func (s *Store) knowsEveryTable(ctx context.Context) error {
	query := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
		AND name NOT LIKE '%_fts' AND name NOT LIKE '%_fts_%' ORDER BY name`
	if s.pg {
		query = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name`
	}
	names, err := s.queryStrings(ctx, "list tables", query)
	if err != nil {
		return err
	}
	for _, n := range names {
		known := slices.Contains(notCopied, n) || slices.ContainsFunc(copyTables, func(t struct{ name, order string }) bool {
			return t.name == n
		})
		if !known {
			return fmt.Errorf("copy-data does not know the table %s: add it to db.copyTables", n)
		}
	}
	return nil
}

func (s *Store) count(ctx context.Context, table string) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s: %w", table, err)
	}
	return n, nil
}

// countContents counts the files whose content the blob store holds.
func (s *Store) countContents(ctx context.Context) (int64, error) {
	ids, err := s.queryStrings(ctx, "list files", `SELECT id FROM files ORDER BY seq`)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, id := range ids {
		var size int64
		if err := s.r.QueryRowContext(ctx, `SELECT bytes FROM files WHERE id = $1`, id).Scan(&size); err != nil {
			return 0, err
		}
		r, err := s.blobs.Open(ctx, id, size)
		if err != nil {
			continue
		}
		end, err := r.Seek(0, 2)
		if err == nil && end == size {
			// Reading the last byte proves the content is there.
			if size == 0 {
				n++
			} else if _, err := r.Seek(size-1, 0); err == nil {
				if _, err := r.Read(make([]byte, 1)); err == nil {
					n++
				}
			}
		}
		r.Close()
	}
	return n, nil
}

// copyTable copies one table's rows, in order, into tx.
func copyTable(ctx context.Context, src, dst *Store, tx *sql.Tx, table, order string, progress CopyProgress) error {
	total, err := src.count(ctx, table)
	if err != nil {
		return err
	}
	cols, err := dst.copyColumns(ctx, tx, table)
	if err != nil {
		return err
	}
	rows, err := src.r.QueryContext(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM `+table+` ORDER BY `+order)
	if err != nil {
		return err
	}
	defer rows.Close()
	insert := `INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `) VALUES (` + placeholders(1, len(cols)) + `)`
	stmt, err := tx.PrepareContext(ctx, insert)
	if err != nil {
		return err
	}
	defer stmt.Close()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var done int64
	progress(table, 0, total)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, vals...); err != nil {
			return err
		}
		done++
		if done%500 == 0 || done == total {
			progress(table, done, total)
		}
	}
	return rows.Err()
}

// copyColumns are the columns of table that Copy writes: all but those the
// database computes (PostgreSQL's generated search columns).
func (s *Store) copyColumns(ctx context.Context, tx *sql.Tx, table string) ([]string, error) {
	query := `SELECT name FROM pragma_table_info($1) ORDER BY cid`
	if s.pg {
		query = `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()
			AND table_name = $1 AND is_generated = 'NEVER' ORDER BY ordinal_position`
	}
	rows, err := tx.QueryContext(ctx, query, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	if len(cols) == 0 && rows.Err() == nil {
		return nil, fmt.Errorf("no table %s in the target", table)
	}
	return cols, rows.Err()
}

// copyBlobs copies every file's content into dst's blob store.
func copyBlobs(ctx context.Context, src, dst *Store, tx *sql.Tx, progress CopyProgress) error {
	type file struct {
		id    string
		bytes int64
	}
	rows, err := src.r.QueryContext(ctx, `SELECT id, bytes FROM files ORDER BY seq`)
	if err != nil {
		return err
	}
	var files []file
	for rows.Next() {
		var f file
		if err := rows.Scan(&f.id, &f.bytes); err != nil {
			rows.Close()
			return err
		}
		files = append(files, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	progress("file contents", 0, int64(len(files)))
	for i, f := range files {
		r, err := src.blobs.Open(ctx, f.id, f.bytes)
		if err != nil {
			return fmt.Errorf("read the content of %s: %w", f.id, err)
		}
		err = dst.blobs.Put(ctx, tx, f.id, r)
		r.Close()
		if err != nil {
			return fmt.Errorf("store the content of %s: %w", f.id, err)
		}
		progress("file contents", int64(i+1), int64(len(files)))
	}
	return nil
}
