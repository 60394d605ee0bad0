package db

import (
	"context"
	"fmt"
	"strings"
)

// Vector store search on PostgreSQL. Retrieval writes its queries in FTS5's
// syntax (quoted terms joined by OR or AND); pgTSQuery turns one into a
// tsquery expression of plainto_tsquery('english', term) parts, so terms
// are stemmed as the chunks' search column is (to_tsvector('english', …)),
// as FTS5's porter tokenizer does on SQLite.
//
// Ranking differs: ts_rank_cd weighs how often and how close together the
// terms occur in a chunk, without BM25's inverse document frequency, so a
// rare term does not outweigh a common one as it does on SQLite. Hits come
// back with Rank = -ts_rank_cd (lower is better, as with FTS5's bm25()).

// pgTSQuery parses an FTS5 query of quoted terms joined by OR or AND into a
// tsquery expression whose arguments are numbered from first.
func pgTSQuery(match string, first int) (string, []any, error) {
	var parts []string
	var args []any
	var ops []string
	rest := strings.TrimSpace(match)
	for rest != "" {
		switch {
		case rest[0] == '"':
			var term strings.Builder
			i := 1
			for ; i < len(rest); i++ {
				if rest[i] == '"' {
					if i+1 < len(rest) && rest[i+1] == '"' {
						term.WriteByte('"')
						i++
						continue
					}
					break
				}
				term.WriteByte(rest[i])
			}
			if i >= len(rest) {
				return "", nil, fmt.Errorf("search query %q: unterminated string", match)
			}
			args = append(args, term.String())
			parts = append(parts, `plainto_tsquery('english', `+arg(first+len(args)-1)+`)`)
			rest = strings.TrimSpace(rest[i+1:])
		case strings.HasPrefix(rest, "OR "):
			ops, rest = append(ops, ` || `), strings.TrimSpace(rest[3:])
		case strings.HasPrefix(rest, "AND "):
			ops, rest = append(ops, ` && `), strings.TrimSpace(rest[4:])
		default:
			word, after, _ := strings.Cut(rest, " ")
			args = append(args, word)
			parts = append(parts, `plainto_tsquery('english', `+arg(first+len(args)-1)+`)`)
			rest = strings.TrimSpace(after)
		}
		if len(ops) > len(parts) {
			return "", nil, fmt.Errorf("search query %q: operator without a term", match)
		}
		if len(ops) < len(parts)-1 {
			ops = append(ops, ` && `) // FTS5's implicit AND
		}
	}
	if len(parts) == 0 {
		return "", nil, fmt.Errorf("search query %q: no terms", match)
	}
	var b strings.Builder
	b.WriteString("(")
	for i, p := range parts {
		if i > 0 {
			b.WriteString(ops[i-1])
		}
		b.WriteString(p)
	}
	b.WriteString(")")
	return b.String(), args, nil
}

// searchChunksPG is SearchChunks on PostgreSQL: the GIN index finds the
// matching chunks of the wanted stores and files, ts_rank_cd orders them.
func (s *Store) searchChunksPG(ctx context.Context, storeIDs, fileIDs []string, match string, limit int) ([]ChunkHit, error) {
	args := append([]any{limit}, anySlice(storeIDs)...)
	files := ""
	if fileIDs != nil {
		files = ` AND c.file_id IN (` + placeholders(len(args)+1, len(fileIDs)) + `)`
		args = append(args, anySlice(fileIDs)...)
	}
	tsq, targs, err := pgTSQuery(match, len(args)+1)
	if err != nil {
		return nil, err
	}
	args = append(args, targs...)
	rows, err := s.r.QueryContext(ctx, `SELECT c.id, c.vector_store_id, c.file_id, c.text, -ts_rank_cd(c.search, q.q)
		FROM vector_store_chunks c, (SELECT `+tsq+` AS q) q
		WHERE c.search @@ q.q AND c.vector_store_id IN (`+placeholders(2, len(storeIDs))+`)`+files+`
		ORDER BY 5, c.id LIMIT $1`, args...)
	if err != nil {
		return nil, fmt.Errorf("search chunks: %w", err)
	}
	return scanChunkHits(rows)
}
