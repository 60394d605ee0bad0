package db

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// ThreadFilter selects threads for the web app's threads list. Zero fields
// do not filter.
type ThreadFilter struct {
	AssistantID string    // threads with a message or run of this assistant
	From, To    time.Time // created_at within [From, To)
	MetaKey     string    // metadata has this key …
	MetaValue   string    // … with this value (any value when empty)
	Query       string    // full-text search over message text
	RunStatus   string    // the latest run has this status
	Offset      int
	Limit       int
}

// ThreadSummary is one row of the threads list.
type ThreadSummary struct {
	Thread
	Messages     int
	LastActivity int64
	Preview      string // the start of the first message's text
	// AssistantID is the assistant of the latest run (or assistant
	// message); LastRunStatus the latest run's status ("" without runs).
	AssistantID   string
	LastRunStatus string
	// Snippet is the best-matching passage when searching, with matches
	// between SnippetOpen and SnippetClose (private-use characters that
	// cannot be confused with message text once the view escapes it).
	Snippet string
}

// Markers around search matches in ThreadSummary.Snippet.
const (
	SnippetOpen  = "\ue000"
	SnippetClose = "\ue001"
)

// searchTerms splits what a person typed into the words that must all
// appear. Control characters and invalid UTF-8 separate words: FTS5's parser
// reads a NUL as the end of the query ("unterminated string"), and neither
// can match indexed text anyway.
func searchTerms(q string) []string {
	q = strings.ToValidUTF8(q, " ")
	q = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, q)
	return strings.Fields(q)
}

// ftsQuery is the FTS5 query of search terms: every one must appear, each
// quoted so FTS5 operators and punctuation are taken literally, and each as
// a prefix ("vacat" finds "vacation").
func ftsQuery(words []string) string {
	var terms []string
	for _, w := range words {
		terms = append(terms, `"`+strings.ReplaceAll(w, `"`, `""`)+`"*`)
	}
	return strings.Join(terms, " ")
}

// headlineOptions make PostgreSQL's ts_headline mark matches as FTS5's
// snippet() does on SQLite: between SnippetOpen and SnippetClose, about 16
// words around the best match.
const headlineOptions = "StartSel=" + SnippetOpen + ", StopSel=" + SnippetClose + ", MaxWords=16, MinWords=8, MaxFragments=1, FragmentDelimiter=…"

