package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// projectTables are the tables whose rows belong to a project (they carry
// project_id): every query of them outside the engine's and housekeeper's
// cross-project sweeps is scoped by ProjectFrom(ctx). Children without the
// column (conversation_items, response_input_items) are reached only
// through a parent checked in the project.
var projectTables = map[string]bool{
	"assistants": true, "assistant_versions": true, "webhooks": true, "threads": true, "messages": true,
	"runs": true, "run_steps": true, "files": true, "uploads": true, "vector_stores": true,
	"vector_store_files": true, "vector_store_file_batches": true, "upstream_exchanges": true,
	"conversations": true, "responses": true, "containers": true, "container_files": true,
}

// tombstoneProject is the project a tombstone is kept under: the table's
// project, or the Default project for tables without one (their parents
// are checked in the project before the tombstone is read).
func tombstoneProject(project string) string {
	if project == "" {
		return DefaultProjectID
	}
	return project
}

// rowScanner is satisfied by *sql.Row and *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

// listQuery returns one page of table's rows matching where/args, ordered by
// seq. Cursors are resolved to their seq, so objects created in the same
// second keep a stable total order and paging never skips or repeats.
//
// With only `before`, the page holds the items nearest the cursor (the ones
// a client paging backwards wants), still returned in the requested order;
// has_more then says whether more items lie beyond them, away from the cursor.
func listQuery[T any](ctx context.Context, q *sql.DB, table, columns, where string, args []any,
	p ListParams, scan func(rowScanner) (T, error)) (Page[T], error) {
	args = slices.Clone(args)
	project := ""
	if projectTables[table] {
		var err error
		if project, err = ProjectFrom(ctx); err != nil {
			return Page[T]{}, fmt.Errorf("list %s: %w", table, err)
		}
		if where != "" {
			where = `(` + where + `) AND `
		}
		where += `project_id = ` + arg(len(args)+1)
		args = append(args, project)
	}
	conds := []string{}
	if where != "" {
		conds = append(conds, where)
	}
	desc := p.Order != "asc"
	// A cursor must name an object of this very list (e.g. a message of the
	// same thread); an id from elsewhere would silently shift the window.
	// where numbers its placeholders from $1; the cursor's id follows them.
	cursorWhere, cursorArgs := `id = `+arg(len(args)+1), append(slices.Clone(args), nil)
	if where != "" {
		cursorWhere += ` AND (` + where + `)`
	}
	cursor := func(param, id string) (int64, error) {
		var seq int64
		cursorArgs[len(cursorArgs)-1] = id
		err := q.QueryRowContext(ctx, `SELECT seq FROM `+table+` WHERE `+cursorWhere, cursorArgs...).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			// Deleted while the client was paging: its place is kept.
			// Its place is its project's alone: another project's
			// tombstone is as unknown as its object.
			err = q.QueryRowContext(ctx, `SELECT seq FROM tombstones WHERE tbl = $1 AND id = $2 AND project_id = $3`,
				table, id, tombstoneProject(project)).Scan(&seq)
		}
		if errors.Is(err, sql.ErrNoRows) {
			return 0, &CursorError{Param: param, ID: id}
		}
		return seq, err
	}
	if p.After != "" {
		seq, err := cursor("after", p.After)
		if err != nil {
			return Page[T]{}, err
		}
		if desc {
			conds = append(conds, "seq < "+arg(len(args)+1))
		} else {
			conds = append(conds, "seq > "+arg(len(args)+1))
		}
		args = append(args, seq)
	}
	if p.Before != "" {
		seq, err := cursor("before", p.Before)
		if err != nil {
			return Page[T]{}, err
		}
		if desc {
			conds = append(conds, "seq > "+arg(len(args)+1))
		} else {
			conds = append(conds, "seq < "+arg(len(args)+1))
		}
		args = append(args, seq)
	}
	// Walk backwards from `before` when it is the only cursor.
	reverse := p.Before != "" && p.After == ""
	dir := "DESC"
	if desc == reverse {
		dir = "ASC"
	}
	query := `SELECT ` + columns + ` FROM ` + table
	if len(conds) > 0 {
		query += ` WHERE ` + strings.Join(conds, " AND ")
	}
	query += ` ORDER BY seq ` + dir + ` LIMIT ` + arg(len(args)+1)
	args = append(args, p.Limit+1)
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return Page[T]{}, fmt.Errorf("list %s: %w", table, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return Page[T]{}, fmt.Errorf("list %s: %w", table, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return Page[T]{}, fmt.Errorf("list %s: %w", table, err)
	}
	page := Page[T]{Data: out}
	if len(out) > p.Limit {
		page.Data = out[:p.Limit]
		page.HasMore = true
	}
	if reverse {
		slices.Reverse(page.Data)
	}
	if page.Data == nil {
		page.Data = []T{}
	}
	return page, nil
}