// BrowseThreads returns one page of threads, newest first, and whether
// more follow.
func (s *Store) BrowseThreads(ctx context.Context, f ThreadFilter) ([]ThreadSummary, bool, error) {
	var conds []string
	var args []any
	// add appends an argument and returns its placeholder.
	add := func(v any) string {
		args = append(args, v)
		return arg(len(args))
	}
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("browse threads: %w", err)
	}
	// Every other condition (search included) narrows threads of the
	// project, so nothing of another project's messages can show.
	conds = append(conds, `t.project_id = `+add(project))
	runCols := `COALESCE((SELECT m.assistant_id FROM messages m WHERE m.thread_id = t.id AND m.assistant_id IS NOT NULL
		ORDER BY m.seq DESC LIMIT 1), ''), ''`
	if s.hasTable(ctx, "runs") {
		runCols = `COALESCE((SELECT r.assistant_id FROM runs r WHERE r.thread_id = t.id ORDER BY r.seq DESC LIMIT 1),
			(SELECT m.assistant_id FROM messages m WHERE m.thread_id = t.id AND m.assistant_id IS NOT NULL ORDER BY m.seq DESC LIMIT 1), ''),
		COALESCE((SELECT r.status FROM runs r WHERE r.thread_id = t.id ORDER BY r.seq DESC LIMIT 1), '')`
	}
	snippet := `''`
	preview := `COALESCE((SELECT substr(x.body, 1, 160) FROM messages m JOIN messages_fts x ON x.rowid = m.seq
			WHERE m.thread_id = t.id ORDER BY m.seq LIMIT 1), '')`
	if s.pg {
		preview = `COALESCE((SELECT substr(assistantd_message_text(m.content), 1, 160) FROM messages m
			WHERE m.thread_id = t.id ORDER BY m.seq LIMIT 1), '')`
	}
	if terms := searchTerms(f.Query); len(terms) > 0 {
		if s.pg {
			// Every word must appear; a word of several tokens ("don't")
			// as a phrase, like a quoted FTS5 string, its last token a
			// prefix ("vacat" finds "vacation") as FTS5's "…"* makes it.
			q := make([]string, len(terms))
			for i, t := range terms {
				q[i] = `regexp_replace(phraseto_tsquery('simple', ` + add(t) + `)::text, '''$', ''':*')::tsquery`
			}
			tsq := `(` + strings.Join(q, ` && `) + `)`
			snippet = `COALESCE((SELECT ts_headline('simple', assistantd_message_text(x.content), ` + tsq + `, ` + add(headlineOptions) + `)
				FROM messages x WHERE x.thread_id = t.id AND x.search @@ ` + tsq + ` ORDER BY x.seq LIMIT 1), '')`
			conds = append(conds, `t.id IN (SELECT thread_id FROM messages WHERE search @@ `+tsq+`)`)
		} else {
			fts := add(ftsQuery(terms))
			snippet = `COALESCE((SELECT snippet(messages_fts, 0, char(57344), char(57345), '…', 16) FROM messages_fts
				WHERE messages_fts MATCH ` + fts + ` AND thread_id = t.id LIMIT 1), '')`
			conds = append(conds, `t.id IN (SELECT thread_id FROM messages_fts WHERE messages_fts MATCH `+fts+`)`)
		}
	}
	if f.AssistantID != "" {
		a := add(f.AssistantID)
		c := `EXISTS (SELECT 1 FROM messages m WHERE m.thread_id = t.id AND m.assistant_id = ` + a + `)`
		if s.hasTable(ctx, "runs") {
			c = `(` + c + ` OR EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.id AND r.assistant_id = ` + a + `))`
		}
		conds = append(conds, c)
	}
	if !f.From.IsZero() {
		conds = append(conds, `t.created_at >= `+add(f.From.Unix()))
	}
	if !f.To.IsZero() {
		conds = append(conds, `t.created_at < `+add(f.To.Unix()))
	}
	if f.MetaKey != "" {
		switch {
		case s.pg && f.MetaValue != "":
			conds = append(conds, `(assistantd_jsonb(t.metadata) ->> `+add(f.MetaKey)+`) = `+add(f.MetaValue))
		case s.pg:
			conds = append(conds, `(assistantd_jsonb(t.metadata) -> `+add(f.MetaKey)+`) IS NOT NULL`)
		case f.MetaValue != "":
			conds = append(conds, `EXISTS (SELECT 1 FROM json_each(t.metadata) WHERE key = `+add(f.MetaKey)+` AND value = `+add(f.MetaValue)+`)`)
		default:
			conds = append(conds, `EXISTS (SELECT 1 FROM json_each(t.metadata) WHERE key = `+add(f.MetaKey)+`)`)
		}
	}
	if f.RunStatus != "" {
		if !s.hasTable(ctx, "runs") {
			return nil, false, nil
		}
		conds = append(conds, `(SELECT r.status FROM runs r WHERE r.thread_id = t.id ORDER BY r.seq DESC LIMIT 1) = `+add(f.RunStatus))
	}
	query := `SELECT t.id, t.created_at, t.tool_resources, t.metadata,
		(SELECT COUNT(*) FROM messages m WHERE m.thread_id = t.id),
		COALESCE((SELECT MAX(m.created_at) FROM messages m WHERE m.thread_id = t.id), t.created_at),
		` + preview + `,
		` + snippet + `,
		` + runCols + `
		FROM threads t`
	if len(conds) > 0 {
		query += ` WHERE ` + strings.Join(conds, ` AND `)
	}
	limit := max(f.Limit, 1)
	query += ` ORDER BY t.seq DESC LIMIT ` + add(limit+1) + ` OFFSET ` + add(max(f.Offset, 0))
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, false, fmt.Errorf("browse threads: %w", err)
	}
	defer rows.Close()
	var out []ThreadSummary
	for rows.Next() {
		var ts ThreadSummary
		var resources, meta string
		if err := rows.Scan(&ts.ID, &ts.CreatedAt, &resources, &meta, &ts.Messages, &ts.LastActivity, &ts.Preview, &ts.Snippet, &ts.AssistantID, &ts.LastRunStatus); err != nil {
			return nil, false, fmt.Errorf("browse threads: %w", err)
		}
		ts.Object = "thread"
		ts.ToolResources = &ToolResources{}
		if err := decodeColumn("metadata", meta, &ts.Metadata); err != nil {
			return nil, false, err
		}
		if err := decodeColumn("tool_resources", resources, ts.ToolResources); err != nil {
			return nil, false, err
		}
		out = append(out, ts)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("browse threads: %w", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// hasTable reports whether a table exists (the runs table arrives with a
// later migration than the one search depends on).
func (s *Store) hasTable(ctx context.Context, name string) bool {
	var n int
	query := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1`
	if s.pg {
		query = `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1`
	}
	_ = s.r.QueryRowContext(ctx, query, name).Scan(&n)
	return n > 0
}

// AllAssistants returns every assistant, newest first, for the web app's
// lists and pickers.
func (s *Store) AllAssistants(ctx context.Context) ([]Assistant, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("all assistants: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+assistantColumns+` FROM assistants WHERE project_id = $1 ORDER BY seq DESC`, project)
	if err != nil {
		return nil, fmt.Errorf("all assistants: %w", err)
	}
	defer rows.Close()
	var out []Assistant
	for rows.Next() {
		a, err := scanAssistant(rows)
		if err != nil {
			return nil, fmt.Errorf("all assistants: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// ThreadTranscript returns up to limit messages of a thread, oldest first.
func (s *Store) ThreadTranscript(ctx context.Context, threadID string, limit int) ([]Message, error) {
	project, err := ProjectFrom(ctx)
	if err == nil {
		err = s.settled(ctx, threadID)
	}
	if err != nil {
		return nil, fmt.Errorf("thread messages %s: %w", threadID, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE thread_id = $1 AND project_id = $3
		ORDER BY seq LIMIT $2`, threadID, limit, project)
	if err != nil {
		return nil, fmt.Errorf("thread messages %s: %w", threadID, err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("thread messages %s: %w", threadID, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// FileNames maps file ids to their file names, for citations and
// attachments; unknown ids are left out.
func (s *Store) FileNames(ctx context.Context, ids []string) (map[string]string, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("file names: %w", err)
	}
	out := map[string]string{}
	for _, id := range ids {
		if _, ok := out[id]; ok {
			continue
		}
		var name string
		err := s.r.QueryRowContext(ctx, `SELECT filename FROM files WHERE id = $1 AND project_id = $2`, id, project).Scan(&name)
		if err == nil {
			out[id] = name
		}
	}
	return out, nil
}

// FileUse says where a file is used: the assistants whose code interpreter
// has it, and the threads that attach it, show it as an image or give it
// to their code interpreter.
type FileUse struct {
	Assistants   []Named
	Threads      []string
	VectorStores []Named
}

// Named is an object id with its name ("" when it has none).
type Named struct {
	ID   string
	Name string
}

// FileUses returns where each of ids is used.
func (s *Store) FileUses(ctx context.Context, ids []string) (map[string]FileUse, error) {
	project, err := ProjectFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("file uses: %w", err)
	}
	out := map[string]FileUse{}
	for _, id := range ids {
		var use FileUse
		query := `SELECT a.id, COALESCE(a.name, '') FROM assistants a,
			json_each(a.tool_resources, '$.code_interpreter.file_ids') j WHERE j.value = $1 AND a.project_id = $2 ORDER BY a.seq`
		if s.pg {
			query = `SELECT a.id, COALESCE(a.name, '') FROM assistants a
				WHERE assistantd_jsonb(a.tool_resources) -> 'code_interpreter' -> 'file_ids' @> jsonb_build_array($1::text)
				AND a.project_id = $2 ORDER BY a.seq`
		}
		rows, err := s.r.QueryContext(ctx, query, id, project)
		if err != nil {
			return nil, fmt.Errorf("file uses %s: %w", id, err)
		}
		for rows.Next() {
			var n Named
			if err := rows.Scan(&n.ID, &n.Name); err != nil {
				rows.Close()
				return nil, fmt.Errorf("file uses %s: %w", id, err)
			}
			use.Assistants = append(use.Assistants, n)
		}
		rows.Close()
		query = `SELECT id FROM (
			SELECT m.thread_id AS id, MIN(t.seq) AS seq FROM messages m JOIN threads t ON t.id = m.thread_id, json_each(m.attachments) j
				WHERE json_extract(j.value, '$.file_id') = $1 AND t.project_id = $2 GROUP BY m.thread_id
			UNION
			SELECT m.thread_id, MIN(t.seq) FROM messages m JOIN threads t ON t.id = m.thread_id, json_each(m.content) j
				WHERE json_extract(j.value, '$.image_file.file_id') = $1 AND t.project_id = $2 GROUP BY m.thread_id
			UNION
			SELECT t.id, t.seq FROM threads t, json_each(t.tool_resources, '$.code_interpreter.file_ids') j WHERE j.value = $1
				AND t.project_id = $2
		) GROUP BY id ORDER BY MIN(seq) DESC LIMIT 20`
		if s.pg {
			query = `SELECT id FROM (
			SELECT m.thread_id AS id, MIN(t.seq) AS seq FROM messages m JOIN threads t ON t.id = m.thread_id
				WHERE assistantd_jsonb(m.attachments) @> jsonb_build_array(jsonb_build_object('file_id', $1::text))
				AND t.project_id = $2 GROUP BY m.thread_id
			UNION
			SELECT m.thread_id, MIN(t.seq) FROM messages m JOIN threads t ON t.id = m.thread_id
				WHERE assistantd_jsonb(m.content) @> jsonb_build_array(jsonb_build_object('image_file', jsonb_build_object('file_id', $1::text)))
				AND t.project_id = $2 GROUP BY m.thread_id
			UNION
			SELECT t.id, t.seq FROM threads t
				WHERE assistantd_jsonb(t.tool_resources) -> 'code_interpreter' -> 'file_ids' @> jsonb_build_array($1::text)
				AND t.project_id = $2
		) u GROUP BY id ORDER BY MIN(seq) DESC LIMIT 20`
		}
		rows, err = s.r.QueryContext(ctx, query, id, project)
		if err != nil {
			return nil, fmt.Errorf("file uses %s: %w", id, err)
		}
		for rows.Next() {
			var t string
			if err := rows.Scan(&t); err != nil {
				rows.Close()
				return nil, fmt.Errorf("file uses %s: %w", id, err)
			}
			use.Threads = append(use.Threads, t)
		}
		rows.Close()
		rows, err = s.r.QueryContext(ctx, `SELECT vs.id, vs.name FROM vector_store_files f
			JOIN vector_stores vs ON vs.id = f.vector_store_id WHERE f.id = $1 AND vs.expired = 0 AND vs.project_id = $2
			ORDER BY vs.seq LIMIT 20`, id, project)
		if err != nil {
			return nil, fmt.Errorf("file uses %s: %w", id, err)
		}
		for rows.Next() {
			var n Named
			if err := rows.Scan(&n.ID, &n.Name); err != nil {
				rows.Close()
				return nil, fmt.Errorf("file uses %s: %w", id, err)
			}
			use.VectorStores = append(use.VectorStores, n)
		}
		rows.Close()
		out[id] = use
	}
	return out, nil
}
